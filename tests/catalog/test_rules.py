"""The pure rules of the catalog, without processes: validation, verdicts, argv, VHD footers."""

import struct

import pytest

from blabs_hub.catalog.rules import validate_settings, validate_template, validate_upload
from blabs_hub.images import qemu_img
from blabs_hub.images.inspect import (
    Inspection,
    VHDFooter,
    check_verdict,
    image_verdict,
    inspect_file,
    parse_vhd_footer,
    qemu_info_verdict,
)
from blabs_hub.service.api.templates import users_running

IMAGES = {1: {"name": "win11", "status": "ready"}, 2: {"name": "half", "status": "uploading"}}
GOOD = {"slug": "win-11", "title": "Windows 11", "image_id": 1}
ALL = ["qcow2", "raw", "vhd", "vhdx"]
GIB = 1024**3


def fields(errors):
    return [e["field"] for e in errors]


def test_a_minimal_template_gets_the_defaults():
    clean, errors = validate_template(GOOD, IMAGES, set())
    assert errors == []
    assert clean["cpus"] == 2 and clean["firmware"] == "bios" and clean["enabled"] is True


@pytest.mark.parametrize(
    "change, field",
    [
        ({"slug": "Win 11"}, "slug"),
        ({"slug": "../etc"}, "slug"),
        ({"slug": "a" * 31}, "slug"),
        ({"slug": "ends-"}, "slug"),
        ({"title": ""}, "title"),
        ({"image_id": 9}, "image_id"),
        ({"image_id": 2}, "image_id"),
        ({"image_id": "1"}, "image_id"),
        ({"cpus": "4"}, "cpus"),
        ({"cpus": True}, "cpus"),
        ({"cpus": 0}, "cpus"),
        ({"memory_mib": 128}, "memory_mib"),
        ({"memory_mib": 4096.5}, "memory_mib"),
        ({"firmware": "coreboot"}, "firmware"),
        ({"disk_bus": "ide"}, "disk_bus"),
        ({"network": "lan"}, "network"),
        ({"guest_profile": "mac"}, "guest_profile"),
        ({"enabled": "yes"}, "enabled"),
        ({"max_session_minutes": 0}, "max_session_minutes"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_template_errors_name_the_field(change, field):
    _, errors = validate_template({**GOOD, **change}, IMAGES, set())
    assert fields(errors)[0] == field


def test_template_slug_must_be_unique_and_is_a_conflict():
    _, errors = validate_template(GOOD, IMAGES, {"win-11"})
    assert errors[0]["field"] == "slug" and errors[0]["conflict"]


def test_template_update_is_partial_and_keeps_the_slug():
    clean, errors = validate_template({"cpus": 4}, IMAGES, set(), partial=True)
    assert (clean, errors) == ({"cpus": 4}, [])
    _, errors = validate_template({"slug": "other"}, IMAGES, set(), partial=True)
    assert fields(errors) == ["slug"]


def test_template_requires_slug_title_image():
    _, errors = validate_template({}, IMAGES, set())
    assert fields(errors) == ["slug", "title", "image_id"]


def test_settings_zero_limits_are_allowed_and_idle_needs_a_minute():
    clean, errors = validate_settings({"max_concurrent_vms": 0, "per_user_vm_limit": 0})
    assert errors == [] and clean == {"max_concurrent_vms": 0, "per_user_vm_limit": 0}
    _, errors = validate_settings({"idle_timeout_minutes": 0})
    assert fields(errors) == ["idle_timeout_minutes"]
    _, errors = validate_settings({"max_concurrent_vms": "10"})
    assert fields(errors) == ["max_concurrent_vms"] and "not a string" in errors[0]["message"]
    _, errors = validate_settings({"per_user_vm_limit": -1})
    assert fields(errors) == ["per_user_vm_limit"]
    assert fields(validate_settings({})[1]) == ["body"]
    assert fields(validate_settings({"colour": 1})[1]) == ["colour"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "../etc/passwd", "size": 10}, "name"),
        ({"name": "a/b", "size": 10}, "name"),
        ({"name": "ok..", "size": 10}, "name"),
        ({"name": "ok", "size": 0}, "size"),
        ({"name": "ok", "size": "10"}, "size"),
        ({"name": "ok", "size": 10**15}, "size"),
        ({"name": "ok"}, "size"),
        ({"name": "ok", "size": 1, "sha256": "XYZ"}, "sha256"),
    ],
)
def test_upload_requests(body, field):
    _, errors = validate_upload(body, 10**12, set())
    assert fields(errors)[0] == field


def test_upload_name_taken_is_a_conflict():
    _, errors = validate_upload({"name": "win", "size": 1}, 10, {"win"})
    assert errors[0]["conflict"]


def vhd_footer(disk_type: int, size: int) -> bytes:
    footer = bytearray(512)
    footer[0:8] = b"conectix"
    footer[40:48] = struct.pack(">Q", size)
    footer[48:56] = struct.pack(">Q", size)
    footer[60:64] = struct.pack(">I", disk_type)
    checksum = (~sum(footer)) & 0xFFFFFFFF
    footer[64:68] = struct.pack(">I", checksum)
    return bytes(footer)


