"""The launcher with real QEMU and the real demo guest: stages, input, and no leftovers."""

import asyncio
import os
import secrets
import signal
import socket
import time
from pathlib import Path

import pytest

from blabs_hub.demo.guest import READY_MARKER
from tests.harness import pid_alive, wait_for
from tests.lab.conftest import serial, spec_json
from tests.lab.qmp_keys import keys_socket, monitor_args, screendump, type_text

pytestmark = pytest.mark.qemu


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line mentions ``text`` (a lab folder): QEMU, swtpm."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if (
            text in cmdline
            and "blabs_hub.lab.launcher" not in cmdline
            and pid_alive(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def assert_nothing_left(lab):
    assert processes_mentioning(str(lab.workdir)) == []
    assert lab.leftovers() == []


def test_launcher_boots_the_demo_guest_to_console_ready(lab, demo_spec):
    run = lab(demo_spec)
    ready = run.wait_stage("console-ready")
    assert run.stage_names() == ["preparing-disk", "booting", "console-ready"]
    booting = run.stages()[1]
    assert booting["accel"] == "tcg" and booting["slow_mode"] is True
    assert "slow mode" in booting["message"]
    assert pid_alive(ready["qemu_pid"])
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(run.paths.spice_socket))


def test_demo_guest_shell_takes_typed_input_that_lands_in_the_serial_log(lab, demo_spec, tmp_path):
    keys = keys_socket()
    run = lab(demo_spec, BLABS_QEMU_EXTRA_ARGS=monitor_args(keys))
    try:
        run.wait_stage("console-ready")
        wait_for(
            lambda: READY_MARKER in serial(run),
            60,
            "the demo guest did not reach its shell",
        )
        time.sleep(1)  # the shell prints its prompt after the marker
        marker = f"blabs-{secrets.token_hex(4)}"
        asyncio.run(type_text(keys, f"echo {marker} > /dev/ttyS0\n"))
        wait_for(
            lambda: marker in serial(run),
            20,
            "the typed line did not reach the serial log",
        )
        asyncio.run(screendump(keys, tmp_path / "screen.ppm"))
        pixels = (tmp_path / "screen.ppm").read_bytes().split(b"\n", 3)[3]
        assert len(set(pixels)) > 1, "the guest's screen is blank"
    finally:
        keys.unlink(missing_ok=True)


def test_sigterm_stops_qemu_and_removes_overlay_and_sockets(lab, demo_spec):
    run = lab(demo_spec)
    qemu = run.wait_stage("console-ready")["qemu_pid"]
    assert run.paths.overlay.exists()
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert run.stages()[-1]["stage"] == "stopped"
    assert not pid_alive(qemu)
    assert_nothing_left(run)


def test_sigterm_while_booting_still_cleans_up(lab, demo_spec):
    run = lab(demo_spec)
    run.wait_stage("booting")
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert run.stages()[-1]["stage"] == "stopped"
    assert_nothing_left(run)


def test_a_missing_image_fails_fast_naming_the_file_before_starting_qemu(lab, demo_spec):
    missing = "/tmp/blabs-no-such-image.qcow2"
    run = lab(spec_json(demo_spec, image_path=missing))
    assert run.wait_exit() == 1
    assert run.stage_names() == ["preparing-disk", "failed"]
    assert missing in run.stages()[-1]["message"]
    assert_nothing_left(run)


def test_qemu_exiting_during_boot_fails_with_its_error_and_leaves_nothing(lab, demo_spec):
    run = lab(demo_spec, BLABS_QEMU_EXTRA_ARGS="-device blabs-no-such-device")
    assert run.wait_exit() == 1
    failed = run.stages()[-1]
    assert failed["stage"] == "failed"
    assert "QEMU exited with status 1" in failed["message"]
    assert "blabs-no-such-device" in failed["message"]
    assert_nothing_left(run)


