"""Instant start with real QEMU and the demo guest: prepare, save, resume, and every fallback.

One preparation per module (a cold boot to the shell, a marker typed, the state saved) is
shared by the tests; each fault test works on its own copy of the ready state.
"""

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from blabs_hub.demo.guest import READY_MARKER
from blabs_hub.lab.readystate import ReadyPaths, read_meta, read_save_status, template_status
from tests.harness import wait_for
from tests.lab.conftest import LabProcess, demo_lab_spec, serial, spec_json
from tests.lab.qmp_keys import hmp, keys_socket, monitor_args, type_text

pytestmark = pytest.mark.qemu


def start(spec, accel_cache, keys: Path | None = None, **env) -> LabProcess:
    if keys is not None:
        env["BLABS_QEMU_EXTRA_ARGS"] = monitor_args(keys)
    return LabProcess(spec, env, accel_cache).start()


@pytest.fixture(scope="module")
def prepared(demo_image, accel_cache):
    """A saved ready state of the demo guest with ``M=<marker>`` exported in its shell."""
    root = Path(tempfile.mkdtemp(prefix="blabs-ready-", dir="/tmp"))
    spec = spec_json(
        _demo_spec(demo_image), mode="prepare", ready_dir=str(root / "demo.ready" / "demo")
    )
    keys = keys_socket()
    run = start(spec, accel_cache, keys)
    try:
        run.wait_stage("console-ready")
        wait_for(lambda: READY_MARKER in serial(run), 60, "the demo guest reached no shell")
        time.sleep(1)
        marker = f"blabs-{secrets.token_hex(4)}"
        asyncio.run(type_text(keys, f"export M={marker}\n"))
        time.sleep(0.5)
        (run.workdir / "save-request").touch()
        saved = run.wait_stage("state-saved", timeout=60)
        assert run.wait_exit() == 0
        assert run.stages()[-1]["stage"] == "stopped"
        assert run.leftovers() == [], "the preparation lab left files behind"
        yield {"spec": spec, "marker": marker, "ready": ReadyPaths(Path(spec.ready_dir))}
    finally:
        run.close()
        keys.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    assert saved["state_size"] > 0


def _demo_spec(demo_image):
    return demo_lab_spec(demo_image, network="internet")


@pytest.fixture
def labs(accel_cache):
    started: list[LabProcess] = []
    sockets: list[Path] = []

    def run(spec, keys: bool = False) -> tuple[LabProcess, Path | None]:
        sock = keys_socket() if keys else None
        if sock:
            sockets.append(sock)
        process = start(spec, accel_cache, sock)
        started.append(process)
        return process, sock

    yield run
    for process in started:
        process.close()
    for sock in sockets:
        sock.unlink(missing_ok=True)


def copy_of(prepared, tmp_path) -> tuple[dict, ReadyPaths]:
    """A private copy of the ready state (for tests that damage it) and a spec using it."""
    ready = ReadyPaths(tmp_path / "ready")
    shutil.copytree(prepared["ready"].dir, ready.dir)
    os.chmod(ready.layer, 0o644)
    return spec_json(prepared["spec"], mode="run", ready_dir=str(ready.dir)), ready


def test_the_saved_state_is_a_frozen_layer_with_its_metadata(prepared):
    ready = prepared["ready"]
    meta = read_meta(ready)
    assert meta["state_size"] == ready.state.stat().st_size
    assert meta["qemu_version"].startswith("7.")
    assert "-m" in meta["machine_args"] and not any("/tmp/" in a for a in meta["machine_args"])
    assert ready.layer.stat().st_mode & 0o222 == 0, "the frozen layer must be read-only"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(ready.layer)],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert info["backing-filename-format"] == "qcow2"
    assert info["backing-filename"] == prepared["spec"].image_path
    status = template_status(prepared["spec"].image_path, prepared["spec"])
    # template_status looks beside the image; this state lives elsewhere, so: not ready.
    assert status["instant_start"] is False


def test_two_labs_resume_with_the_marker_in_memory_and_stay_independent(prepared, labs):
    spec = spec_json(prepared["spec"], mode="run")
    marker = prepared["marker"]
    (a, keys_a), (b, keys_b) = labs(spec, keys=True), labs(spec, keys=True)
    for run in (a, b):
        ready = run.wait_stage("console-ready", timeout=60)
        assert ready["resumed"] is True, run.stages()
        assert {"disk-ready", "loading-state", "state-loaded"} <= set(run.stage_names())
        assert "booting" not in run.stage_names(), "a resumed lab must not cold-boot"
        assert ready["timings"]["state_loaded"] <= ready["timings"]["console_ready"]
    # Memory: the shell variable typed before the save is there (no reboot happened).
    asyncio.run(type_text(keys_a, "echo got-$M > /dev/ttyS0\n"))
    wait_for(lambda: f"got-{marker}" in serial(a), 20, "lab A lost the shell's memory")
    assert READY_MARKER not in serial(a), "lab A booted instead of resuming"
    # Guest memory is per lab: a change in A is not in B.
    asyncio.run(type_text(keys_a, "export M=changed-in-a\n"))
    asyncio.run(type_text(keys_b, "echo b-sees-$M > /dev/ttyS0\n"))
    wait_for(lambda: f"b-sees-{marker}" in serial(b), 20, "lab B did not answer")
    # Disk: a write through lab A's drive lands in A's overlay only; the layer is untouched.
    layer_before = prepared["ready"].layer.read_bytes()
    asyncio.run(hmp(keys_a, 'qemu-io disk0 "write -P 0x5a 0 64k"'))
    asyncio.run(hmp(keys_a, 'qemu-io disk0 "flush"'))
    written = b"\x5a" * 65536
    assert written in a.paths.overlay.read_bytes()
    assert written not in b.paths.overlay.read_bytes()
    assert prepared["ready"].layer.read_bytes() == layer_before
    # What the guest sees of the clock: behind by the state's age (documented in instant.py).
    asyncio.run(type_text(keys_b, "echo clock-$(date +%s) > /dev/ttyS0\n"))
    wait_for(lambda: "clock-" in serial(b).split("b-sees-")[-1], 20, "no clock line")
    guest = int(serial(b).rsplit("clock-", 1)[1].split()[0])
    lag = time.time() - guest
    print(f"guest clock after resume is {lag:.1f} s behind the host")
    assert lag >= -2


