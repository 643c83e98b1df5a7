"""A guest's network, with real QEMU, passt and the demo guest's ``netcheck``.

The hole being closed: QEMU's own NAT (slirp) maps the guest's gateway to the host's
loopback, where lab hosts run things that trust 127.0.0.1. The slirp test is the control
that shows ``netcheck`` does see such a service; with passt (the default) the guest gets an
address and a gateway from DHCP but the host's loopback is out of reach.
"""

import asyncio
import http.server
import threading
import time

import psutil
import pytest

from blabs_hub.demo.guest import READY_MARKER
from tests.harness import pid_alive, wait_for
from tests.lab.conftest import demo_lab_spec, serial
from tests.lab.qmp_keys import keys_socket, monitor_args, type_text

pytestmark = pytest.mark.qemu

SECRET = b"blabs-host-loopback-only"


class LoopbackOnly(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(SECRET)))
        self.end_headers()
        self.wfile.write(SECRET)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_service():
    """An unauthenticated HTTP service on the host's 127.0.0.1 (a free port)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoopbackOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def children_named(parent: int, name: str) -> list[int]:
    return [p.pid for p in psutil.Process(parent).children() if name in p.name()]


def netcheck(lab, demo_image, port: int, backend: str) -> str:
    """Boot the demo guest with a network on ``backend``, run ``netcheck PORT``, return what
    it wrote to the serial port."""
    keys = keys_socket()
    run = lab(
        demo_lab_spec(demo_image, network="internet"),
        BLABS_LAB_NETWORK=backend,
        BLABS_QEMU_EXTRA_ARGS=monitor_args(keys),
    )
    try:
        run.wait_stage("console-ready")
        wait_for(lambda: READY_MARKER in serial(run), 60, "the demo guest reached no shell")
        time.sleep(1)
        asyncio.run(type_text(keys, f"netcheck {port}\n"))
        wait_for(lambda: f"gateway port {port} " in serial(run), 60, "netcheck said nothing")
        return serial(run)
    finally:
        keys.unlink(missing_ok=True)


def test_slirp_lets_a_guest_reach_the_hosts_loopback(lab, demo_image, loopback_service):
    said = netcheck(lab, demo_image, loopback_service, "slirp")
    assert "netcheck: address 10.0.2.15/24 gateway 10.0.2.2" in said
    assert f"answered: {SECRET.decode()}" in said


def test_passt_gives_the_guest_a_network_but_not_the_hosts_loopback(
    lab, demo_image, loopback_service
):
    said = netcheck(lab, demo_image, loopback_service, "passt")
    address = next(line for line in said.splitlines() if line.startswith("netcheck: address"))
    assert "address none" not in address and "gateway none" not in address, address
    assert f"gateway port {loopback_service} unreachable" in said
    assert SECRET.decode() not in said


def test_passt_runs_beside_qemu_and_is_gone_when_the_lab_stops(lab, demo_image):
    run = lab(demo_lab_spec(demo_image, network="internet"), BLABS_LAB_NETWORK="passt")
    run.wait_stage("console-ready")
    passt = children_named(run.proc.pid, "passt")
    assert len(passt) == 1, "one passt for the lab's QEMU"
    run.proc.terminate()
    assert run.wait_exit() == 0
    assert not pid_alive(passt[0])


def test_a_lab_without_network_starts_no_passt(lab, demo_spec):
    run = lab(demo_spec)
    run.wait_stage("console-ready")
    assert children_named(run.proc.pid, "passt") == []


def test_a_missing_passt_fails_the_lab_with_the_reason(lab, demo_image):
    run = lab(demo_lab_spec(demo_image, network="internet"), BLABS_PASST="/nonexistent/passt")
    failed = run.wait_stage("failed")
    assert "passt is not installed" in failed["message"]
    assert "BLABS_LAB_NETWORK" in failed["message"]


def test_a_passt_that_cannot_start_fails_the_lab_with_its_words(lab, demo_image, tmp_path):
    broken = tmp_path / "passt"
    broken.write_text("#!/bin/sh\necho 'Failed to sandbox process, exiting' >&2\nexit 1\n")
    broken.chmod(0o755)
    run = lab(demo_lab_spec(demo_image, network="internet"), BLABS_PASST=str(broken))
    failed = run.wait_stage("failed")
    assert "the guest's network (passt) did not start" in failed["message"]
    assert "Failed to sandbox process" in failed["message"]
    assert run.wait_exit() == 1
    assert run.leftovers() == []