def test_qemu_dying_after_console_ready_is_reported_and_cleaned_up(lab, demo_spec):
    run = lab(demo_spec)
    qemu = run.wait_stage("console-ready")["qemu_pid"]
    os.kill(qemu, signal.SIGKILL)
    assert run.wait_exit() == 1
    assert run.stages()[-1]["stage"] == "failed"
    assert "killed by signal SIGKILL" in run.stages()[-1]["message"]
    assert_nothing_left(run)


def test_a_console_socket_that_never_appears_fails_within_the_timeout(lab, demo_spec):
    elsewhere = Path(f"/tmp/blabs-elsewhere-{secrets.token_hex(4)}.sock")
    # A later -spice option moves the socket: QEMU runs, but the lab's socket never appears.
    run = lab(
        demo_spec,
        BLABS_CONSOLE_TIMEOUT="2",
        BLABS_QEMU_EXTRA_ARGS=f"-spice addr={elsewhere}",
    )
    try:
        qemu = run.wait_stage("booting")["qemu_pid"]
        assert run.wait_exit() == 1
        assert "did not appear within 2 s" in run.stages()[-1]["message"]
        assert not pid_alive(qemu)
        assert_nothing_left(run)
    finally:
        elsewhere.unlink(missing_ok=True)


def test_qemu_environment_has_no_jupyterhub_variables(lab, demo_spec):
    run = lab(demo_spec, JUPYTERHUB_API_TOKEN="hub-secret", JUPYTERHUB_USER="alice")
    qemu = run.wait_stage("console-ready")["qemu_pid"]
    environ = Path(f"/proc/{qemu}/environ").read_bytes().split(b"\0")
    names = [e.split(b"=", 1)[0].decode() for e in environ if e]
    assert names and not [n for n in names if n.startswith("JUPYTERHUB_")]
    assert b"hub-secret" not in b"\0".join(environ)


def test_a_sigkilled_launcher_takes_qemu_with_it(lab, demo_spec):
    run = lab(demo_spec)
    qemu = run.wait_stage("console-ready")["qemu_pid"]
    run.proc.kill()
    run.proc.wait()
    wait_for(lambda: not pid_alive(qemu), 5, "QEMU outlived its SIGKILLed launcher")


@pytest.mark.parametrize(
    "changes",
    [
        dict(guest_profile="windows", disk_bus="sata", network="internet", firmware="bios"),
        dict(guest_profile="windows", disk_bus="virtio", network="none", firmware="uefi"),
        dict(guest_profile="windows", disk_bus="sata", firmware="uefi-secure-tpm"),
        dict(guest_profile="generic", disk_bus="sata", network="internet", firmware="uefi"),
    ],
    ids=["win-sata-bios", "win-virtio-uefi", "win11-secure-tpm", "generic-sata-uefi"],
)
def test_every_machine_profile_starts_under_qemu_and_cleans_up(lab, demo_spec, changes):
    run = lab(spec_json(demo_spec, memory_mib=512, **changes))
    run.wait_stage("console-ready")
    time.sleep(1)  # still running a second later: QEMU accepted every device
    assert run.proc.poll() is None, run.output()
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert_nothing_left(run)


def test_auto_accel_on_this_host_boots_in_slow_mode_with_the_reason(lab, demo_spec, kvm_unusable):
    if not kvm_unusable:
        pytest.skip("only where /dev/kvm exists but cannot run guests")
    run = lab(demo_spec, BLABS_ACCEL="auto")
    booting = run.wait_stage("booting")
    assert booting["accel"] == "tcg" and booting["slow_mode"] is True
    assert "KVM is unusable" in booting["accel_reason"]


def test_a_kvm_internal_error_is_reported_as_failed(lab, demo_spec, kvm_unusable):
    if not kvm_unusable:
        pytest.skip("only where /dev/kvm exists but cannot run guests")
    run = lab(demo_spec, BLABS_ACCEL="kvm")
    assert run.wait_exit(timeout=90) == 1
    message = run.stages()[-1]["message"]
    assert "internal-error" in message and "KVM internal error" in message
    assert_nothing_left(run)
