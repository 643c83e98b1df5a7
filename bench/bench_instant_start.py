"""Click → usable console: cold boot vs resume from a ready state, same guest, same run.

For each guest RAM size (512 MiB and 2 GiB), the demo guest is prepared once (cold boot to
its shell, ready state saved through the launcher, as an admin's "Save as ready state" does),
then started N times cold (``mode=run`` without a ready state) and N times resumed. Each run
starts the real launcher process ("click" = the launcher process is started; the hub adds its
own ~constant spawn overhead on top of both) and records, from the same clock:

- ``console``: the launcher's ``console-ready`` stage (SPICE accepting; for a resume, also
  the state loaded and the VM continued);
- ``frame``: the first non-blank frame of the VM's display — what a SPICE client is sent
  first (read with QMP ``screendump`` on a second monitor, polled every 50 ms; for a cold
  boot this is the BIOS screen, not yet a usable desktop);
- ``answers``: the guest answers input — a line typed at the shell (``echo`` to the serial
  port) arrives in the serial log. For a cold boot it is typed once the shell has printed
  its ready line; for a resume, right after ``console-ready``. This is the "desktop usable"
  figure, and the ratio is given for it.

p50/p95 per mode, and the ratio cold/resume. The guest is the demo image under TCG, as on
these machines (``BLABS_ACCEL=tcg``). Usage: ``python bench/bench_instant_start.py [--runs
10] [--quick]`` (``--quick``: 3 runs, 512 MiB only).
"""

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qemu.qmp import QMPClient  # noqa: E402

from blabs_hub.demo.guest import READY_MARKER, ensure_demo_image  # noqa: E402
from blabs_hub.lab.config import default_cache_dir  # noqa: E402
from blabs_hub.lab.readystate import ReadyPaths, read_meta  # noqa: E402
from blabs_hub.lab.spec import LabPaths, LabSpec  # noqa: E402
from blabs_hub.lab.status import read_stages  # noqa: E402
from tests.lab.qmp_keys import type_text  # noqa: E402


