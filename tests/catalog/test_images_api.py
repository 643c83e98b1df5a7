"""Images and the upload protocol through the real hub's proxy."""

import contextlib
import hashlib
import sqlite3

import pytest
import requests

from tests.catalog.conftest import image_names, sha256, store_files
from tests.catalog.helpers import client, create, finish, patch, send_all, upload_bytes


def stored_path(hub, image_id: int):
    with sqlite3.connect(hub.data_dir / "blabs.sqlite") as db:
        (filename,) = db.execute(
            "select filename from blabs_images where id = ?", (image_id,)
        ).fetchone()
    return hub.data_dir / "images" / filename


@pytest.mark.parametrize(
    "kind, source, stored",
    [
        ("qcow2", "qcow2", "qcow2"),
        ("raw", "raw", "raw"),
        ("vhd_fixed", "vhd", "qcow2"),
        ("vhd_dynamic", "vhd", "qcow2"),
        ("vhdx", "vhdx", "qcow2"),
    ],
)
def test_each_accepted_format_is_imported_and_recorded(hub, images, kind, source, stored):
    image = client(hub).upload(str(images[kind]), f"ok-{kind}")
    assert image["status"] == "ready", image
    assert (image["source_format"], image["format"]) == (source, stored)
    assert image["virtual_size"] == 4 * 1024 * 1024
    assert image["sha256"] == sha256(images[kind])
    assert image["uploaded_by"] == "test-admin"
    assert image["created_at"] and image["actual_size"] > 0
    path = stored_path(hub, image["id"])
    assert path.stat().st_size == image["actual_size"]
    assert not path.name.startswith(f"ok-{kind}")  # our name, never the uploader's
    if source == stored:
        assert sha256(path) == image["sha256"]  # stored as uploaded, byte for byte
    r = hub.service_api("GET", f"/images/{image['id']}")
    assert r.status_code == 200 and r.json()["name"] == f"ok-{kind}"


def test_list_get_and_delete(hub, images):
    image = client(hub).upload(str(images["qcow2"]), "to-delete")
    assert "to-delete" in image_names(hub)
    path = stored_path(hub, image["id"])
    r = hub.service_api("DELETE", f"/images/{image['id']}")
    assert r.status_code == 204
    assert not path.exists()
    assert "to-delete" not in image_names(hub)
    assert hub.service_api("GET", f"/images/{image['id']}").status_code == 404
    assert hub.service_api("DELETE", f"/images/{image['id']}").status_code == 404


def test_an_image_used_by_a_template_cannot_be_deleted(hub, images):
    image = client(hub).upload(str(images["qcow2"]), "in-use")
    r = hub.service_api(
        "POST", "/templates", json={"slug": "uses-it", "title": "Uses it", "image_id": image["id"]}
    )
    assert r.status_code == 201, r.text
    r = hub.service_api("DELETE", f"/images/{image['id']}")
    assert r.status_code == 409
    assert r.json()["templates"] == ["uses-it"] and "uses-it" in r.json()["message"]
    assert hub.service_api("DELETE", "/templates/uses-it").status_code == 204
    assert hub.service_api("DELETE", f"/images/{image['id']}").status_code == 204


def test_offset_protocol(hub, images):
    data = images["qcow2"].read_bytes()
    r = create(hub, "protocol", len(data))
    assert r.status_code == 201
    body = r.json()
    upload_id = body["upload"]["id"]
    assert body["status"] == "uploading" and body["chunk_size"] == 1 << 20
    assert r.headers["Location"].endswith(f"/api/uploads/{upload_id}")
    head = hub.service_api("HEAD", f"/uploads/{upload_id}")
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(data))
    assert patch(hub, upload_id, 0, data[:1000]).headers["Upload-Offset"] == "1000"
    # A chunk at the wrong offset is refused with the server's offset, and not written.
    wrong = patch(hub, upload_id, 5, data[5:100])
    assert wrong.status_code == 409 and wrong.json()["offset"] == 1000
    assert hub.service_api("GET", f"/uploads/{upload_id}").json()["upload"]["offset"] == 1000
    missing = hub.service_api("PATCH", f"/uploads/{upload_id}", data=b"x")
    assert missing.status_code == 400 and missing.json()["field"] == "Upload-Offset"
    # Finishing early is refused, and the upload can still be completed.
    early = finish(hub, upload_id)
    assert early.status_code == 409 and early.json()["offset"] == 1000
    for offset in range(1000, len(data), 1 << 20):
        assert patch(hub, upload_id, offset, data[offset : offset + (1 << 20)]).status_code == 200
    done = finish(hub, upload_id, hashlib.sha256(data).hexdigest())
    assert done.status_code == 200 and done.json()["status"] == "ready"
    assert hub.service_api("HEAD", f"/uploads/{upload_id}").status_code == 404


def test_a_chunk_larger_than_the_chunk_size_is_refused(hub):
    r = create(hub, "big-chunk", 3 << 20)
    upload_id = r.json()["upload"]["id"]
    # Tornado may close the connection instead of answering: that is a refusal too.
    with contextlib.suppress(requests.ConnectionError):
        r = patch(hub, upload_id, 0, b"\0" * (2 << 20))
        assert r.status_code in (400, 413)
    assert hub.service_api("HEAD", f"/uploads/{upload_id}").headers["Upload-Offset"] == "0"
    assert hub.service_api("DELETE", f"/uploads/{upload_id}").status_code == 204


def test_cancel_removes_file_and_row(hub):
    before = store_files(hub)
    r = create(hub, "cancelled", 10)
    upload_id = r.json()["upload"]["id"]
    patch(hub, upload_id, 0, b"12345")
    assert f".uploads/{upload_id}.part" in store_files(hub)
    assert hub.service_api("DELETE", f"/uploads/{upload_id}").status_code == 204
    assert store_files(hub) == before
    assert "cancelled" not in image_names(hub)


def test_a_converting_image_shows_progress_then_ready(hub, images):
    r = upload_bytes(hub, "converted-vhdx", images["vhdx"].read_bytes())
    assert r.status_code in (200, 202), r.text
    image = client(hub).wait_ready(r.json()["id"])
    assert image["status"] == "ready" and image["progress"] is None


def test_sha256_mismatch_is_rejected_and_removed(hub, images):
    before = store_files(hub)
    data = images["qcow2"].read_bytes()
    upload_id = create(hub, "bad-hash", len(data)).json()["upload"]["id"]
    send_all(hub, upload_id, data)
    r = finish(hub, upload_id, "0" * 64)
    assert r.status_code == 422 and r.json()["field"] == "sha256"
    assert store_files(hub) == before and "bad-hash" not in image_names(hub)


def test_students_and_instructors_on_images(hub):
    student = hub.create_user("img-student")
    assert hub.service_api("GET", "/images", token=student).status_code == 403
    teacher = hub.create_user("teacher")
    assert hub.service_api("GET", "/images", token=teacher).status_code == 200
    assert create(hub, "by-teacher", 10, token=teacher).status_code == 403
