"""The hostile list of issue 5: each a clear 4xx, and nothing left in the store or the DB."""

import hashlib

import pytest

from tests.catalog.conftest import image_names, store_files
from tests.catalog.helpers import client, create, finish, patch, send_all


@pytest.fixture
def clean_after(hub):
    """Assert the test leaves the store and the image list exactly as it found them."""
    files, names = store_files(hub), image_names(hub)
    yield
    assert store_files(hub) == files
    assert image_names(hub) == names


def upload_and_finish(hub, name: str, data: bytes):
    r = create(hub, name, len(data))
    assert r.status_code == 201, r.text
    upload_id = r.json()["upload"]["id"]
    send_all(hub, upload_id, data)
    return finish(hub, upload_id, hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize(
    "kind, words",
    [
        ("backing", "backing file"),
        ("data_file", "external data file"),
        ("two_formats", "more than one format"),
        ("too_big", "above the limit"),
        ("truncated", "corrupt"),
    ],
)
def test_hostile_images_are_rejected(hub, images, clean_after, kind, words):
    r = upload_and_finish(hub, f"hostile-{kind}", images[kind].read_bytes())
    assert r.status_code == 422, r.text
    assert words in r.json()["message"]
    assert r.json()["field"] in ("file", "virtual_size")


def test_the_backing_file_is_never_read(hub, images, clean_after):
    r = upload_and_finish(hub, "hostile-passwd", images["backing"].read_bytes())
    assert r.status_code == 422
    assert "root:" not in r.text


def test_a_fixed_vhd_is_recognised_as_vhd_not_raw(hub, images):
    data = images["vhd_fixed"].read_bytes()
    r = upload_and_finish(hub, "hostile-fixed-vhd", data)
    assert r.status_code in (200, 202), r.text
    assert r.json()["source_format"] == "vhd"
    image = client(hub).wait_ready(r.json()["id"])
    assert (image["status"], image["source_format"], image["format"]) == ("ready", "vhd", "qcow2")


def test_a_declared_size_that_lies_is_refused_and_removed(hub, images, clean_after):
    data = images["qcow2"].read_bytes()
    r = create(hub, "hostile-liar", 1000)
    upload_id = r.json()["upload"]["id"]
    r = patch(hub, upload_id, 0, data[:5000])
    assert r.status_code == 413 and r.json()["field"] == "size"
    assert hub.service_api("HEAD", f"/uploads/{upload_id}").status_code == 404


def test_a_truncated_upload_cannot_be_finished_and_cancels_cleanly(hub, images, clean_after):
    data = images["qcow2"].read_bytes()
    r = create(hub, "hostile-short", len(data))
    upload_id = r.json()["upload"]["id"]
    send_all(hub, upload_id, data[: len(data) // 2])
    r = finish(hub, upload_id)
    assert r.status_code == 409 and "incomplete" in r.json()["message"]
    assert hub.service_api("DELETE", f"/uploads/{upload_id}").status_code == 204


@pytest.mark.parametrize("name", ["../evil", "../../etc/passwd", "a/b", ".hidden", "x" * 101])
def test_bad_file_names(hub, clean_after, name):
    r = create(hub, name, 10)
    assert r.status_code == 400 and r.json()["field"] == "name"


def test_a_zero_byte_file(hub, clean_after):
    r = create(hub, "hostile-empty", 0)
    assert r.status_code == 400 and r.json()["field"] == "size"
    assert "empty" in r.json()["message"]


def test_a_second_upload_with_the_same_name(hub, images):
    r = upload_and_finish(hub, "same-name", images["qcow2"].read_bytes())
    assert r.status_code == 200
    files = store_files(hub)
    r = create(hub, "same-name", 100)
    assert r.status_code == 409 and r.json()["field"] == "name"
    assert store_files(hub) == files
    # ... also while the first one is still uploading.
    first = create(hub, "same-name-2", 100)
    assert first.status_code == 201
    assert create(hub, "same-name-2", 100).status_code == 409
    hub.service_api("DELETE", f"/uploads/{first.json()['upload']['id']}")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/uploads", b"not json"),
        ("POST", "/uploads", b"[1, 2]"),
        ("POST", "/templates", b"{"),
        ("PATCH", "/settings", b"\xff\xfe"),
        ("POST", "/uploads", b'{"name": 5, "size": 10}'),
        ("POST", "/uploads", b'{"name": "typed", "size": "10"}'),
        ("POST", "/uploads", b'{"name": "typed", "size": 10.5}'),
        ("PATCH", "/settings", b'{"max_concurrent_vms": "5"}'),
        ("PATCH", "/settings", b'{"idle_timeout_minutes": null}'),
        ("POST", "/templates", b'{"slug": "t", "title": "t", "image_id": "1"}'),
    ],
)
def test_non_json_and_wrong_typed_bodies(hub, clean_after, method, path, body):
    r = hub.service_api(method, path, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["message"]


WRITES = [
    ("POST", "/uploads", {"name": "student-upload", "size": 10}),
    ("PATCH", "/uploads/AAAAAAAAAAAAAAAAAAAAAA", None),
    ("DELETE", "/uploads/AAAAAAAAAAAAAAAAAAAAAA", None),
    ("POST", "/uploads/AAAAAAAAAAAAAAAAAAAAAA/finish", {}),
    ("DELETE", "/images/1", None),
    ("POST", "/templates", {"slug": "s", "title": "s", "image_id": 1}),
    ("PATCH", "/templates/anything", {"cpus": 1}),
    ("POST", "/templates/anything/enable", None),
    ("POST", "/templates/anything/disable", None),
    ("DELETE", "/templates/anything", None),
    ("PATCH", "/settings", {"max_concurrent_vms": 1}),
    ("PUT", "/settings", {"max_concurrent_vms": 1}),
]


@pytest.mark.parametrize("method, path, body", WRITES)
def test_a_student_calling_any_write_endpoint_gets_403(hub, clean_after, method, path, body):
    student = hub.create_user("hostile-student")
    kw = {"json": body} if body is not None else {"data": b"xx"}
    r = hub.service_api(method, path, token=student, **kw)
    assert r.status_code == 403, r.text
    assert "permission" in r.json()["message"]
