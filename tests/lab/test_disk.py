"""Overlays: explicit formats, a clear error naming a missing base, nothing left on failure."""

import json
import os
import subprocess

import pytest

from blabs_hub.lab.disk import DiskError, create_overlay, overlay_argv, remove_overlay


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.raw"
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    return path


def test_overlay_command_states_both_formats_and_an_absolute_base():
    argv = overlay_argv("images/win.vhd", "vpc", "/labs/a/disk.qcow2")
    assert argv[:7] == ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "vpc"]
    assert argv[7] == "-b" and os.path.isabs(argv[8])


def test_an_unknown_base_format_is_refused():
    with pytest.raises(ValueError, match="format"):
        overlay_argv("/images/x", "vmdk", "/labs/a/disk.qcow2")


def test_overlay_is_backed_by_the_base_with_its_format(base, tmp_path):
    overlay = create_overlay(base, "raw", tmp_path / "disk.qcow2")
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-f", "qcow2", "--output=json", str(overlay)],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == "raw"
    assert info["virtual-size"] == 64 * 1024 * 1024


def test_a_missing_base_is_named_and_no_overlay_is_made(tmp_path):
    missing = tmp_path / "gone.qcow2"
    with pytest.raises(DiskError, match=f"base image {missing} does not exist"):
        create_overlay(missing, "qcow2", tmp_path / "disk.qcow2")
    assert not (tmp_path / "disk.qcow2").exists()


def test_a_folder_as_base_is_named(tmp_path):
    with pytest.raises(DiskError, match="is not a regular file"):
        create_overlay(tmp_path, "raw", tmp_path / "disk.qcow2")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_base_is_named(base, tmp_path):
    base.chmod(0)
    with pytest.raises(DiskError, match="is not readable"):
        create_overlay(base, "raw", tmp_path / "disk.qcow2")


def test_a_base_of_the_wrong_format_fails_and_leaves_no_overlay(base, tmp_path):
    with pytest.raises(DiskError, match="cannot create the overlay"):
        create_overlay(base, "qcow2", tmp_path / "disk.qcow2")
    assert not (tmp_path / "disk.qcow2").exists()


def test_a_stale_overlay_is_replaced(base, tmp_path):
    overlay = tmp_path / "disk.qcow2"
    overlay.write_text("left over from a crashed lab")
    create_overlay(base, "raw", overlay)
    assert overlay.read_bytes()[:4] == b"QFI\xfb"


def test_remove_overlay_is_idempotent(tmp_path):
    overlay = tmp_path / "disk.qcow2"
    overlay.write_text("x")
    remove_overlay(overlay)
    remove_overlay(overlay)
    assert not overlay.exists()
