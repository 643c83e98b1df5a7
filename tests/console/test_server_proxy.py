"""The console behind a real jupyter-server with jupyter-server-proxy 4.6 and our entry.

No hub here: a plain ``jupyter server`` with a token stands in for ``jupyterhub-singleuser``
(the lead tests the full CHP → singleuser path). What is proven at this level: the entry
point is picked up, ``/console/`` serves our page and relays SPICE, input through it reaches
the hub's activity endpoint, and the caller's credentials never reach the relay.
"""

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket

from blabs_hub.lab.spec import LabPaths
from tests.console.parts import (
    ActivitySink,
    Qemu,
    free_port,
    key_press,
    open_session,
    remove_tree,
    short_tmpdir,
    tcp_accepts,
    wait_for,
)
from tests.harness import stop_pid

pytestmark = pytest.mark.qemu

TOKEN = "jupyter-test-token-0123456789"  # the caller's credential: must not reach the relay
HUB_COOKIE = "jupyterhub-user-student=2|1:0|10:1700000000|secret-signed-token"
ECHO = Path(__file__).with_name("header_echo.py")

CONFIG = textwrap.dedent(
    """
    import sys
    from blabs_hub.lab.console import setup_console

    probe = setup_console()
    probe["command"] = [sys.executable, {echo!r}, "{{unix_socket}}"]
    leaky = dict(probe, request_headers_override={{}})
    c.ServerProxy.servers = {{"probe": probe, "leaky": leaky}}
    """
)


@pytest.fixture(scope="module")
def server():
    workdir = short_tmpdir("blj-")
    lab = LabPaths(workdir)
    qemu = Qemu(lab)
    process = None
    with ActivitySink() as sink:
        try:
            qemu.start()
            port = free_port()
            config = workdir / "jupyter_server_config.py"
            config.write_text(CONFIG.format(echo=str(ECHO)))
            env = {
                **os.environ,
                **sink.env(),
                "BLABS_LAB_WORKDIR": str(workdir),
                "BLABS_ACTIVITY_INTERVAL_SECONDS": "1",
                "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
                "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
                "JUPYTER_DATA_DIR": str(workdir / "jupyter-data"),
            }
            argv = [
                str(Path(sys.executable).parent / "jupyter-server"),
                f"--config={config}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}",
                "--ServerApp.open_browser=False",
                "--ServerApp.allow_root=True",
                f"--ServerApp.root_dir={workdir}",
            ]
            log = open(workdir / "jupyter.log", "wb")  # noqa: SIM115 - lives with the process
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            wait_for(lambda: tcp_accepts(port), 30, "jupyter-server's port")
            yield {
                "url": f"http://127.0.0.1:{port}",
                "ws": f"ws://127.0.0.1:{port}",
                "lab": lab,
                "sink": sink,
                "log": workdir / "jupyter.log",
            }
        finally:
            if process is not None:
                stop_pid(process.pid)
                process.wait(10)
            qemu.stop()
            remove_tree(workdir)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def get(url, headers=None):
    """GET without following redirects; returns (status, body)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


CREDENTIALS = {"Authorization": f"token {TOKEN}", "Cookie": HUB_COOKIE}


def test_the_leaky_control_shows_server_proxy_forwards_credentials(server):
    status, body = get(f"{server['url']}/leaky/", CREDENTIALS)
    assert status == 200
    seen = json.loads(body)
    assert seen.get("Authorization") == f"token {TOKEN}"
    assert "secret-signed-token" in seen.get("Cookie", "")


def test_our_entry_strips_credentials_over_http_and_websocket(server):
    status, body = get(f"{server['url']}/probe/page", CREDENTIALS)
    assert status == 200
    seen = json.loads(body)
    assert not seen.get("Authorization") and not seen.get("Cookie"), seen
    assert TOKEN not in body.decode()

    ws = websocket.create_connection(
        f"{server['ws']}/probe/ws",
        header=[f"Authorization: token {TOKEN}", f"Cookie: {HUB_COOKIE}"],
    )
    try:
        seen = json.loads(ws.recv())
    finally:
        ws.close()
    assert not seen.get("Authorization") and not seen.get("Cookie"), seen
    assert TOKEN not in json.dumps(seen) and "secret-signed-token" not in json.dumps(seen)


def test_console_requires_the_servers_token(server):
    assert get(f"{server['url']}/console/")[0] in (302, 403)
    assert get(f"{server['url']}/console/", {"Authorization": "token wrong"})[0] in (302, 403)
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(f"{server['ws']}/console/websockify")


def test_console_page_and_spice_through_server_proxy(server):
    status, body = get(f"{server['url']}/console/", {"Authorization": f"token {TOKEN}"})
    assert status == 200 and b"Lab console" in body and b'src="console.js"' in body
    status, body = get(
        f"{server['url']}/console/spice-html5/main.js", {"Authorization": f"token {TOKEN}"}
    )
    assert status == 200 and b"SpiceMainConn" in body

    def connect():
        return websocket.create_connection(
            f"{server['ws']}/console/websockify",
            header=[f"Authorization: token {TOKEN}"],
            subprotocols=["binary"],
        )

    session = open_session(connect)
    try:
        assert session["display"].pump(2) >= 0
        assert server["sink"].snapshot() == [], "screen traffic through the proxy: no activity"
        key_press(session["inputs"])
        post = wait_for(server["sink"].snapshot, 5, "an activity POST")[0]
        assert post["authorization"] == "token server-token-123"
    finally:
        for channel in session.values():
            channel.close()
