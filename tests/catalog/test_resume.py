"""An upload killed half-way resumes, byte for byte, after a dropped connection and after a
restart of the service (when the running hash must be rebuilt from the part file)."""

import hashlib
import os
import socket
import struct
import subprocess
import time
from urllib.parse import urlparse

import pytest

from tests.catalog.conftest import qemu_img, sha256
from tests.catalog.helpers import create, send_all
from tests.harness import VENV_BIN

MIB = 1 << 20


@pytest.fixture(scope="module")
def big_qcow2(tmp_path_factory):
    """A 12 MiB qcow2 full of incompressible data: many chunks of 1 MiB."""
    d = tmp_path_factory.mktemp("resume")
    raw = d / "noise.raw"
    with open(raw, "wb") as f:
        seed = b"resume"
        for i in range(12 * 16):
            f.write(hashlib.sha512(seed + i.to_bytes(4, "big")).digest() * 1024)
    image = d / "big.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw), str(image))
    return image


def offset_of(hub, upload_id: str) -> int:
    return int(hub.service_api("HEAD", f"/uploads/{upload_id}").headers["Upload-Offset"])


def drop_mid_chunk(hub, upload_id: str, offset: int, data: bytes, sent: int) -> None:
    """Start a PATCH of ``data`` at ``offset``, send ``sent`` bytes, and vanish (RST), as a
    killed client would."""
    url = urlparse(hub.url)
    s = socket.create_connection((url.hostname, url.port))
    head = (
        f"PATCH /services/blabs/api/uploads/{upload_id} HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\nAuthorization: token {hub.admin_token}\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    s.sendall(head.encode() + data[:sent])
    time.sleep(0.5)  # let the proxy pass the bytes on
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def wait_unlocked_offset(hub, upload_id: str, at_least: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        offset = offset_of(hub, upload_id)
        if offset >= at_least:
            return offset
        time.sleep(0.1)
    raise AssertionError(f"offset stayed at {offset}")


def resume_with_cli(hub, path, name) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": hub.admin_token}
    return subprocess.run(
        [
            str(VENV_BIN / "blabs"),
            "--hub-url",
            hub.url,
            "images",
            "upload",
            str(path),
            "--name",
            name,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_sha256(hub, name: str) -> str:
    image = next(i for i in hub.service_api("GET", "/images").json()["images"] if i["name"] == name)
    assert image["status"] == "ready", image
    (stored,) = [p for p in (hub.data_dir / "images").glob(f"{image['id']:06d}-*")]
    return sha256(stored)


def test_killed_at_half_and_resumed_to_a_byte_identical_image(hub, big_qcow2):
    data = big_qcow2.read_bytes()
    half = len(data) // 2 // MIB * MIB
    upload_id = create(hub, "resumed", len(data)).json()["upload"]["id"]
    send_all(hub, upload_id, data[:half])
    # The client dies in the middle of the next chunk.
    drop_mid_chunk(hub, upload_id, half, data[half : half + MIB], sent=300 * 1024)
    offset = wait_unlocked_offset(hub, upload_id, half)
    assert half <= offset <= half + 300 * 1024
    assert 0.45 < offset / len(data) < 0.6
    # The CLI finds the unfinished upload by name and size and continues from the server.
    run = resume_with_cli(hub, big_qcow2, "resumed")
    assert run.returncode == 0, run.stderr
    assert "resumed: ready" in run.stdout
    assert stored_sha256(hub, "resumed") == sha256(big_qcow2)


def test_resume_after_the_service_restarts(hub, big_qcow2):
    data = big_qcow2.read_bytes()
    upload_id = create(hub, "survives-restart", len(data)).json()["upload"]["id"]
    send_all(hub, upload_id, data[: len(data) // 2])
    hub.restart()
    assert offset_of(hub, upload_id) == len(data) // 2 // MIB * MIB + (len(data) // 2) % MIB
    run = resume_with_cli(hub, big_qcow2, "survives-restart")
    assert run.returncode == 0, run.stderr
    assert stored_sha256(hub, "survives-restart") == sha256(big_qcow2)
