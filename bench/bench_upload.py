"""Image upload: 2 GiB through the hub's proxy into the image store, as an admin would.

Printed beside references from the same run (these shared machines vary 2x between runs):

- upload MB/s (create → chunks → finish → ready, through configurable-http-proxy and the
  blabs service, sha256 on both sides) vs a plain local copy of the same file on the same
  disk (``shutil.copyfile`` into the hub's data folder), as a ratio;
- peak RSS of the blabs service, the hub and the proxy during the upload vs at rest: the
  upload must stream, so the service's peak may not grow with the file;
- hub API latency (``GET /hub/api/users``, and the service's ``GET /api/images``) p50/p95
  while the upload runs vs the same requests at rest: the hub must stay responsive.

Usage: ``python bench/bench_upload.py [--gib 2] [--chunk-mb 16]``. Starts its own hub on
loopback in a temp folder (dummy authenticator) and stops it by PID.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blabs_hub.catalog_client import Client  # noqa: E402
from tests.harness import RunningHub  # noqa: E402

CONFIG = """
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.log_level = "INFO"
for _svc in c.JupyterHub.services:
    if _svc["name"] == "blabs":
        _svc["environment"]["BLABS_UPLOAD_CHUNK_MB"] = "{chunk}"
"""


def make_file(path: Path, size: int) -> None:
    """Incompressible-looking data (repeated random MiB): nothing is sparse or zero."""
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)


def service_process(hub: RunningHub) -> psutil.Process:
    for child in psutil.Process(hub.process.pid).children(recursive=True):
        if "blabs_hub.service" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("blabs service process not found")


class Sampler(threading.Thread):
    """Peak RSS of some processes, and latencies of requests made while it runs."""

    def __init__(self, procs: dict[str, psutil.Process], hub: RunningHub):
        super().__init__(daemon=True)
        self.procs, self.hub = procs, hub
        self.peak = dict.fromkeys(procs, 0)
        self.latency = {"hub": [], "service": []}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for name, p in self.procs.items():
                self.peak[name] = max(self.peak[name], p.memory_info().rss)
            for kind, call in (
                ("hub", lambda: self.hub.api("GET", "/users")),
                ("service", lambda: self.hub.service_api("GET", "/images")),
            ):
                t = time.perf_counter()
                assert call().status_code == 200
                self.latency[kind].append(time.perf_counter() - t)
            time.sleep(0.05)


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2)
    ap.add_argument("--chunk-mb", type=int, default=16)
    args = ap.parse_args()
    size = int(args.gib * (1 << 30)) >> 20 << 20
    root = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=os.environ.get("BENCH_DIR")))
    hub = RunningHub(root / "hub", CONFIG.format(chunk=args.chunk_mb))
    try:
        hub.start()
        source = root / "source.raw"
        make_file(source, size)
        # Reference: a plain copy on the same disk (into the hub's own data folder).
        copy = hub.data_dir / "copy.raw"
        t = time.perf_counter()
        shutil.copyfile(source, copy)
        os.sync()
        copy_s = time.perf_counter() - t
        copy.unlink()

        procs = {
            "service": service_process(hub),
            "hub": psutil.Process(hub.process.pid),
            "proxy": psutil.Process(int((hub.data_dir / "jupyterhub-proxy.pid").read_text())),
        }
        rest = {k: v.memory_info().rss for k, v in procs.items()}
        idle = Sampler(procs, hub)
        idle.start()
        time.sleep(3)
        idle.stop.set()
        idle.join()

        busy = Sampler(procs, hub)
        busy.start()
        t = time.perf_counter()
        image = Client(hub.url, hub.admin_token, timeout=600).upload(str(source), "bench")
        os.sync()
        upload_s = time.perf_counter() - t
        busy.stop.set()
        busy.join()
        assert image["status"] == "ready", image

        mb = size / 1e6
        print(f"upload of {size / (1 << 30):.2f} GiB, chunks of {args.chunk_mb} MiB")
        print(f"  local copy      {mb / copy_s:8.1f} MB/s  ({copy_s:.1f} s)")
        print(
            f"  upload (proxy)  {mb / upload_s:8.1f} MB/s  ({upload_s:.1f} s)  "
            f"ratio {copy_s / upload_s:.2f} of a local copy"
        )
        for name in procs:
            print(
                f"  {name:8s} RSS peak {busy.peak[name] / 2**20:7.1f} MiB during the upload, "
                f"{rest[name] / 2**20:6.1f} MiB at rest"
            )
        for kind, label in (("hub", "hub GET /hub/api/users"), ("service", "service GET /images")):
            print(
                f"  {label:24s} p50 {p(busy.latency[kind], 50):6.1f} ms  "
                f"p95 {p(busy.latency[kind], 95):6.1f} ms during the upload "
                f"({len(busy.latency[kind])} requests); at rest p95 "
                f"{p(idle.latency[kind], 95):6.1f} ms"
            )
    finally:
        hub.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
