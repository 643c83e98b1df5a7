"""The catalog on PostgreSQL: migrations 0001 → 0002, an upload, a template, settings."""

import pytest

from tests.catalog.conftest import CATALOG_CONFIG
from tests.catalog.helpers import client

pytestmark = pytest.mark.postgres


def test_catalog_on_postgresql(hub_factory, postgres, images):
    hub = hub_factory.start(CATALOG_CONFIG, env={"BLABS_DB_URL": postgres.new_database()})
    try:
        image = client(hub).upload(str(images["vhd_fixed"]), "pg-image")
        assert image["status"] == "ready" and image["source_format"] == "vhd"
        r = hub.service_api(
            "POST", "/templates", json={"slug": "pg", "title": "PG", "image_id": image["id"]}
        )
        assert r.status_code == 201, r.text
        assert hub.service_api("PATCH", "/settings", json={"per_user_vm_limit": 2}).ok
        assert hub.service_api("DELETE", f"/images/{image['id']}").status_code == 409
        r = hub.service_api("POST", "/uploads", json={"name": "pg-image", "size": 5})
        assert r.status_code == 409
    finally:
        hub.stop()
