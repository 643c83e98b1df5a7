"""Templates and settings through the real hub: rules, roles, the in-use guard."""

import time

import pytest

from tests.catalog.helpers import client


@pytest.fixture(scope="module")
def image(hub, images):
    return client(hub).upload(str(images["qcow2"]), "tpl-base")


@pytest.fixture(scope="module")
def student(hub):
    return hub.create_user("tpl-student")


def new_template(hub, image, slug, **extra):
    body = {"slug": slug, "title": slug.title(), "image_id": image["id"], **extra}
    r = hub.service_api("POST", "/templates", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_create_update_enable_disable_delete(hub, image):
    t = new_template(hub, image, "win-basic", cpus=4, memory_mib=8192, firmware="uefi")
    assert (t["cpus"], t["memory_mib"], t["firmware"], t["enabled"]) == (4, 8192, "uefi", True)
    assert t["image"] == "tpl-base" and t["image_ready"]
    r = hub.service_api("PATCH", "/templates/win-basic", json={"title": "Basic", "cpus": 2})
    assert r.status_code == 200 and (r.json()["title"], r.json()["cpus"]) == ("Basic", 2)
    r = hub.service_api("POST", "/templates/win-basic/disable")
    assert r.status_code == 200 and r.json()["enabled"] is False
    r = hub.service_api("POST", "/templates/win-basic/enable")
    assert r.json()["enabled"] is True
    assert hub.service_api("GET", "/templates/win-basic").json()["title"] == "Basic"
    assert hub.service_api("DELETE", "/templates/win-basic").status_code == 204
    assert hub.service_api("GET", "/templates/win-basic").status_code == 404


def test_image_by_name(hub, image):
    r = hub.service_api(
        "POST", "/templates", json={"slug": "by-name", "title": "x", "image": "tpl-base"}
    )
    assert r.status_code == 201 and r.json()["image_id"] == image["id"]
    r = hub.service_api("POST", "/templates", json={"slug": "by-nm", "title": "x", "image": "no"})
    assert r.status_code == 400 and r.json()["field"] == "image"


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"memory_mib": 64}, 400, "memory_mib"),
        ({"memory_mib": "4096"}, 400, "memory_mib"),
        ({"cpus": 65}, 400, "cpus"),
        ({"slug": "Has Spaces"}, 400, "slug"),
        ({"image_id": 999999}, 400, "image_id"),
        ({"firmware": "efi"}, 400, "firmware"),
        ({"slug": "dup"}, 409, "slug"),
    ],
)
def test_template_validation_names_the_field(hub, image, body, status, field):
    if body.get("slug") == "dup":
        new_template(hub, image, "dup")
    r = hub.service_api(
        "POST", "/templates", json={"slug": "valid", "title": "t", "image_id": image["id"], **body}
    )
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["errors"]


def test_an_image_that_is_not_ready_cannot_back_a_template(hub):
    r = hub.service_api("POST", "/uploads", json={"name": "not-ready", "size": 100})
    image_id = r.json()["id"]
    r = hub.service_api(
        "POST", "/templates", json={"slug": "early", "title": "t", "image_id": image_id}
    )
    assert r.status_code == 400 and "not ready" in r.json()["message"]
    hub.service_api("DELETE", f"/images/{image_id}")


def test_students_list_enabled_templates_only(hub, image, student):
    new_template(hub, image, "shown")
    new_template(hub, image, "hidden", enabled=False)
    slugs = {
        t["slug"] for t in hub.service_api("GET", "/templates", token=student).json()["templates"]
    }
    assert "shown" in slugs and "hidden" not in slugs
    assert hub.service_api("GET", "/templates/hidden", token=student).status_code == 404
    assert hub.service_api("GET", "/templates/shown", token=student).status_code == 200
    admin_slugs = {t["slug"] for t in hub.service_api("GET", "/templates").json()["templates"]}
    assert {"shown", "hidden"} <= admin_slugs


def test_instructors_manage_templates_but_not_settings(hub, image):
    teacher = hub.create_user("teacher")
    r = hub.service_api(
        "POST",
        "/templates",
        token=teacher,
        json={"slug": "by-teacher", "title": "T", "image_id": image["id"]},
    )
    assert r.status_code == 201
    assert hub.service_api("GET", "/settings", token=teacher).status_code == 403


def test_a_template_with_running_labs_cannot_be_deleted(hub, image):
    new_template(hub, image, "busy")
    name = "lab-user"
    hub.create_user(name)
    r = hub.api("POST", f"/users/{name}/servers/busy", json={})
    assert r.status_code in (201, 202), r.text
    try:
        r = hub.service_api("DELETE", "/templates/busy")
        assert r.status_code == 409 and r.json()["users"] == [name]
        assert name in r.json()["message"]
        # Disabling leaves the running lab alone.
        assert hub.service_api("POST", "/templates/busy/disable").status_code == 200
        assert hub.api("GET", f"/users/{name}").json()["servers"]["busy"]["ready"] in (True, False)
    finally:
        hub.api("DELETE", f"/users/{name}/servers/busy", json={"remove": True})
    for _ in range(50):
        if "busy" not in hub.api("GET", f"/users/{name}").json()["servers"]:
            break
        time.sleep(0.2)
    assert hub.service_api("DELETE", "/templates/busy").status_code == 204


def test_settings_get_and_update(hub, student):
    r = hub.service_api("GET", "/settings")
    assert r.status_code == 200 and "0 means no new labs" in r.json()["notes"]["max_concurrent_vms"]
    r = hub.service_api(
        "PATCH", "/settings", json={"max_concurrent_vms": 0, "per_user_vm_limit": 0}
    )
    assert r.status_code == 200
    assert (r.json()["max_concurrent_vms"], r.json()["per_user_vm_limit"]) == (0, 0)
    assert r.json()["updated_by"] == "test-admin"
    r = hub.service_api("PATCH", "/settings", json={"idle_timeout_minutes": 0})
    assert r.status_code == 400 and r.json()["field"] == "idle_timeout_minutes"
    r = hub.service_api("PATCH", "/settings", json={"per_user_vm_limit": -1})
    assert r.status_code == 400 and r.json()["field"] == "per_user_vm_limit"
    r = hub.service_api("PATCH", "/settings", json={"max_concurrent_starts": 0})
    assert r.status_code == 400 and r.json()["field"] == "max_concurrent_starts"
    r = hub.service_api("PATCH", "/settings", json={"max_concurrent_starts": "5"})
    assert r.status_code == 400 and r.json()["field"] == "max_concurrent_starts"
    assert hub.service_api("GET", "/settings").json()["max_concurrent_starts"] == 20
    r = hub.service_api("PUT", "/settings", json={"max_concurrent_vms": 20, "per_user_vm_limit": 1})
    assert r.status_code == 200
    assert hub.service_api("GET", "/settings", token=student).status_code == 403
