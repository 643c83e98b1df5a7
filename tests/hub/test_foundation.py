"""The hub as deployed by jupyterhub_config.py: its blabs service, catalog and settings."""

import sqlite3
import subprocess

import pytest
import requests

from tests.harness import REPO, RunningHub

# The foundation does not depend on how users sign in; the authenticator has its own suite.
DUMMY_AUTH = 'c.JupyterHub.authenticator_class = "dummy"\n'


@pytest.fixture(scope="module")
def hub(hub_factory):
    return hub_factory.start(DUMMY_AUTH, env={"BLABS_MAX_CONCURRENT_VMS": "7"})


def catalog_tables(hub: RunningHub) -> set[str]:
    with sqlite3.connect(hub.data_dir / "blabs.sqlite") as db:
        rows = db.execute("select name from sqlite_master where type='table'").fetchall()
    return {name for (name,) in rows}


def test_hub_starts_the_blabs_service_behind_its_proxy(hub):
    r = requests.get(f"{hub.url}/services/blabs/health", timeout=10)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_anonymous_browser_is_sent_to_the_hub_login(hub):
    r = requests.get(f"{hub.url}/services/blabs/", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert "/hub/api/oauth2/authorize" in r.headers["Location"]


def test_signed_in_user_sees_who_they_are(hub):
    token = hub.create_user("ada")
    r = requests.get(
        f"{hub.url}/services/blabs/", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert r.status_code == 200
    assert "Signed in as <strong>ada</strong>" in r.text


def test_browser_login_reaches_the_service_page_through_oauth(hub):
    with requests.Session() as browser:
        login = browser.get(f"{hub.url}/hub/login", timeout=10)
        xsrf = browser.cookies.get("_xsrf", path="/hub/")
        r = browser.post(
            f"{hub.url}/hub/login?next=/services/blabs/",
            data={"username": "grace", "password": "anything", "_xsrf": xsrf},
            timeout=10,
        )
        assert login.status_code == 200
        assert r.status_code == 200, r.text
        assert r.url.rstrip("/").endswith("/services/blabs")
        assert "Signed in as <strong>grace</strong>" in r.text


def test_api_without_a_token_is_refused_not_redirected(hub):
    r = requests.get(f"{hub.url}/services/blabs/api/whoami", allow_redirects=False, timeout=10)
    assert r.status_code == 403
    assert "token" in r.json()["message"]


def test_students_hold_no_blabs_permissions(hub):
    token = hub.create_user("student1")
    r = hub.service_api("GET", "/whoami", token=token)
    assert r.status_code == 200
    assert r.json() == {"name": "student1", "kind": "user", "admin": False, "scopes": []}


def test_catalog_tables_exist_at_the_newest_schema(hub):
    assert {"blabs_images", "blabs_templates", "blabs_settings"} <= catalog_tables(hub)
    with sqlite3.connect(hub.data_dir / "blabs.sqlite") as db:
        (version,) = db.execute("select version_num from blabs_alembic_version").fetchone()
    assert version


def test_settings_row_is_seeded_from_the_environment(hub):
    with sqlite3.connect(hub.data_dir / "blabs.sqlite") as db:
        row = db.execute(
            "select max_concurrent_vms, per_user_vm_limit, idle_timeout_minutes "
            "from blabs_settings where id = 1"
        ).fetchone()
    assert row == (7, 1, 30)


def test_restart_keeps_catalog_rows_and_does_not_reseed_settings(hub):
    with sqlite3.connect(hub.data_dir / "blabs.sqlite") as db:
        db.execute("update blabs_settings set per_user_vm_limit = 3 where id = 1")
        db.execute(
            "insert into blabs_images (name, status, created_at) "
            "values ('kept.qcow2', 'ready', '2026-01-01')"
        )
    hub.restart()
    with sqlite3.connect(hub.data_dir / "blabs.sqlite") as db:
        assert db.execute("select per_user_vm_limit from blabs_settings").fetchone() == (3,)
        assert db.execute("select count(*) from blabs_images where name='kept.qcow2'").fetchone()
    assert requests.get(f"{hub.url}/services/blabs/health", timeout=10).status_code == 200


def start_expecting_failure(hub: RunningHub) -> subprocess.CompletedProcess:
    """Run the hub in the foreground; it must exit on its own, with an error status."""
    hub.write_config()
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "jupyterhub"), "-f", str(hub.config_path)],
        cwd=hub.root,
        env=hub.environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return result


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BLABS_MAX_CONCURRENT_VMS", "lots"),
        ("BLABS_PER_USER_VM_LIMIT", "-1"),
        ("BLABS_IDLE_TIMEOUT_MINUTES", "0"),
        ("BLABS_PORT", "99999"),
    ],
)
def test_bad_environment_stops_the_hub_with_one_line_and_creates_nothing(
    hub_factory, variable, value
):
    hub = hub_factory.create(DUMMY_AUTH, env={variable: value})
    result = start_expecting_failure(hub)
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1, result.stderr
    assert variable in errors[0] and value in errors[0]
    assert not hub.data_dir.exists(), "nothing half-created"


def test_unwritable_data_dir_stops_the_hub_naming_it(hub_factory, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    hub = hub_factory.create(DUMMY_AUTH, env={"BLABS_DATA_DIR": str(blocker / "data")})
    result = start_expecting_failure(hub)
    assert "BLABS_DATA_DIR" in result.stderr and "cannot be created" in result.stderr


@pytest.mark.postgres
def test_hub_and_catalog_share_one_postgresql_database(hub_factory, postgres):
    from sqlalchemy import create_engine, inspect, text

    url = postgres.new_database()
    hub = hub_factory.start(DUMMY_AUTH, env={"BLABS_DB_URL": url, "BLABS_HUB_DB_URL": url})
    assert requests.get(f"{hub.url}/services/blabs/health", timeout=10).status_code == 200
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        # JupyterHub's tables and ours side by side, each with its own migration history.
        assert {"users", "alembic_version"} <= tables
        assert {"blabs_images", "blabs_templates", "blabs_settings"} <= tables
        assert "blabs_alembic_version" in tables
        hub.restart()
        with engine.connect() as db:
            assert db.execute(text("select count(*) from blabs_settings")).scalar() == 1
    finally:
        engine.dispose()
        hub.stop()
