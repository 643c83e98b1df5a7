"""Catalog tests: hubs configured for them, and small disk images made with qemu-img."""

import hashlib
import subprocess
from pathlib import Path

import pytest

CATALOG_CONFIG = """
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
# With the dummy authenticator nobody is given blabs-admin at login: name the page tester.
for _role in c.JupyterHub.load_roles:
    if _role["name"] == "blabs-admin":
        _role["users"] = ["boss"]
    if _role["name"] == "instructor":
        _role["users"] = ["teacher"]
for _svc in c.JupyterHub.services:
    if _svc["name"] == "blabs":
        _svc["environment"].update(
            {
                "BLABS_MAX_IMAGE_VIRTUAL_SIZE_GB": "1",
                "BLABS_UPLOAD_CHUNK_MB": "1",
            }
        )
"""


@pytest.fixture(scope="package")
def hub(hub_factory):
    """One hub for the catalog tests: they use their own names and do not interfere."""
    return hub_factory.start(CATALOG_CONFIG)


def store_files(hub) -> set[str]:
    """Every file in the image store, temp uploads included, relative to it."""
    root = hub.data_dir / "images"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def image_names(hub) -> set[str]:
    r = hub.service_api("GET", "/images")
    assert r.status_code == 200, r.text
    return {i["name"] for i in r.json()["images"]}


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, Path]:
    """Small images, good and hostile, made here with qemu-img (a few MB in all)."""
    d = tmp_path_factory.mktemp("images")
    raw = d / "disk.raw"
    with open(raw, "wb") as f:  # 4 MiB with some data in it, so conversions copy bytes
        f.write(b"\0" * 510 + b"\x55\xaa")
        f.write(bytes(range(256)) * 4096)
        f.truncate(4 * 1024 * 1024)
    made = {"raw": raw}
    made["qcow2"] = d / "disk.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw), str(made["qcow2"]))
    made["vhd_fixed"] = d / "fixed.vhd"
    qemu_img(
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
        str(raw),
        str(made["vhd_fixed"]),
    )
    made["vhd_dynamic"] = d / "dynamic.vhd"
    qemu_img(
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "force_size=on",
        str(raw),
        str(made["vhd_dynamic"]),
    )
    made["vhdx"] = d / "disk.vhdx"
    qemu_img("convert", "-f", "raw", "-O", "vhdx", str(raw), str(made["vhdx"]))
    made["backing"] = d / "backing.qcow2"
    qemu_img("create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd", str(made["backing"]))
    made["data_file"] = d / "datafile.qcow2"
    qemu_img(
        "create",
        "-f",
        "qcow2",
        "-o",
        f"data_file={d / 'external.raw'}",
        str(made["data_file"]),
        "4M",
    )
    # A qcow2 that is also an ISO 9660 image: the ISO signature sits at 32769, inside the
    # qcow2 header cluster where qemu ignores it.
    made["two_formats"] = d / "two.qcow2"
    made["two_formats"].write_bytes(made["qcow2"].read_bytes())
    with open(made["two_formats"], "r+b") as f:
        f.seek(32769)
        f.write(b"CD001\x01")
    made["too_big"] = d / "big.qcow2"
    qemu_img("create", "-f", "qcow2", str(made["too_big"]), "2G")
    full = d / "full.qcow2"
    noise = d / "noise.raw"
    noise.write_bytes(hashlib.sha256(b"x").digest() * 65536)  # 2 MiB that does not compress
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(noise), str(full))
    made["truncated"] = d / "truncated.qcow2"
    made["truncated"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    made["empty"] = d / "empty.img"
    made["empty"].write_bytes(b"")
    return made
