"""One idle-cull cycle on a big hub: 5,000 users, 300 running labs.

A real hub (proxy, blabs service) with BlabsKubeSpawner against the fake Kubernetes API
(``tests/kube/fakekube.py``) holds 5,000 users (created over the REST API in batches) of
whom 300 run a lab (a pod each). Then, in this process, with the hub's REST API:

- **reference**: jupyterhub-idle-culler's own ``cull_idle`` with a fixed 30-minute timeout and
  its default arbiter (nothing to cull);
- **blabs, nothing to cull**: our cycle (``blabs_hub.culler.cull_once``: the live timeout
  from the catalog, our arbiter with per-template max session);
- **blabs, cull all 300**: the same with the settings row's timeout forced to 0 (written
  straight into the catalog, as no admin could), so every lab is stopped and removed.

Printed: HTTP requests made (by method), seconds, and the ratio to the reference.

    .venv/bin/python bench/bench_cull_cycle.py            # 5,000 users, 300 labs (~2 min)
    .venv/bin/python bench/bench_cull_cycle.py --quick    # 1,000 users, 60 labs
"""

import argparse
import asyncio
import collections
import concurrent.futures
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jupyterhub_idle_culler import cull_idle  # noqa: E402
from tornado.httpclient import AsyncHTTPClient  # noqa: E402

from blabs_hub.catalog import Catalog, Settings  # noqa: E402
from blabs_hub.culler import Arbiter, CullerSettings, cull_once  # noqa: E402
from tests.harness import RunningHub  # noqa: E402
from tests.kube.conftest import LAB_IMAGE, kube_hub_env, seed_catalog  # noqa: E402
from tests.kube.fakekube import Behavior, FakeKube  # noqa: E402

CONFIG = (
    'c.JupyterHub.authenticator_class = "dummy"\n'
    "c.JupyterHub.log_level = 'WARN'\n"
    "c.KubeSpawner.start_timeout = 120\n"
    f"c.KubeSpawner.image = {LAB_IMAGE!r}\n"
)

REQUESTS: collections.Counter = collections.Counter()
_fetch = AsyncHTTPClient.fetch


def counting_fetch(self, request, *args, **kwargs):
    method = getattr(request, "method", kwargs.get("method", "GET"))
    REQUESTS[method] += 1
    return _fetch(self, request, *args, **kwargs)


AsyncHTTPClient.fetch = counting_fetch


def measure(coro_factory) -> tuple[dict, float]:
    REQUESTS.clear()
    t = time.perf_counter()
    asyncio.run(coro_factory())
    return dict(REQUESTS), time.perf_counter() - t


def populate(hub: RunningHub, users: int, labs: int) -> None:
    names = [f"s{i:05d}" for i in range(users)]
    for i in range(0, users, 500):
        r = hub.api("POST", "/users", json={"usernames": names[i : i + 500]})
        assert r.status_code in (201, 409), r.text

    def start(name):
        r = hub.api(
            "POST", f"/users/{name}/servers/lab", json={"user_options": {"template": "lab"}}
        )
        assert r.status_code in (201, 202), r.text

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(start, names[:labs]))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready = count_users(hub, "ready")
        if ready >= labs:
            return
        time.sleep(1)
    raise TimeoutError(f"only {ready} of {labs} labs ready")


def count_users(hub: RunningHub, state: str) -> int:
    """Users in ``state``, page by page (the hub serves at most 200 per page)."""
    n = offset = 0
    while True:
        page = hub.api("GET", "/users", params={"state": state, "offset": offset}).json()
        n += len(page)
        offset += len(page)
        if not page:
            return n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 users, 60 labs")
    args = parser.parse_args(argv)
    users, labs = (1000, 60) if args.quick else (5000, 300)
    logging.basicConfig(level=logging.WARNING)
    log = logging.getLogger("bench.culler")
    fake = FakeKube().start()
    root = Path(tempfile.mkdtemp(prefix="bench-cull-"))
    try:
        kubeconfig = fake.write_kubeconfig(root / "kubeconfig")
        # The hub's own culler service must not run a cycle of its own while this script
        # measures (it would race the cull-all cycle, and its DELETEs turn ours into 404s).
        env = kube_hub_env(
            kubeconfig,
            BLABS_MAX_CONCURRENT_VMS="10000",
            BLABS_IDLE_TIMEOUT_MINUTES="30",
            BLABS_REAPER_INTERVAL_SECONDS="3600",
        )
        hub = RunningHub(root / "hub", CONFIG, env)
        hub.data_dir.mkdir(parents=True, exist_ok=True)
        db_url = hub.catalog_url
        seed_catalog(db_url, [dict(slug="lab", title="Lab", max_session_minutes=600)])
        hub.start()
        try:
            fake.behave(Behavior(running_after=0.05))
            t = time.perf_counter()
            populate(hub, users, labs)
            print(
                f"populated {users} users, {labs} running labs in {time.perf_counter() - t:.0f} s"
            )
            url, token = f"{hub.url}/hub/api", hub.admin_token
            catalog = Catalog(db_url)
            arbiter = Arbiter({}, CullerSettings())
            results = [
                (
                    "reference: cull_idle, fixed timeout",
                    *measure(
                        lambda: cull_idle(
                            url, token, 1800, log, remove_named_servers=True, concurrency=10
                        )
                    ),
                ),
                (
                    "blabs: live timeout + arbiter",
                    *measure(lambda: cull_once(catalog, arbiter, url, token)),
                ),
            ]
            with catalog.session() as db, db.begin():
                db.get(Settings, 1).idle_timeout_minutes = 0
            results.append(
                (
                    f"blabs: cull all {labs}",
                    *measure(lambda: cull_once(catalog, arbiter, url, token)),
                )
            )
            left = count_users(hub, "active")
            catalog.dispose()
        finally:
            hub.close()
    finally:
        fake.stop()
    ref_requests = sum(results[0][1].values())
    ref_seconds = results[0][2]
    print(f"\none cull cycle, {users} users, {labs} running labs (fake Kubernetes API)")
    print(f"{'cycle':<38}{'requests':>9}{'ratio':>7}{'seconds':>9}{'ratio':>7}  by method")
    for name, requests, seconds in results:
        n = sum(requests.values())
        print(
            f"{name:<38}{n:>9}{n / ref_requests:>7.2f}{seconds:>9.2f}"
            f"{seconds / ref_seconds:>7.2f}  {requests}"
        )
    print(f"labs still active after the cull-all cycle: {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
