"""A class burst: 200 lab starts within a few seconds, our admission vs JupyterHub's limits.

Each configuration gets a real hub process (proxy, blabs service, culler) against the same
fake Kubernetes API (``tests/kube/fakekube.py``), where every pod becomes Ready an injected
``--pod-delay`` seconds after it is created. Users fire three named-server starts each, all
at once, with ``max_concurrent_vms=100`` and ``per_user_vm_limit=2``. Printed per run:

- **over-admissions**: pods beyond the hub limit at the worst sampled moment, plus pods
  beyond the per-user limit — must be 0;
- **refusals** by message class, and how many were admitted;
- **settled**: seconds from the first POST until every admitted lab is ready or has failed
  (**failed**: admitted, then the start failed, e.g. the hub's ``http_timeout``);
- **API p95**: a probe ``GET /hub/api/users/<name>`` every 50 ms during the burst.

Configurations: ``blabs`` (BlabsKubeSpawner, our admission, start gate of 20), ``blabs-nogate``
(the gate at 200: admission alone), ``stock`` (plain KubeSpawner, ``active_server_limit=100``,
``named_server_limit_per_user=2``, ``concurrent_spawn_limit=20``) and ``stock-nothrottle`` (the
same without the spawn throttle). The reference for ratios is ``stock-nothrottle``.

    .venv/bin/python bench/bench_admission_burst.py            # 200 starts, ~3 minutes
    .venv/bin/python bench/bench_admission_burst.py --quick    # 60 starts, max 30

Figures on these shared machines vary by 2x run to run: compare within one run.
"""

import argparse
import collections
import concurrent.futures
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import RunningHub  # noqa: E402
from tests.kube.conftest import LAB_IMAGE, kube_hub_env, seed_catalog  # noqa: E402
from tests.kube.fakekube import Behavior, FakeKube  # noqa: E402

COMMON = (
    'c.JupyterHub.authenticator_class = "dummy"\n'
    "c.JupyterHub.log_level = 'WARN'\n"
    "c.KubeSpawner.start_timeout = 120\n"
    "c.KubeSpawner.http_timeout = 30\n"
    f"c.KubeSpawner.image = {LAB_IMAGE!r}\n"
)


def stock(max_vms: int, per_user: int, throttle: int) -> str:
    return COMMON + (
        'c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"\n'
        f"c.JupyterHub.active_server_limit = {max_vms}\n"
        f"c.JupyterHub.named_server_limit_per_user = {per_user}\n"
        f"c.JupyterHub.concurrent_spawn_limit = {throttle}\n"
    )


def classify(status: int, message: str) -> str:
    for words, kind in [
        ("lab seats are in use", "full (ours)"),
        ("You already have", "user-limit (ours)"),
        ("Active user limit exceeded", "429 active_server_limit"),
        ("named servers", "400 named_server_limit"),
        ("Too many users", "429 concurrent_spawn_limit"),
    ]:
        if words in message:
            return kind
    return f"{status} other: {message[:60]}"


def percentile(values: list[float], p: float) -> float:
    values = sorted(values) or [0.0]
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class Sampler(threading.Thread):
    """Probes the hub API and counts pods (overall and per user) while the burst runs."""

    def __init__(self, hub: RunningHub, fake: FakeKube, probe_user: str):
        super().__init__(daemon=True)
        self.hub, self.fake, self.probe_user = hub, fake, probe_user
        self.stopping = threading.Event()
        self.latencies: list[float] = []
        self.max_pods = 0
        self.max_user_pods: dict[str, int] = collections.Counter()

    def run(self):
        while not self.stopping.is_set():
            t = time.perf_counter()
            self.hub.api("GET", f"/users/{self.probe_user}")
            self.latencies.append(time.perf_counter() - t)
            pods = self.fake.pods()
            self.max_pods = max(self.max_pods, len(pods))
            per_user = collections.Counter(
                (p.get("metadata", {}).get("annotations") or {}).get("hub.jupyter.org/username")
                for p in pods.values()
            )
            for user, n in per_user.items():
                self.max_user_pods[user] = max(self.max_user_pods[user], n)
            time.sleep(0.05)


