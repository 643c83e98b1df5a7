"""qemu-img really runs under its limits: too little memory fails cleanly, too long is killed."""

import asyncio
import os

import psutil

from blabs_hub.images import qemu_img


def test_too_little_address_space_is_a_failure_not_a_crash_of_ours(images):
    limits = qemu_img.Limits(cpu_seconds=5, memory_bytes=16 << 20, timeout_seconds=20)
    result = asyncio.run(qemu_img.run(qemu_img.info_argv(str(images["qcow2"]), "qcow2"), limits))
    assert result.returncode != 0


def test_a_slow_qemu_img_is_killed_at_its_deadline(tmp_path):
    # A named pipe nobody writes to: qemu-img blocks opening it, for as long as it is let.
    stuck = tmp_path / "stuck.raw"
    os.mkfifo(stuck)
    limits = qemu_img.Limits(cpu_seconds=60, memory_bytes=2 << 30, timeout_seconds=0.5)
    argv = qemu_img.convert_argv(str(stuck), "raw", str(tmp_path / "out.qcow2"))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        asyncio.run(qemu_img.run(argv, limits))
    except qemu_img.QemuImgTimeout as e:
        assert "stopped" in str(e)
    else:
        raise AssertionError("no timeout")
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before  # nothing left running


def test_within_limits_it_works(images):
    limits = qemu_img.Limits(cpu_seconds=30, memory_bytes=1 << 30, timeout_seconds=30)
    result = asyncio.run(qemu_img.run(qemu_img.info_argv(str(images["vhdx"]), "vhdx"), limits))
    assert result.returncode == 0 and result.json()["format"] == "vhdx"