class Lab:
    def __init__(self, spec: LabSpec, accel_cache: Path):
        self.workdir = Path(tempfile.mkdtemp(prefix="blabs-bench-", dir="/tmp"))
        self.paths = LabPaths(self.workdir)
        self.keys = self.workdir / "k.sock"
        spec_file = self.workdir / "spec.json"
        spec_file.write_text(spec.to_json())
        env = {
            **os.environ,
            "BLABS_ACCEL": "tcg",
            "BLABS_ACCEL_CACHE": str(accel_cache),
            "BLABS_QEMU_EXTRA_ARGS": f"-qmp unix:{self.keys},server=on,wait=off",
        }
        self.log = open(self.workdir / "launcher.log", "wb")  # noqa: SIM115
        self.clicked = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "blabs_hub.lab.launcher", "--workdir", str(self.workdir)]
            + ["--spec", str(spec_file)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stage(self, name: str, timeout: float = 120) -> dict:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for record in read_stages(self.paths):
                if record["stage"] == name:
                    return record
                if record["stage"] in ("failed", "stopped"):
                    raise RuntimeError(f"lab ended: {record}")
            time.sleep(0.01)
        raise RuntimeError(f"no {name} stage within {timeout} s")

    def serial(self) -> str:
        try:
            return self.paths.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serial(self, text: str, timeout: float = 120) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if text in self.serial():
                return time.perf_counter()
            time.sleep(0.01)
        raise RuntimeError(f"{text!r} never reached the serial log")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


async def first_frame(lab: Lab, timeout: float = 60) -> float:
    """When the display first shows something (non-uniform pixels), on the bench's clock."""
    deadline = time.perf_counter() + timeout
    while not lab.keys.exists():
        await asyncio.sleep(0.005)
    client = QMPClient("bench-screen")
    await client.connect(str(lab.keys))
    shot = lab.workdir / "screen.ppm"
    try:
        while time.perf_counter() < deadline:
            when = time.perf_counter()
            await client.execute("screendump", {"filename": str(shot)})
            pixels = shot.read_bytes().split(b"\n", 3)[3]
            if pixels.count(pixels[:1]) != len(pixels):
                return when
            await asyncio.sleep(0.05)
    finally:
        await client.disconnect()
    raise RuntimeError("the display stayed blank")


def one_run(spec: LabSpec, accel_cache: Path, resume: bool) -> dict:
    lab = Lab(spec, accel_cache)
    try:
        ready = lab.stage("console-ready")
        console = time.perf_counter()
        if ready.get("resumed") != resume:
            raise RuntimeError(f"expected resumed={resume}: {ready.get('cold_reason')}")
        frame = asyncio.run(first_frame(lab))
        if not resume:
            lab.wait_serial(READY_MARKER)
            time.sleep(0.3)  # the shell prints its prompt after the ready line
        probe = f"p{secrets.token_hex(3)}"
        asyncio.run(type_text(lab.keys, f"echo {probe} > /dev/ttyS0\n"))
        answered = lab.wait_serial(probe)
        return {
            "console": console - lab.clicked,
            "frame": frame - lab.clicked,
            "answers": answered - lab.clicked,
        }
    finally:
        lab.stop()


def prepare(spec: LabSpec, accel_cache: Path) -> dict:
    lab = Lab(spec, accel_cache)
    try:
        lab.stage("console-ready")
        lab.wait_serial(READY_MARKER)
        time.sleep(1)
        asyncio.run(type_text(lab.keys, "export M=prepared\n"))
        time.sleep(0.3)
        lab.proc.send_signal(signal.SIGUSR1)
        saved = lab.stage("state-saved", timeout=180)
        lab.proc.wait(timeout=30)
        return saved
    finally:
        lab.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 runs, 512 MiB only")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    sizes = [512] if args.quick else [512, 2048]
    image = ensure_demo_image(default_cache_dir())
    root = Path(tempfile.mkdtemp(prefix="blabs-bench-ready-", dir="/tmp"))
    accel_cache = root / "accel.json"
    print(f"demo guest under TCG, {runs} runs per mode; times in s from launcher start")
    try:
        for memory in sizes:
            base = LabSpec(
                slug="demo",
                image_path=str(image),
                image_format="qcow2",
                cpus=1,
                memory_mib=memory,
                disk_bus="virtio",
                network="internet",
                guest_profile="generic",
            )
            ready_dir = root / f"ready-{memory}"
            data = {**base.__dict__}
            saved = prepare(
                LabSpec(**{**data, "mode": "prepare", "ready_dir": str(ready_dir)}), accel_cache
            )
            meta = read_meta(ReadyPaths(ready_dir))
            print(
                f"\n{memory} MiB guest: state {meta['state_size'] / 2**20:.0f} MiB, "
                f"saved in {saved['seconds']:.2f} s"
            )
            results = {"cold": [], "resume": []}
            for _ in range(runs):
                results["cold"].append(one_run(base, accel_cache, resume=False))
                resumed = LabSpec(**{**data, "ready_dir": str(ready_dir)})
                results["resume"].append(one_run(resumed, accel_cache, resume=True))
            print(f"  {'mode':8} {'measure':8} {'p50':>7} {'p95':>7}")
            for mode, rows in results.items():
                for key in ("console", "frame", "answers"):
                    values = [r[key] for r in rows]
                    print(f"  {mode:8} {key:8} {pct(values, 0.5):7.2f} {pct(values, 0.95):7.2f}")
            cold = [r["answers"] for r in results["cold"]]
            warm = [r["answers"] for r in results["resume"]]
            print(
                f"  ratio cold/resume, guest answers: p50 "
                f"{statistics.median(cold) / statistics.median(warm):.1f}x, "
                f"p95 {pct(cold, 0.95) / pct(warm, 0.95):.1f}x"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
