"""Fixtures for the lab runtime: a launcher run as a real process, stopped by its own PID."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from blabs_hub.lab.accel import resolve_accel_async
from blabs_hub.lab.spec import LabPaths, LabSpec
from blabs_hub.lab.status import FINAL_STAGES, read_stages
from tests.harness import pid_alive

REPO = Path(__file__).resolve().parents[2]


class LabProcess:
    """One launcher process and its lab folder (short, under /tmp: sockets need <108 bytes)."""

    def __init__(self, spec: LabSpec, env: dict, accel_cache: Path):
        self.spec = spec
        self.workdir = Path(tempfile.mkdtemp(prefix="blabs-lab-", dir="/tmp"))
        self.paths = LabPaths(self.workdir)
        self.spec_file = self.workdir.parent / f"{self.workdir.name}.json"
        self.spec_file.write_text(spec.to_json())
        self.env = {
            **os.environ,
            "BLABS_ACCEL": "tcg",
            "BLABS_ACCEL_CACHE": str(accel_cache),
            **env,
        }
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir.parent / f"{self.workdir.name}.log"

    def start(self) -> "LabProcess":
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "blabs_hub.lab.launcher", "--workdir", str(self.workdir)]
                + ["--spec", str(self.spec_file)],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stages(self) -> list[dict]:
        return read_stages(self.paths)

    def stage_names(self) -> list[str]:
        return [s["stage"] for s in self.stages()]

    def wait_stage(self, *wanted: str, timeout: float = 60) -> dict:
        """Wait for one of ``wanted`` (or a final stage) and return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.stages():
                if record["stage"] in wanted:
                    return record
                if record["stage"] in FINAL_STAGES:
                    raise AssertionError(f"lab ended early: {record}\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no stage {wanted} within {timeout} s: {self.stages()}")

    def wait_exit(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def qemu_pid(self) -> int:
        return next(s["qemu_pid"] for s in self.stages() if "qemu_pid" in s)

    def leftovers(self) -> list[str]:
        """Files the launcher must have removed: the disk, sockets, firmware vars, TPM state."""
        keep = {"status.jsonl", "serial.log", "console.jsonl"}
        return sorted(p.name for p in self.workdir.iterdir() if p.name not in keep)

    def close(self) -> None:
        qemu = [s["qemu_pid"] for s in self.stages() if "qemu_pid" in s]
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in qemu:  # belt and braces: never leave a QEMU behind a failed test
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.spec_file.unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)


def serial(run: LabProcess) -> str:
    """What the lab's guest has written to its serial port so far."""
    try:
        return run.paths.serial_log.read_text(errors="replace")
    except FileNotFoundError:
        return ""


@pytest.fixture(scope="session")
def accel_cache(tmp_path_factory) -> Path:
    """A KVM-verdict cache private to this test session."""
    return tmp_path_factory.mktemp("accel") / "accel.json"


@pytest.fixture(scope="session")
def kvm_unusable(accel_cache) -> bool:
    """True where /dev/kvm exists but cannot run a guest; probed once, cached for launchers."""
    if not Path("/dev/kvm").exists():
        return False
    choice = asyncio.run(resolve_accel_async("auto", cache_file=accel_cache))
    return choice.accel == "tcg"


def demo_lab_spec(demo_image, **overrides) -> LabSpec:
    """The demo guest as a small generic lab (no network unless asked for)."""
    fields = {
        "slug": "demo",
        "image_path": str(demo_image),
        "image_format": "qcow2",
        "cpus": 1,
        "memory_mib": 256,
        "firmware": "bios",
        "disk_bus": "virtio",
        "network": "none",
        "guest_profile": "generic",
    }
    return LabSpec(**{**fields, **overrides})


@pytest.fixture
def demo_spec(demo_image) -> LabSpec:
    return demo_lab_spec(demo_image)


@pytest.fixture
def lab(accel_cache):
    """``lab(spec, **env)`` → a started :class:`LabProcess`; all are stopped after the test."""
    started: list[LabProcess] = []

    def start(spec: LabSpec, **env) -> LabProcess:
        process = LabProcess(spec, env, accel_cache).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def spec_json(spec: LabSpec, **changes) -> LabSpec:
    """A copy of ``spec`` with some fields changed."""
    data = json.loads(spec.to_json())
    data.update(changes)
    return LabSpec(**data)