def run(name, fake, kubeconfig, extra, env, users, max_vms, per_user, pod_delay) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"bench-burst-{name}-"))
    hub_env = kube_hub_env(
        kubeconfig,
        BLABS_MAX_CONCURRENT_VMS=str(max_vms),
        BLABS_PER_USER_VM_LIMIT=str(per_user),
        **env,
    )
    hub = RunningHub(root, extra, hub_env)
    hub.data_dir.mkdir(parents=True, exist_ok=True)
    seed_catalog(hub.catalog_url, [dict(slug="lab", title="Lab")])
    hub.start()
    try:
        names = [f"u{i}" for i in range(users)]
        starts = [(u, s) for s in ("a", "b", "c") for u in names]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(hub.create_user, [*names, "probe"]))
        fake.reset()
        fake.behave(Behavior(running_after=pod_delay))
        body = {"user_options": {"template": "lab"}} if name.startswith("blabs") else None
        sampler = Sampler(hub, fake, "probe")
        sampler.start()
        t0 = time.perf_counter()

        def post(start):
            user, server = start
            r = hub.api("POST", f"/users/{user}/servers/{server}", json=body)
            return start, r.status_code, (r.json().get("message", "") if r.text else "")

        with concurrent.futures.ThreadPoolExecutor(len(starts)) as pool:
            answers = list(pool.map(post, starts))
        fired = time.perf_counter() - t0
        admitted = [s for s, status, _m in answers if status in (201, 202)]
        refusals = collections.Counter(
            classify(status, m) for _s, status, m in answers if status not in (201, 202)
        )
        pending = set(admitted)
        failed = 0
        deadline = time.monotonic() + 240
        while pending and time.monotonic() < deadline:
            for user in {u for u, _s in pending}:
                r = hub.api("GET", f"/users/{user}")
                if r.status_code != 200:
                    continue
                model = r.json().get("servers", {})
                for u, s in list(pending):
                    if u != user:
                        continue
                    if model.get(s, {}).get("ready"):
                        pending.discard((u, s))
                    elif s not in model:
                        pending.discard((u, s))  # the start failed after admission
                        failed += 1
            time.sleep(0.2)
        all_ready = time.perf_counter() - t0
        sampler.stopping.set()
        sampler.join()
        over = max(0, sampler.max_pods - max_vms) + sum(
            max(0, n - per_user) for n in sampler.max_user_pods.values()
        )
        return {
            "name": name,
            "starts": len(starts),
            "fired": fired,
            "admitted": len(admitted),
            "failed": failed + len(pending),
            "refusals": refusals,
            "over": over,
            "max_pods": sampler.max_pods,
            "all_ready": all_ready,
            "p95": percentile(sampler.latencies, 95),
            "p50": percentile(sampler.latencies, 50),
        }
    finally:
        hub.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 starts, max_concurrent_vms=30")
    parser.add_argument("--pod-delay", type=float, default=3.0, help="seconds until pod Ready")
    args = parser.parse_args(argv)
    users, max_vms, per_user = (20, 30, 2) if args.quick else (67, 100, 2)
    configs = [
        ("blabs", COMMON, {"BLABS_MAX_CONCURRENT_STARTS": "20"}),
        ("blabs-nogate", COMMON, {"BLABS_MAX_CONCURRENT_STARTS": "1000"}),
        ("stock", stock(max_vms, per_user, 20), {}),
        ("stock-nothrottle", stock(max_vms, per_user, 0), {}),
    ]
    fake = FakeKube().start()
    try:
        kubeconfig = fake.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
        results = [
            run(name, fake, kubeconfig, extra, env, users, max_vms, per_user, args.pod_delay)
            for name, extra, env in configs
        ]
    finally:
        fake.stop()
    ref = results[-1]
    print(
        f"\n{results[0]['starts']} starts ({users} users x 3 named servers) fired at once; "
        f"max_concurrent_vms={max_vms}, per_user_vm_limit={per_user}; pods Ready "
        f"{args.pod_delay:.0f} s after create (fake API). Ratio = / {ref['name']}."
    )
    print(
        f"{'config':<18}{'fired s':>8}{'admitted':>9}{'failed':>7}{'over':>5}{'max pods':>9}"
        f"{'settled s':>12}{'ratio':>7}{'API p50 ms':>11}{'p95 ms':>8}{'ratio':>7}"
    )
    for r in results:
        print(
            f"{r['name']:<18}{r['fired']:>8.1f}{r['admitted']:>9}{r['failed']:>7}{r['over']:>5}"
            f"{r['max_pods']:>9}{r['all_ready']:>12.1f}{r['all_ready'] / ref['all_ready']:>7.2f}"
            f"{r['p50'] * 1000:>11.0f}{r['p95'] * 1000:>8.0f}{r['p95'] / ref['p95']:>7.2f}"
        )
    for r in results:
        refused = ", ".join(f"{n} {kind}" for kind, n in r["refusals"].most_common())
        print(f"  {r['name']:<16} refused: {refused or 'none'}")
    return 1 if any(r["over"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
