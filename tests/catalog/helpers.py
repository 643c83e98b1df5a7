"""Upload steps by hand (the protocol's own requests), for tests that break the rules."""

import hashlib

from blabs_hub.catalog_client import Client


def client(hub, token=None) -> Client:
    return Client(hub.url, token or hub.admin_token, timeout=60)


def create(hub, name: str, size: int, token=None, **extra):
    return hub.service_api(
        "POST", "/uploads", token=token, json={"name": name, "size": size, **extra}
    )


def patch(hub, upload_id: str, offset: int, data: bytes, token=None):
    return hub.service_api(
        "PATCH",
        f"/uploads/{upload_id}",
        token=token,
        data=data,
        headers={"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
    )


def finish(hub, upload_id: str, sha256: str | None = None, token=None):
    body = {"sha256": sha256} if sha256 else {}
    return hub.service_api("POST", f"/uploads/{upload_id}/finish", token=token, json=body)


def send_all(hub, upload_id: str, data: bytes, start: int = 0, chunk: int = 1 << 20) -> None:
    for offset in range(start, len(data), chunk):
        r = patch(hub, upload_id, offset, data[offset : offset + chunk])
        assert r.status_code == 200, r.text


def upload_bytes(hub, name: str, data: bytes, chunk: int = 1 << 20):
    """Create, send all of ``data``, finish; returns the finish response."""
    r = create(hub, name, len(data))
    assert r.status_code == 201, r.text
    upload_id = r.json()["upload"]["id"]
    for offset in range(0, len(data), chunk):
        r = patch(hub, upload_id, offset, data[offset : offset + chunk])
        assert r.status_code == 200, r.text
    return finish(hub, upload_id, hashlib.sha256(data).hexdigest())
