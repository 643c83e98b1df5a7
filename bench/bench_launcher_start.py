"""Launcher start → SPICE socket accepting, p50/p95 over 20 runs, vs QEMU started bare.

Each figure is printed beside its reference from the same run, as a ratio (these shared
machines vary 2x between runs):

- launcher: ``python -m blabs_hub.lab.launcher`` started as a process (interpreter start,
  spec and config, overlay creation, KVM verdict from its cache, QEMU start) until a
  connect() on the lab's SPICE socket succeeds, polled every 5 ms by this script; and until
  the launcher's own "console-ready" stage.
- with a network (``network: internet``): the same launcher until "console-ready", once
  with passt started beside QEMU (the default) and once with QEMU's own slirp NAT: what the
  separate network process costs a student's start.
- reference: the very argv the launcher builds, run directly with ``qemu-system-x86_64``
  over a ready-made overlay, until its SPICE socket accepts. launcher/bare is the price of
  the launcher (mostly Python start-up and qemu-img).

The guest is the demo image under TCG (as on these machines); the VM is stopped between
runs (SIGTERM to the launcher, which quits QEMU). Usage: ``python bench/bench_launcher_start.py
[--runs 20] [--quick]``.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from blabs_hub.demo.guest import ensure_demo_image  # noqa: E402
from blabs_hub.lab.config import default_cache_dir  # noqa: E402
from blabs_hub.lab.disk import create_overlay  # noqa: E402
from blabs_hub.lab.qemu import build_qemu_argv  # noqa: E402
from blabs_hub.lab.spec import LabPaths, LabSpec  # noqa: E402
from blabs_hub.lab.status import read_stages  # noqa: E402


def wait_accepting(sock: Path, proc: subprocess.Popen, timeout: float = 30) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before its SPICE socket accepted")
        if sock.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(sock))
                    return time.perf_counter()
                except OSError:
                    pass
        time.sleep(0.005)
    raise RuntimeError("SPICE socket did not accept within 30 s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_launcher(spec_file: Path, env: dict) -> tuple[float, float]:
    workdir = Path(tempfile.mkdtemp(prefix="blabs-bench-", dir="/tmp"))
    paths = LabPaths(workdir)
    argv = [sys.executable, "-m", "blabs_hub.lab.launcher", "--workdir", str(workdir)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv + ["--spec", str(spec_file)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        accepted = wait_accepting(paths.spice_socket, proc) - start
        deadline = time.perf_counter() + 10
        ready = None
        while ready is None and time.perf_counter() < deadline:
            for record in read_stages(paths):
                if record["stage"] == "console-ready":
                    ready = record["time"]
            time.sleep(0.002)
        # status times are wall-clock: convert the console-ready stamp to "since start"
        ready_after = ready - (time.time() - (time.perf_counter() - start))
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    return accepted, ready_after


def run_bare(spec: LabSpec, base: Path) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="blabs-bench-", dir="/tmp"))
    paths = LabPaths(workdir)
    create_overlay(base, "qcow2", paths.overlay)
    argv = build_qemu_argv(spec, paths, accel="tcg")
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wait_accepting(paths.spice_socket, proc) - start
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def write_spec(spec: LabSpec) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(spec.to_json())
    return Path(f.name)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 runs")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    base = ensure_demo_image(default_cache_dir())
    spec = LabSpec(
        slug="bench",
        image_path=str(base),
        image_format="qcow2",
        cpus=1,
        memory_mib=512,
        disk_bus="virtio",
        network="none",
        guest_profile="generic",
    )
    spec_file = write_spec(spec)
    net_spec_file = write_spec(replace(spec, network="internet"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLABS_")}
    env["BLABS_ACCEL"] = "tcg"
    launcher_accept, launcher_ready, bare, passt, slirp = [], [], [], [], []
    try:
        for _ in range(runs):  # interleaved, so drift on the machine hits all alike
            accepted, ready = run_launcher(spec_file, env)
            launcher_accept.append(accepted)
            launcher_ready.append(ready)
            bare.append(run_bare(spec, base))
            passt.append(run_launcher(net_spec_file, {**env, "BLABS_LAB_NETWORK": "passt"})[1])
            slirp.append(run_launcher(net_spec_file, {**env, "BLABS_LAB_NETWORK": "slirp"})[1])
    finally:
        spec_file.unlink()
        net_spec_file.unlink()

    def row(name: str, values: list[float]) -> str:
        p50, p95 = pct(values, 0.5) * 1000, pct(values, 0.95) * 1000
        ratio = f"{p50 / (pct(bare, 0.5) * 1000):6.1f}x / {p95 / (pct(bare, 0.95) * 1000):.1f}x"
        return f"{name:<38} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   vs bare {ratio}"

    print(f"{runs} runs each, demo guest under TCG, 1 vCPU, 512 MiB")
    print(row("bare QEMU → SPICE accepting (reference)", bare))
    print(row("launcher → SPICE accepting", launcher_accept))
    print(row("launcher → console-ready stage written", launcher_ready))
    print(row("  with a network, passt → console-ready", passt))
    print(row("  with a network, slirp → console-ready", slirp))


if __name__ == "__main__":
    main()
