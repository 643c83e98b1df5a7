"""The OpenAPI file against the live routes; the admin pages; the ``blabs`` CLI."""

import inspect
import os
import re
import subprocess
import sys

import pytest
import yaml
from tornado import web

from blabs_hub.cli import main as cli_main
from blabs_hub.service.app import routes
from blabs_hub.service.catalog_routes import OPENAPI
from tests.harness import VENV_BIN

METHODS = ("get", "post", "put", "patch", "delete", "head")


def spec() -> dict:
    return yaml.safe_load(OPENAPI.read_text())


def route_to_path(pattern: str) -> str:
    """``/services/blabs/api/images/(\\d+)`` → ``/images/{}`` (parameters by position)."""
    path = pattern.split("/api", 1)[1].rstrip("$")
    return re.sub(r"\([^)]*\)", "{}", path)


def live_api_routes() -> dict[str, set[str]]:
    table = {}
    for entry in routes("/services/blabs/"):
        pattern, handler = entry[0], entry[1]
        if "/api/" not in pattern:
            continue
        methods = {
            m
            for m in METHODS
            if getattr(handler, m) is not getattr(web.RequestHandler, m)
            and not inspect.isabstract(handler)
        }
        table[route_to_path(pattern)] = methods
    return table


def test_openapi_describes_exactly_the_live_routes():
    described = {
        re.sub(r"\{[^}]*\}", "{}", path): {m for m in ops if m in METHODS}
        for path, ops in spec()["paths"].items()
    }
    assert described == live_api_routes()


def fill(path: str) -> str:
    return path.replace("{}", "AAAAAAAAAAAAAAAAAAAAAA" if "uploads" in path else "999999", 1)


@pytest.mark.parametrize(
    "path, method", [(p, m) for p, ms in spec()["paths"].items() for m in ms if m in METHODS]
)
def test_every_described_operation_answers_from_its_route(hub, path, method):
    url = fill(re.sub(r"\{[^}]*\}", "{}", path))
    url = url.replace("999999", "nope-slug") if "/templates/" in url else url
    kw = {"json": {}} if method in ("post", "put", "patch") else {}
    if method == "patch" and "uploads" in url:
        kw = {"data": b"x", "headers": {"Upload-Offset": "0"}}
    r = hub.service_api(method.upper(), url, **kw)
    assert r.status_code != 405, (method, url)
    if method != "head":
        # Our handlers answer in JSON; tornado's "no such route" 404 is HTML.
        assert r.headers["Content-Type"].startswith(("application/json", "application/yaml")), (
            method,
            url,
            r.status_code,
            r.text[:200],
        )


def test_openapi_is_served(hub):
    r = hub.service_api("GET", "/openapi.yaml")
    assert r.status_code == 200 and yaml.safe_load(r.text)["openapi"].startswith("3.")


def test_admin_pages_render_with_the_nav_and_scripts(hub):
    token = hub.create_user("boss")
    for page, marker in (
        ("images", 'id="upload-form"'),
        ("templates", 'id="template-form"'),
        ("settings", 'id="settings-form"'),
    ):
        r = hub.service_api("GET", f"/../{page}", token=token)
        assert r.status_code == 200, (page, r.text[:300])
        assert marker in r.text
        assert f'href="/services/blabs/{page}"' in r.text  # linked in the nav
        assert "/services/blabs/static/blabs-admin.js" in r.text
    r = hub.service_api("GET", "/../static/blabs-images.js", token=token)
    assert r.status_code == 200 and "XMLHttpRequest" in r.text


def test_students_get_403_on_admin_pages(hub):
    token = hub.create_user("page-student")
    r = hub.service_api("GET", "/../images", token=token)
    assert r.status_code == 403


def test_cli_upload_shows_progress_and_the_rest_works(hub, images, capsys):
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": hub.admin_token}
    run = subprocess.run(
        [
            str(VENV_BIN / "blabs"),
            "--hub-url",
            hub.url,
            "images",
            "upload",
            str(images["vhdx"]),
            "--name",
            "cli-image",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "cli-image: ready, qcow2 (uploaded as vhdx)" in run.stdout
    assert "100%" in run.stderr  # tqdm's bar

    def cli(*args) -> str:
        capsys.readouterr()
        assert cli_main(["--hub-url", hub.url, "--token", hub.admin_token, *args]) == 0
        return capsys.readouterr().out

    assert "cli-image" in cli("images", "list")
    out = cli(
        "templates",
        "create",
        "--slug",
        "cli-tpl",
        "--title",
        "CLI",
        "--image",
        "cli-image",
        "--cpus",
        "3",
        "--disabled",
    )
    assert "cli-tpl" in out and "False" in out
    assert "True" in cli("templates", "enable", "cli-tpl")
    assert "False" in cli("templates", "disable", "cli-tpl")
    assert "cli-tpl" in cli("templates", "list")
    assert "idle_timeout_minutes = 45" in cli("settings", "set", "idle_timeout_minutes=45")
    assert "idle_timeout_minutes = 45" in cli("settings", "get")
    cli("templates", "delete", "cli-tpl")
    cli("images", "delete", "cli-image")
    assert "cli-image" not in cli("images", "list")
    # Errors name the field and exit 1.
    capsys.readouterr()
    code = cli_main(
        [
            "--hub-url",
            hub.url,
            "--token",
            hub.admin_token,
            "settings",
            "set",
            "idle_timeout_minutes=soon",
        ]
    )
    assert code == 1 and "idle_timeout_minutes" in capsys.readouterr().err


def test_cli_needs_a_token(monkeypatch, capsys):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert cli_main(["settings", "get"]) == 2
    assert "token" in capsys.readouterr().err
    assert sys.executable
