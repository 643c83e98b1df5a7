"""The relay between a real QEMU SPICE server and real websocket clients.

A small SPICE client (``parts.SpiceChannel``) speaks to the relay the way spice-html5 does:
main, display and inputs channels, each over its own websocket. The hub's activity endpoint
is a loopback HTTP server that records what it receives.
"""

import socket
import time
import urllib.request

import pytest

from blabs_hub.lab.spec import LabPaths
from tests.console.parts import (
    ActivitySink,
    Qemu,
    Relay,
    key_press,
    listening_tcp_inodes,
    open_session,
    process_socket_inodes,
    read_events,
    remove_tree,
    short_tmpdir,
    unix_ws_connector,
    wait_for,
)

pytestmark = pytest.mark.qemu

INTERVAL = 1.0


@pytest.fixture(scope="module")
def qemu():
    workdir = short_tmpdir("blc-")
    qemu = Qemu(LabPaths(workdir))
    try:
        yield qemu.start()
    finally:
        qemu.stop()
        remove_tree(workdir)


@pytest.fixture
def lab(qemu):
    return qemu.lab


@pytest.fixture
def sink():
    with ActivitySink() as sink:
        yield sink


@pytest.fixture
def relay(lab, sink):
    lab.console_events.unlink(missing_ok=True)
    relay = Relay(lab, env=sink.env(), activity_interval=INTERVAL).start()
    yield relay
    relay.stop()


def close_all(session):
    for channel in session.values():
        channel.close()


def test_screen_updates_alone_do_not_report_activity_and_a_key_does(lab, relay, sink):
    session = open_session(unix_ws_connector(relay.listen))
    try:
        screen = session["display"].pump(3 * INTERVAL)
        screen += session["display"].received
        assert screen > 2000, "the display channel should carry the BIOS screen"
        assert session["display"].ack_window, "server asked for acks: client sent them"
        assert sink.snapshot() == [], "screen traffic and display acks must not count"

        before = time.time()
        key_press(session["inputs"])
        posts = wait_for(sink.snapshot, 5, "an activity POST")
        post = posts[0]
        assert post["path"] == "/hub/api/users/student/activity"
        assert post["authorization"] == "token server-token-123"
        reported = post["body"]["servers"]["lab-1"]["last_activity"]
        assert post["body"]["last_activity"] == reported
        assert post["at"] - before < INTERVAL + 1
    finally:
        close_all(session)


def test_typing_burst_is_throttled_and_its_last_key_reported(lab, relay, sink):
    session = open_session(unix_ws_connector(relay.listen))
    try:
        start = time.time()
        while time.time() - start < 2.5 * INTERVAL:
            key_press(session["inputs"])
            session["inputs"].pump(0.05)
        last_key = time.time()
        wait_for(lambda: len(sink.snapshot()) >= 3, 5, "the trailing activity POST")
        time.sleep(1.5 * INTERVAL)
        posts = sink.snapshot()
        # at most one per interval (+1 for the first, immediate one)
        assert len(posts) <= 2.5 / INTERVAL + 2
        gaps = [b["at"] - a["at"] for a, b in zip(posts, posts[1:], strict=False)]
        assert all(gap >= INTERVAL * 0.9 for gap in gaps), gaps
        # the last report carries (about) the time of the last key, not of the first
        from datetime import datetime

        last = datetime.fromisoformat(posts[-1]["body"]["last_activity"].replace("Z", "+00:00"))
        assert abs(last.timestamp() - last_key) < 0.5
    finally:
        close_all(session)


def test_console_events_record_connect_input_disconnect(lab, relay, sink):
    session = open_session(unix_ws_connector(relay.listen))
    key_press(session["inputs"])
    wait_for(sink.snapshot, 5, "an activity POST")
    close_all(session)
    events = wait_for(
        lambda: [e for e in read_events(lab) if e["event"] == "disconnect"] and read_events(lab),
        5,
        "the disconnect event",
    )
    kinds = [(e["event"], e["channel"]) for e in events]
    assert ("input", "inputs") in kinds
    # Input is recorded by the reporting thread, so it may land after the disconnect; the
    # connection events themselves are in order.
    connections = [k for k in kinds if k[0] in ("connect", "disconnect")]
    assert connections[0] == ("connect", "main")
    assert connections[-1] == ("disconnect", "main")
    assert kinds.count(("connect", "main")) == 1, "one console = one main channel"
    assert all(e["time"].endswith("Z") for e in events)


