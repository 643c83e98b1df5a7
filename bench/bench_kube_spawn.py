"""Spawning labs on Kubernetes: hub overhead and API writes, BlabsKubeSpawner vs KubeSpawner.

Both run in the same run, through a real hub process each, against the same fake
Kubernetes API (``tests/kube/fakekube.py``), where every pod becomes Running and Ready an
injected 2 s after it is created. A spawn is timed from the REST ``POST`` to the server
being ready; **hub overhead** is that time minus the injected 2 s (what the hub, the
spawner and the API round trips add). **API writes per spawn** counts the fake's
create/delete requests per spawn-and-stop cycle.

    .venv/bin/python bench/bench_kube_spawn.py            # 200 spawns each, ~2-3 minutes
    .venv/bin/python bench/bench_kube_spawn.py --quick    # 40 spawns each

Figures on these shared machines vary by 2x run to run: compare within one run.
"""

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import RunningHub  # noqa: E402
from tests.kube.conftest import LAB_IMAGE, kube_hub_env, seed_catalog  # noqa: E402
from tests.kube.fakekube import Behavior, FakeKube  # noqa: E402

RUNNING_AFTER = 2.0

COMMON = (
    'c.JupyterHub.authenticator_class = "dummy"\n'
    "c.JupyterHub.concurrent_spawn_limit = 200\n"
    "c.JupyterHub.log_level = 'WARN'\n"
    "c.KubeSpawner.start_timeout = 60\n"
    "c.KubeSpawner.http_timeout = 30\n"
    f"c.KubeSpawner.image = {LAB_IMAGE!r}\n"
)
STOCK = COMMON + 'c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"\n'


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def one_spawn(hub: RunningHub, user: str, body: dict | None) -> float:
    started = time.perf_counter()
    r = hub.api("POST", f"/users/{user}/servers/lab", json=body)
    if r.status_code == 202:  # slower than the hub's slow_spawn_timeout: wait for ready
        while not hub.api("GET", f"/users/{user}").json()["servers"]["lab"]["ready"]:
            time.sleep(0.05)
    elif r.status_code != 201:
        raise RuntimeError(f"spawn {user}: {r.status_code} {r.text}")
    return time.perf_counter() - started


def run(name: str, fake: FakeKube, kubeconfig: Path, extra: str, spawns: int, workers: int):
    root = Path(tempfile.mkdtemp(prefix=f"bench-kube-{name}-"))
    hub = RunningHub(root, extra, kube_hub_env(kubeconfig, BLABS_PER_USER_VM_LIMIT="100"))
    hub.data_dir.mkdir(parents=True, exist_ok=True)
    seed_catalog(hub.catalog_url, [dict(slug="lab", title="Lab")])
    hub.start()
    try:
        users = [f"{name}-{i}" for i in range(spawns)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(hub.create_user, users))
            fake.reset()
            fake.behave(Behavior(running_after=RUNNING_AFTER))
            body = {"user_options": {"template": "lab"}} if name == "blabs" else None
            took = list(pool.map(lambda u: one_spawn(hub, u, body), users))
            spawn_writes = fake.writes
            stops = pool.map(lambda u: hub.api("DELETE", f"/users/{u}/servers/lab"), users)
            assert all(r.status_code in (202, 204) for r in stops)
        deadline = time.monotonic() + 60
        while fake.pods() and time.monotonic() < deadline:
            time.sleep(0.2)
        invalid = list(fake.invalid)
        cycle_writes = fake.writes
    finally:
        hub.stop()
    overhead = [t - RUNNING_AFTER for t in took]
    return {
        "name": name,
        "spawns": spawns,
        "p50": statistics.median(overhead),
        "p95": percentile(overhead, 95),
        "max": max(overhead),
        "spawn_writes": spawn_writes / spawns,
        "cycle_writes": cycle_writes / spawns,
        "invalid": len(invalid),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=200)
    parser.add_argument("--workers", type=int, default=20, help="concurrent spawn requests")
    parser.add_argument("--quick", action="store_true", help="40 spawns each")
    args = parser.parse_args(argv)
    spawns = 40 if args.quick else args.spawns
    fake = FakeKube().start()
    try:
        kubeconfig = fake.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
        results = [
            run("blabs", fake, kubeconfig, COMMON, spawns, args.workers),
            run("stock", fake, kubeconfig, STOCK, spawns, args.workers),
        ]
    finally:
        fake.stop()
    print(
        f"\n{spawns} spawns each, {args.workers} at a time; pods Ready {RUNNING_AFTER:.0f} s "
        "after create (fake API, every pod validated on 1.32 + 1.37)"
    )
    print(
        f"{'spawner':<22}{'overhead p50':>14}{'p95':>9}{'max':>9}"
        f"{'writes/spawn':>14}{'writes/cycle':>14}{'invalid':>9}"
    )
    labels = {"blabs": "BlabsKubeSpawner", "stock": "KubeSpawner (stock)"}
    for r in results:
        print(
            f"{labels[r['name']]:<22}{r['p50'] * 1000:>12.0f}ms{r['p95'] * 1000:>7.0f}ms"
            f"{r['max'] * 1000:>7.0f}ms{r['spawn_writes']:>14.2f}{r['cycle_writes']:>14.2f}"
            f"{r['invalid']:>9}"
        )
    return 1 if any(r["invalid"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