def test_vhd_footer_needs_a_valid_checksum():
    assert parse_vhd_footer(vhd_footer(2, 4096)) == VHDFooter("fixed", 4096)
    broken = bytearray(vhd_footer(2, 4096))
    broken[100] ^= 1
    assert parse_vhd_footer(bytes(broken)) is None
    assert parse_vhd_footer(b"conectix" + bytes(504)) is None


def ins(**kw) -> Inspection:
    return Inspection(**{"file_size": 10 * 1024**2, "virtual_size": GIB, **kw})


def test_verdicts():
    assert image_verdict(ins(matches=("qcow2",)), ALL, 2 * GIB).format == "qcow2"
    # A fixed VHD is raw to every inspector; its footer makes it a VHD, to be converted.
    fixed = image_verdict(ins(matches=("raw",), footer=VHDFooter("fixed", GIB)), ALL, 2 * GIB)
    assert fixed.ok and fixed.format == "vhd" and fixed.needs_conversion
    # ... also when the disk inside has a partition table (the inspector's "gpt").
    assert image_verdict(ins(matches=("gpt",), footer=VHDFooter("fixed", GIB)), ALL, 2 * GIB).ok
    assert image_verdict(ins(matches=("gpt",)), ALL, 2 * GIB).format == "raw"
    two = image_verdict(ins(matches=("iso", "qcow2")), ALL, 2 * GIB)
    assert not two.ok and "more than one format" in two.message
    footer_and_qcow2 = image_verdict(
        ins(matches=("qcow2",), footer=VHDFooter("fixed", GIB)), ALL, 2 * GIB
    )
    assert not footer_and_qcow2.ok
    unsafe = image_verdict(ins(matches=("qcow2",), safety_failures=("backing_file",)), ALL, GIB)
    assert not unsafe.ok and "backing file" in unsafe.message
    diff = image_verdict(ins(matches=("vhd",), footer=VHDFooter("differencing", GIB)), ALL, 2 * GIB)
    assert not diff.ok and "differencing" in diff.message
    big = image_verdict(ins(matches=("qcow2",), virtual_size=3 * GIB), ALL, 2 * GIB)
    assert not big.ok and big.field == "virtual_size"
    assert not image_verdict(ins(matches=("vmdk",)), ALL, 2 * GIB).ok
    assert not image_verdict(ins(matches=("vhdx",)), ["qcow2"], 2 * GIB).ok
    assert not image_verdict(ins(file_size=0, matches=("raw",)), ALL, 2 * GIB).ok


def test_qemu_info_verdicts():
    good = {"format": "qcow2", "virtual-size": GIB}
    assert qemu_info_verdict(good, "qcow2", 2 * GIB).virtual_size == GIB
    assert not qemu_info_verdict({**good, "format": "raw"}, "qcow2", 2 * GIB).ok
    assert not qemu_info_verdict({**good, "backing-filename": "/etc/passwd"}, "qcow2", 2 * GIB).ok
    datafile = {**good, "format-specific": {"data": {"data-file": "/x"}}}
    assert not qemu_info_verdict(datafile, "qcow2", 2 * GIB).ok
    assert not qemu_info_verdict({**good, "encrypted": True}, "qcow2", 2 * GIB).ok
    assert not qemu_info_verdict(good, "qcow2", GIB // 2).ok
    assert check_verdict(0, {}).ok and check_verdict(3, {}).ok
    assert not check_verdict(2, {"corruptions": 4}).ok


def test_qemu_img_argv_has_explicit_formats_and_limits():
    limits = qemu_img.Limits(30, 1 << 30, 60)
    argv = qemu_img.limited(qemu_img.info_argv("/x", "vpc"), limits, "/usr/bin/prlimit")
    assert argv[:4] == ["/usr/bin/prlimit", "--cpu=30", f"--as={1 << 30}", "--"]
    assert argv[4:] == ["qemu-img", "info", "-f", "vpc", "--output=json", "/x"]
    convert = qemu_img.convert_argv("/a", "vhdx", "/b")
    assert (
        convert[convert.index("-f") + 1] == "vhdx" and convert[convert.index("-O") + 1] == "qcow2"
    )


def test_inspection_of_real_files(images):
    assert image_verdict(inspect_file(str(images["vhd_fixed"])), ALL, GIB).format == "vhd"
    assert image_verdict(inspect_file(str(images["vhd_dynamic"])), ALL, GIB).format == "vhd"
    assert image_verdict(inspect_file(str(images["vhdx"])), ALL, GIB).format == "vhdx"
    assert image_verdict(inspect_file(str(images["raw"])), ALL, GIB).format == "raw"
    assert image_verdict(inspect_file(str(images["qcow2"])), ALL, GIB).format == "qcow2"
    assert not image_verdict(inspect_file(str(images["two_formats"])), ALL, GIB).ok


def test_running_labs_are_found_by_template():
    users = [
        {"name": "ann", "servers": {"win-11": {}, "": {}}},
        {"name": "bob", "servers": {"lab2": {"user_options": {"template": "win-11"}}}},
        {"name": "cy", "servers": {"other": {"user_options": {"template": ["other"]}}}},
    ]
    assert users_running(users, "win-11") == ["ann", "bob"]
    assert users_running(users, "nope") == []
