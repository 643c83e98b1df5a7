"""Idle culling through a real hub: the culler service, the real console, the demo guest.

Two labs, both with a SPICE client connected through the hub's proxy: one only receives the
screen, the other gets a key press every few seconds. With a 1-minute idle timeout (the
minimum) and a 5-second cull interval, the first is stopped, removed and its disk deleted;
the second runs on. The session-end banner reaches the typing lab's console page.
"""

import threading
import time

import pytest
import requests

from tests.console.parts import key_press, open_session
from tests.harness import lab_dirs
from tests.limits.helpers import server_model, set_limits, start, wait_ready

pytestmark = [pytest.mark.qemu]


@pytest.fixture(scope="module")
def hub(hub_factory, demo_image):
    hub = hub_factory.start(
        env={
            "BLABS_ACCEL": "tcg",
            "BLABS_ACTIVITY_INTERVAL_SECONDS": "1",
            "BLABS_REAPER_INTERVAL_SECONDS": "5",
            "BLABS_SESSION_WARNING_MINUTES": "5",
        }
    )
    # A 5-minute session with a 5-minute warning: the banner is due at once.
    hub.seed_demo(demo_image, max_session_minutes=5)
    return hub


class ConsoleClient(threading.Thread):
    """A SPICE client through the hub's proxy; types a key every ``type_every`` s if set."""

    def __init__(self, hub, token, user, server, type_every=None):
        super().__init__(daemon=True)
        self.url = f"{hub.url.replace('http', 'ws')}/user/{user}/{server}/console/websockify"
        self.headers = [f"Authorization: token {token}"]
        self.type_every = type_every
        self.stopping = threading.Event()
        self.screen_bytes = 0
        self.keys = 0
        self.ended = None

    def connect(self):
        import websocket

        return websocket.create_connection(self.url, header=self.headers, subprotocols=["binary"])

    def run(self):
        session = open_session(self.connect)
        try:
            while not self.stopping.is_set():
                self.screen_bytes += session["display"].pump(self.type_every or 1)
                if self.type_every:
                    key_press(session["inputs"])
                    self.keys += 1
        except Exception as e:  # the lab was culled under us: the connection drops
            self.ended = repr(e)
        finally:
            for channel in session.values():
                channel.close()


def test_screen_only_lab_is_culled_typing_lab_is_not(hub):
    token = hub.create_user("ida")
    r = hub.service_api("PATCH", "/settings", json={"idle_timeout_minutes": 1})
    assert r.status_code == 200, r.text
    set_limits(hub, max_concurrent_vms=10, per_user_vm_limit=2)
    for name in ("quiet", "typing"):
        assert start(hub, token, "ida", name).status_code in (201, 202)
    for name in ("quiet", "typing"):
        wait_ready(hub, "ida", name)
    quiet_dirs = lab_dirs(hub)
    quiet = ConsoleClient(hub, token, "ida", "quiet")
    typing = ConsoleClient(hub, token, "ida", "typing", type_every=3)
    quiet.start()
    typing.start()
    try:
        # The banner: written by the culler into the lab's status, shown by its console.
        status_url = f"{hub.url}/user/ida/typing/console/status.json"
        deadline = time.monotonic() + 30
        banners = []
        while not banners and time.monotonic() < deadline:
            doc = requests.get(status_url, headers={"Authorization": f"token {token}"}, timeout=10)
            doc = doc.json()
            banners = [b["text"] for b in doc["banners"] if "ends in" in b["text"]]
            time.sleep(1)
        assert banners and banners[0].startswith("This lab ends in 5 minutes"), doc

        deadline = time.monotonic() + 120
        while server_model(hub, "ida", "quiet") is not None and time.monotonic() < deadline:
            time.sleep(1)
        assert server_model(hub, "ida", "quiet") is None, "the screen-only lab was not culled"
        assert quiet.screen_bytes > 0, "the quiet lab's console got no screen traffic"
        # Removed, not just stopped: no named server left, and its folder (disk) is gone.
        model = hub.api("GET", "/users/ida", params={"include_stopped_servers": "1"}).json()
        assert "quiet" not in model["servers"]
        assert server_model(hub, "ida", "typing")["ready"], "the typing lab was culled"
        assert typing.keys > 10
        left = lab_dirs(hub)
        assert len(left) == 1 and left < quiet_dirs
        assert not any(p.name == "disk.qcow2" for d in quiet_dirs - left for p in d.glob("*"))
    finally:
        quiet.stopping.set()
        typing.stopping.set()
        quiet.join(10)
        typing.join(10)
    assert "Culling" in hub.log_text()


def test_timeout_below_the_cull_interval_and_bad_values_are_refused(hub):
    for body, field in [
        ({"idle_timeout_minutes": 0}, "idle_timeout_minutes"),
        ({"max_concurrent_vms": -1}, "max_concurrent_vms"),
        ({"per_user_vm_limit": "2"}, "per_user_vm_limit"),
        ({"max_concurrent_vms": 10**9, "idle_timeout_minutes": 5}, "max_concurrent_vms"),
    ]:
        before = hub.service_api("GET", "/settings").json()
        r = hub.service_api("PATCH", "/settings", json=body)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
        after = hub.service_api("GET", "/settings").json()
        assert after == before, "nothing applied"
