"""A small client for the blabs service's REST API, used by the ``blabs`` CLI and tests.

Uploads follow the service's resumable protocol: create, PATCH chunks at the offset the
server reports, and on a dropped connection ask the server for its offset (HEAD) and carry
on from there. The sha256 is computed while reading the file and sent with ``finish``, so
the server checks that what it stored is what was read here.
"""

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests


class ApiFailure(RuntimeError):
    """The service answered with an error; ``body`` is its JSON (message, field, ...)."""

    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body
        field = f" [{body['field']}]" if body.get("field") else ""
        super().__init__(f"HTTP {status}{field}: {body.get('message', body)}")


@dataclass
class Client:
    hub_url: str
    token: str
    timeout: float = 120

    def __post_init__(self):
        self.base = self.hub_url.rstrip("/") + "/services/blabs/api"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"

    def call(self, method: str, path: str, expect=(200, 201, 202, 204), **kw):
        response = self.http.request(method, self.base + path, timeout=self.timeout, **kw)
        if response.status_code not in expect:
            raise ApiFailure(response.status_code, _json_or_text(response))
        return response.json() if response.content else None

    # --- images ----------------------------------------------------------------------------

    def images(self) -> list[dict]:
        return self.call("GET", "/images")["images"]

    def find_image(self, key: str | int) -> dict:
        for image in self.images():
            if str(image["id"]) == str(key) or image["name"] == key:
                return image
        raise ApiFailure(404, {"message": f"there is no image {key!r}"})

    def delete_image(self, key: str | int) -> None:
        self.call("DELETE", f"/images/{self.find_image(key)['id']}")

    def server_offset(self, upload_id: str) -> int:
        r = self.http.head(f"{self.base}/uploads/{upload_id}", timeout=self.timeout)
        if r.status_code != 200:
            raise ApiFailure(r.status_code, {"message": "cannot read the upload's offset"})
        return int(r.headers["Upload-Offset"])

    def upload(
        self,
        path: str,
        name: str,
        chunk_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        retries: int = 20,
        resume: bool = True,
    ) -> dict:
        """Upload ``path`` as image ``name``; returns the image once ready (or failed)."""
        size = os.path.getsize(path)
        upload = None
        if resume:
            upload = self._unfinished(name, size)
        if upload is None:
            created = self.call("POST", "/uploads", json={"name": name, "size": size})
            upload = {**created["upload"], "chunk_size": created["chunk_size"]}
        chunk = min(chunk_size or upload.get("chunk_size") or 16 << 20, 64 << 20)
        upload_id = upload["id"]
        offset = self.server_offset(upload_id)
        failures = 0
        hasher = hashlib.sha256()
        with open(path, "rb") as f:
            _hash_range(f, hasher, 0, offset)  # resumed: the part sent by an earlier run

            def advance(new_offset: int, data: bytes, at: int) -> int:
                """Hash the bytes the server now has beyond ``at``; return the new offset."""
                if new_offset < at:
                    raise RuntimeError(f"the server went back from {at} to {new_offset} bytes")
                hasher.update(data[: new_offset - at])
                if new_offset > at + len(data):
                    raise RuntimeError("the server reports bytes this client never sent")
                return new_offset

            while offset < size:
                if progress:
                    progress(offset, size)
                f.seek(offset)
                data = f.read(min(chunk, size - offset))
                try:
                    r = self.http.patch(
                        f"{self.base}/uploads/{upload_id}",
                        data=data,
                        headers={
                            "Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream",
                        },
                        timeout=self.timeout,
                    )
                except requests.ConnectionError:
                    failures += 1
                    if failures > retries:
                        raise
                    time.sleep(min(2**failures * 0.25, 10))
                    offset = advance(self._offset_when_free(upload_id), data, offset)
                    continue
                body = _json_or_text(r)
                if r.status_code == 409 and "offset" in body:
                    offset = advance(body["offset"], data, offset)
                    continue
                if r.status_code != 200:
                    raise ApiFailure(r.status_code, body)
                failures = 0
                offset = advance(int(r.headers["Upload-Offset"]), data, offset)
        if progress:
            progress(size, size)
        image = self.call(
            "POST", f"/uploads/{upload_id}/finish", json={"sha256": hasher.hexdigest()}
        )
        return self.wait_ready(image["id"]) if image["status"] == "converting" else image

    def _offset_when_free(self, upload_id: str) -> int:
        """The offset after a dropped request; the server may still be saving its last bytes."""
        time.sleep(0.2)
        return self.server_offset(upload_id)

    def _unfinished(self, name: str, size: int) -> dict | None:
        for image in self.images():
            upload = image.get("upload")
            if image["name"] == name and upload and upload["size"] == size:
                return upload
        return None

    def wait_ready(self, image_id: int, timeout: float = 24 * 3600, on_progress=None) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            image = self.call("GET", f"/images/{image_id}")
            if image["status"] not in ("inspecting", "converting"):
                return image
            if on_progress:
                on_progress(image)
            time.sleep(0.5)
        raise TimeoutError(f"image {image_id} not ready after {timeout} s")

    # --- templates and settings -------------------------------------------------------------

    def templates(self) -> list[dict]:
        return self.call("GET", "/templates")["templates"]

    def create_template(self, data: dict) -> dict:
        return self.call("POST", "/templates", json=data)

    def update_template(self, slug: str, data: dict) -> dict:
        return self.call("PATCH", f"/templates/{slug}", json=data)

    def set_enabled(self, slug: str, enabled: bool) -> dict:
        return self.call("POST", f"/templates/{slug}/{'enable' if enabled else 'disable'}")

    def delete_template(self, slug: str) -> None:
        self.call("DELETE", f"/templates/{slug}")

    def ready_state(self, slug: str) -> dict:
        return self.call("GET", f"/templates/{slug}/ready-state")

    def start_preparation(self, slug: str) -> dict:
        """Start the caller's preparation lab of ``slug`` through the hub's REST API."""
        where = self.call("POST", f"/templates/{slug}/prepare")
        user = self.http.get(self.hub_url.rstrip("/") + "/hub/api/user", timeout=self.timeout)
        name = user.json()["name"]
        response = self.http.post(
            f"{self.hub_url.rstrip('/')}/hub/api/users/{name}/servers/{where['server_name']}",
            json={"user_options": where["user_options"]},
            timeout=self.timeout,
        )
        if response.status_code not in (201, 202):
            raise ApiFailure(response.status_code, _json_or_text(response))
        return where

    def save_ready_state(self, slug: str, timeout: float = 600) -> dict:
        """Ask the running preparation lab to save; wait for "state-saved" or "save-failed"."""
        self.call("POST", f"/templates/{slug}/ready-state")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.ready_state(slug)
            stage = (state.get("preparation") or {}).get("stage")
            if stage in ("state-saved", "save-failed", "failed", "stopped"):
                return state
            time.sleep(0.5)
        raise TimeoutError(f"the ready state of {slug} was not saved within {timeout} s")

    def settings(self) -> dict:
        return self.call("GET", "/settings")

    def update_settings(self, values: dict) -> dict:
        return self.call("PATCH", "/settings", json=values)


def _json_or_text(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:500] or response.reason}
    return body if isinstance(body, dict) else {"message": str(body)}


def _hash_range(f, hasher, start: int, end: int) -> None:
    f.seek(start)
    left = end - start
    while left > 0:
        block = f.read(min(4 << 20, left))
        if not block:
            raise RuntimeError("the file got shorter while it was being uploaded")
        hasher.update(block)
        left -= len(block)