def damaged(tmp_path, prepared, how: str) -> dict:
    spec, ready = copy_of(prepared, tmp_path)
    if how == "corrupt-stream":
        with open(ready.state, "r+b") as f:
            f.write(b"\0garbage\0" * 8)
    elif how == "corrupt-pages":
        # Change guest memory only (the marker's bytes inside a RAM page), not the stream's
        # structure: QEMU loads it happily, only the checksum can tell.
        data = ready.state.read_bytes()
        at = data.index(prepared["marker"].encode())
        with open(ready.state, "r+b") as f:
            f.seek(at)
            f.write(b"X" * len(prepared["marker"]))
    elif how == "truncated":
        os.truncate(ready.state, ready.state.stat().st_size // 3)
    elif how == "missing":
        ready.state.unlink()
    elif how == "other-qemu":
        meta = read_meta(ready)
        (ready.meta).write_text(json.dumps({**meta, "qemu_version": "6.2.0 (fake)"}))
    elif how == "template-edited":
        spec = spec_json(spec, memory_mib=384, cpus=2)
    return spec


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("corrupt-stream", "could not load the saved state"),
        ("corrupt-pages", "checksum does not match"),
        ("truncated", "truncated"),
        ("missing", "state file is missing"),
        ("other-qemu", "6.2.0 (fake)"),
        ("template-edited", "memory_mib 256 → 384"),
    ],
)
def test_an_unusable_state_falls_back_to_a_cold_boot_naming_the_reason(
    prepared, labs, tmp_path, how, reason
):
    spec = damaged(tmp_path, prepared, how)
    run, _ = labs(spec)
    ready = run.wait_stage("console-ready", timeout=60)
    assert ready["resumed"] is False
    assert reason in ready["cold_reason"], ready
    booting = next(s for s in run.stages() if s["stage"] == "booting")
    assert reason in booting["message"]
    assert reason in run.output()
    if how == "corrupt-stream":  # QEMU was started and refused the stream: one left, booting
        assert run.stage_names().count("loading-state") == 1
    assert run.stages()[-1]["stage"] == "console-ready"


def test_template_status_shows_a_state_made_invalid_by_an_edit(prepared, tmp_path):
    image = tmp_path / "img.qcow2"
    image.write_bytes(b"")
    spec = spec_json(prepared["spec"], image_path=str(image))
    ready = tmp_path / "img.qcow2.ready" / "demo"
    shutil.copytree(prepared["ready"].dir, ready)
    meta = read_meta(ReadyPaths(ready))
    meta["machine"]["image_path"] = str(image)
    (ready / "meta.json").write_text(json.dumps(meta))
    assert template_status(image, spec)["instant_start"] is True
    edited = template_status(image, spec_json(spec, cpus=2))
    assert edited["instant_start"] is False and "cpus 1 → 2" in edited["reason"]


def test_disk_full_while_saving_keeps_the_vm_and_the_old_state(demo_image, labs, tmp_path):
    root = tmp_path / "small"
    root.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(root)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        old = root / "demo"
        old.mkdir()
        (old / "meta.json").write_text('{"previous": true}')
        spec = spec_json(_demo_spec(demo_image), mode="prepare", ready_dir=str(old), memory_mib=256)
        run, keys = labs(spec, keys=True)
        run.wait_stage("console-ready", timeout=60)
        time.sleep(1)
        (run.workdir / "save-request").touch()
        failed = run.wait_stage("save-failed", timeout=60)
        assert "No space left on device" in failed["message"], failed
        assert "the VM continues" in failed["message"]
        left = sorted(p.name for p in root.iterdir())
        assert left == ["demo", "demo.save-status.json"], "a half-written save is left"
        # What the service shows the admin:
        assert read_save_status(old)["stage"] == "save-failed"
        assert (old / "meta.json").read_text() == '{"previous": true}'
        status = asyncio.run(hmp(keys, "info status"))
        assert "running" in status, status
        # Free space, save again: now it works and replaces the old state.
        subprocess.run(["mount", "-o", "remount,size=300M", str(root)], check=True)
        (run.workdir / "save-request").touch()
        run.wait_stage("state-saved", timeout=60)
        assert run.wait_exit() == 0
        assert read_meta(ReadyPaths(old))["state_size"] > 0
        assert read_save_status(old)["stage"] == "state-saved"
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
