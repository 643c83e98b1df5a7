"""The product's vertical slice, in a real browser: Start lab → a real VM console → Stop.

Everything is real: JupyterHub with configurable-http-proxy and the blabs authenticator,
the local spawner, the lab launcher booting the demo guest in QEMU, jupyterhub-singleuser
with jupyter-server-proxy, the websockify relay, spice-html5, and Chromium.
"""

import contextlib
import json
import secrets
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from qemu.qmp.legacy import QEMUMonitorProtocol

from tests.accounts import add_account
from tests.harness import lab_dirs, off_the_loop, pid_alive
from tests.lab.qmp_keys import monitor_args

pytestmark = [pytest.mark.browser, pytest.mark.qemu]

PASSWORD = "correct-horse-battery-42"


@pytest.fixture(scope="module")
def hub(hub_factory, demo_image, tmp_path_factory):
    monitor_dir = tmp_path_factory.mktemp("mon")
    hub = hub_factory.create(
        env={
            "BLABS_ACCEL": "tcg",
            "BLABS_ACTIVITY_INTERVAL_SECONDS": "1",
            # A second QMP monitor for the test's own screendump; the launcher holds the first.
            "BLABS_QEMU_EXTRA_ARGS": monitor_args(monitor_dir / "test.sock"),
        }
    )
    hub.monitor = monitor_dir / "test.sock"
    hub.start()
    hub.seed_demo(demo_image)
    return hub


def qemu_pid(lab_dir: Path) -> int:
    for line in (lab_dir / "status.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("qemu_pid"):
            return record["qemu_pid"]
    raise AssertionError("the launcher recorded no QEMU pid")


def screendump(monitor: Path, out: Path) -> tuple[int, int, int]:
    """Ask QEMU for its screen; return (width, height, distinct pixel values seen)."""
    qmp = QEMUMonitorProtocol(str(monitor))
    qmp.connect()
    try:
        qmp.cmd("screendump", filename=str(out))
    finally:
        qmp.close()
    data = out.read_bytes()
    # P6 header: magic, width, height, maxval, then RGB bytes.
    magic, width, height, _maxval, pixels = data.split(maxsplit=4)
    assert magic == b"P6"
    rgb = {pixels[i : i + 3] for i in range(0, 3 * int(width) * int(height), 3 * 7)}
    return int(width), int(height), len(rgb)


def wait_for_text(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {path} after {timeout} s")


def sign_in(page, hub, username):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")


def canvas_facts(page) -> dict:
    return page.evaluate(
        """() => {
            const c = document.querySelector('#spice-screen canvas');
            if (!c || !c.width) return null;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length; i += 28) seen.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]);
            return {width: c.width, height: c.height, colours: seen.size};
        }"""
    )


def test_student_starts_a_lab_types_into_the_vm_and_stops_it(hub, browser, artifacts):
    add_account(hub, "ada", PASSWORD)
    page = browser.new_page()
    page.set_default_timeout(30_000)
    sign_in(page, hub, "ada")

    # The home page offers the template; Start lab goes through the spawn-progress page.
    page.click("#start-lab-demo-linux")
    progress = ""
    deadline = time.monotonic() + 90
    while "/console/" not in page.url and time.monotonic() < deadline:
        # The page may navigate between two reads: then there is nothing to read.
        with contextlib.suppress(PlaywrightError):
            progress = max(progress, page.text_content("#progress-log", timeout=200) or "", key=len)
        time.sleep(0.05)
    assert "/user/ada/demo-linux/console/" in page.url, progress
    assert "Preparing the lab's disk" in progress
    assert "Starting the virtual machine" in progress

    # The console shows the guest's screen: the canvas has the guest's size and content,
    # which QEMU's own screendump confirms.
    page.wait_for_function("() => document.querySelector('#spice-screen canvas')?.width > 0")
    (lab,) = lab_dirs(hub)
    serial = lab / "serial.log"
    wait_for_text(serial, "shell ready", 90)  # the demo guest says so on its serial port
    dump = artifacts / "e2e-screendump.ppm"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the guest has drawn something (text)
        width, height, qemu_colours = off_the_loop(screendump, hub.monitor, dump)
        if qemu_colours > 1:
            break
        time.sleep(1)
    page.wait_for_function("() => document.querySelector('#spice-screen canvas').width >= 640")
    time.sleep(1.5)
    facts = canvas_facts(page)
    page.screenshot(path=str(artifacts / "e2e-console.png"))
    assert (facts["width"], facts["height"]) == (width, height)
    assert qemu_colours > 1 and facts["colours"] > 1, "the guest screen is not blank"

    # Typing in the browser reaches the guest: a line echoed to the serial port lands in
    # the VM's serial log (browser → CHP → server-proxy → websockify → SPICE → guest).
    marker = f"blabs-{secrets.token_hex(4)}"
    page.click("#spice-screen canvas")
    # As a person types it: shifted characters are Shift plus a key.
    page.keyboard.type(f"echo {marker} ", delay=40)
    page.keyboard.press("Shift+Period")  # >
    page.keyboard.type(" /dev/tty", delay=40)
    page.keyboard.press("Shift+KeyS")
    page.keyboard.type("0", delay=40)
    page.keyboard.press("Enter")
    try:
        wait_for_text(serial, marker, 30)
    finally:
        page.screenshot(path=str(artifacts / "e2e-console-typed.png"))

    # Stop lab ends QEMU and removes the lab's disk.
    pid = qemu_pid(lab)
    page.click("#btn-stop")
    page.wait_for_url("**/services/blabs/labs/demo-linux/stop")
    page.click("#confirm-stop")
    page.wait_for_url("**/hub/home")
    deadline = time.monotonic() + 30
    while (pid_alive(pid) or lab.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(pid), "QEMU is gone"
    assert not lab.exists(), "the overlay disk and the lab folder are gone"
    page.close()


def test_screen_updates_do_not_count_as_activity_but_a_key_press_does(hub, browser):
    token = add_account(hub, "grace", PASSWORD)
    r = hub.api(
        "POST",
        "/users/grace/servers/demo-linux",
        token=token,
        json={"user_options": {"template": "demo-linux"}},
    )
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        server = hub.api("GET", "/users/grace", token=token).json()["servers"]["demo-linux"]
        if server["ready"]:
            break
        time.sleep(0.5)

    def last_activity():
        return hub.api("GET", "/users/grace", token=token).json()["servers"]["demo-linux"][
            "last_activity"
        ]

    page = browser.new_page()
    page.set_default_timeout(30_000)
    sign_in(page, hub, "grace")
    page.goto(f"{hub.url}/user/grace/demo-linux/console/")
    page.wait_for_function("() => document.querySelector('#spice-screen canvas')?.width >= 640")
    time.sleep(3)  # let the connection's own traffic settle
    before = last_activity()
    # The shell's cursor blinks: screen traffic flows, nobody touches a key.
    time.sleep(6)
    assert last_activity() == before, "screen traffic alone moved last_activity"

    page.click("#spice-screen canvas")
    page.keyboard.press("a")
    deadline = time.monotonic() + 15
    while last_activity() == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert last_activity() > before, "a key press did not move last_activity"
    page.close()
    assert hub.api("DELETE", "/users/grace/servers/demo-linux", token=token).status_code == 204