def test_spice_is_reached_only_through_unix_sockets(lab, relay, qemu):
    session = open_session(unix_ws_connector(relay.listen))
    try:
        listening = listening_tcp_inodes()
        relay_pids = descendants(relay.process.pid)
        assert len(relay_pids) >= 4, "one forked handler per channel websocket"
        for pid in (qemu.process.pid, *relay_pids):
            assert not process_socket_inodes(pid) & listening, f"pid {pid} listens on TCP"
            assert not tcp_connections(pid), f"pid {pid} has a TCP connection"
        with open(f"/proc/{qemu.process.pid}/cmdline") as f:
            cmdline = f.read().split("\0")
        spice_arg = cmdline[cmdline.index("-spice") + 1]
        assert spice_arg.startswith("unix=on,addr=") and "port=" not in spice_arg
        with open("/proc/net/unix") as f:
            assert any(str(lab.spice_socket) in line for line in f)
    finally:
        close_all(session)


def descendants(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        with open(f"/proc/{p}/task/{p}/children") as f:
            todo.extend(int(c) for c in f.read().split())
    return pids


def tcp_connections(pid: int) -> set[str]:
    """Inodes of any TCP socket (listening or connected) the process holds."""
    tcp = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            tcp |= {line.split()[9] for line in f.readlines()[1:]}
    return process_socket_inodes(pid) & tcp


def http_over_unix(sock_path, path, headers=None):
    """A raw HTTP/1.0 GET over the relay's unix socket; returns (status, headers, body)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock_path))
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, head.decode("latin1"), body


def test_relay_serves_page_spice_html5_and_status_but_nothing_else(lab, relay):
    status, head, body = http_over_unix(relay.listen, "/")
    assert status == 200 and b'src="console.js"' in body
    assert "Cache-Control: no-cache" in head and "nosniff" in head
    status, head, body = http_over_unix(relay.listen, "/spice-html5/main.js")
    assert status == 200 and b"SpiceMainConn" in body
    assert "javascript" in head.lower()
    for path in ("/../../../etc/passwd", "/spice-html5/../../../../etc/passwd", "/%2e%2e/etc"):
        status, _, body = http_over_unix(relay.listen, path)
        assert b"root:" not in body
    assert http_over_unix(relay.listen, "/spice-html5/thirdparty/")[0] == 404  # no listings
    lab.status_file.write_text('{"stage": "booting", "slow_mode": true}\n')
    try:
        status, head, body = http_over_unix(relay.listen, "/status.json")
        assert status == 200
        import json

        doc = json.loads(body)
        assert doc["slow_mode"] is True
        assert doc["stop_url"] == "/services/blabs/labs/lab-1/stop"
        assert "server-token-123" not in body.decode()
    finally:
        lab.status_file.unlink()


def test_relay_without_hub_env_still_relays(lab):
    relay = Relay(lab, env={"JUPYTERHUB_API_TOKEN": ""}, activity_interval=INTERVAL).start()
    try:
        session = open_session(unix_ws_connector(relay.listen))
        key_press(session["inputs"])
        assert session["display"].pump(0.5) >= 0
        close_all(session)
        assert "input is not reported" in relay.log()
    finally:
        relay.stop()


def test_hub_down_does_not_break_the_console(lab):
    env = {
        "JUPYTERHUB_API_TOKEN": "x",
        "JUPYTERHUB_ACTIVITY_URL": "http://127.0.0.1:9/hub/api/users/u/activity",
    }
    relay = Relay(lab, env=env, activity_interval=INTERVAL).start()
    try:
        session = open_session(unix_ws_connector(relay.listen))
        key_press(session["inputs"])
        time.sleep(0.5)
        key_press(session["inputs"])
        assert session["display"].pump(0.5) >= 0
        close_all(session)
        wait_for(lambda: "activity report to the hub failed" in relay.log(), 5, "the warning")
    finally:
        relay.stop()


def test_direct_tcp_listen_binds_loopback_only(lab):
    from tests.console.parts import free_port

    port = free_port()
    relay = Relay(lab, port=port).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 200
        with open("/proc/net/tcp") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        local = [r[1] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]
        assert local == [f"0100007F:{port:04X}"]
    finally:
        relay.stop()
