"""Our console page in Debian's Chromium (Playwright), served by the relay, against QEMU.

The relay listens on 127.0.0.1 here only because a browser cannot open a unix socket; in a
lab it sits behind jupyter-server-proxy on a unix socket.
"""

import time

import pytest

from blabs_hub.lab.spec import LabPaths
from tests.console.parts import (
    ActivitySink,
    Qemu,
    Relay,
    free_port,
    remove_tree,
    short_tmpdir,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.qemu]


@pytest.fixture
def console():
    """A fresh QEMU + relay per test: QEMU 7.2 sometimes crashes on a spice-html5 reconnect
    (see ``test_qemu_survives_console_reconnects``); one crash must not fail every test."""
    workdir = short_tmpdir("blb-")
    lab = LabPaths(workdir)
    lab.status_file.write_text('{"stage": "booting", "slow_mode": true}\n')
    qemu = Qemu(lab)
    relay = None
    with ActivitySink() as sink:
        try:
            qemu.start()
            port = free_port()
            relay = Relay(lab, env=sink.env(), port=port, activity_interval=1).start()
            yield {
                "url": f"http://127.0.0.1:{port}/",
                "sink": sink,
                "lab": lab,
                "relay": relay,
                "qemu": qemu,
            }
        finally:
            if relay is not None:
                relay.stop()
            qemu.stop()
            remove_tree(workdir)


def test_page_renders_the_guest_and_only_input_counts_as_activity(console, browser, artifacts):
    page = browser.new_page(viewport={"width": 1024, "height": 700})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(console["url"])
        wait_connected(page, console)
        canvas = page.wait_for_selector("#spice-screen canvas", timeout=15000)
        box = canvas.bounding_box()
        assert box["width"] >= 320 and box["height"] >= 200
        # the canvas shows something: not all pixels equal (SeaBIOS text on black)
        wait_for(lambda: distinct_colours(page) > 1, 20, "the guest's screen in the canvas")
        page.screenshot(path=str(artifacts / "console-relay-direct.png"))

        # toolbar and banners from status.json; no token anywhere in the page
        page.wait_for_selector("text=Slow mode: no hardware acceleration")
        assert page.inner_text("#lab-name") == "lab-1"
        assert page.is_enabled("#btn-cad") and page.is_enabled("#btn-paste")
        assert "server-token-123" not in page.content()

        # an open tab with screen updates only: no activity report
        time.sleep(2.5)
        assert console["sink"].snapshot() == [], "screen updates must not count as activity"

        # a real key press in the canvas does
        canvas.click()
        page.keyboard.press("a")
        wait_for(console["sink"].snapshot, 5, "an activity POST after a key press")
        assert errors == [], errors
    finally:
        page.close()


def wait_connected(page, console, timeout=15000):
    """Wait for the page's "Connected" state, or fail with what the page and relay said."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector("body[data-console=connected]", timeout=timeout)
    except PlaywrightTimeout:
        status = page.inner_text("#conn-status")
        messages = page.inner_text("#message-div")
        raise AssertionError(
            f"console not connected: {status!r}\npage log: {messages[-1500:]}\n"
            f"relay log: {console['relay'].log()[-1500:]}\n"
            f"qemu: {console['qemu'].process.poll()} "
            f"{(console['lab'].workdir / 'qemu.log').read_text(errors='replace')[-1500:]}"
        ) from None


def distinct_colours(page) -> int:
    return page.evaluate(
        """() => {
            const c = document.querySelector('#spice-screen canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length && seen.size < 8; i += 4 * 97) {
                seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
            }
            return seen.size;
        }"""
    )


def test_paste_as_typing_sends_key_events(console, browser):
    page = browser.new_page()
    try:
        page.goto(console["url"])
        wait_connected(page, console)
        before = len(console["sink"].snapshot())
        page.click("#btn-paste")
        page.fill("#paste-text", "Hi 42!\nnext\u00e9")
        page.click("#btn-paste-send")
        page.wait_for_function(
            "() => /^(Typed|Stopped)/.test(document.getElementById('paste-progress').textContent)"
        )
        assert page.inner_text("#paste-progress") == (
            "Typed 11 characters; skipped 1 not on a US keyboard."
        ), f"relay log: {console['relay'].log()[-1500:]}\nqemu: {console['qemu'].process.poll()}"
        wait_for(lambda: len(console["sink"].snapshot()) > before, 5, "activity from typing")
        # the key mapping itself (US layout): shift for capitals and symbols, Enter for \\n
        keys = page.evaluate("async () => (await import('./keys.js')).keysFor('aA!\\r\\n').keys")
        assert keys == [
            {"code": 0x1E, "shift": False},
            {"code": 0x1E, "shift": True},
            {"code": 0x02, "shift": True},
            {"code": 0x1C, "shift": False},
        ]
    finally:
        page.close()


def test_stop_lab_goes_to_the_services_confirm_page_in_the_top_window(console, browser):
    page = browser.new_page()
    try:
        page.goto(console["url"])
        page.wait_for_selector("#btn-stop:not([disabled])", timeout=15000)
        requested = []
        page.route("**/services/blabs/labs/**", lambda route: (
            requested.append(route.request.url),
            route.fulfill(status=200, body="confirm page"),
        ))  # fmt: skip
        page.click("#btn-stop")
        page.wait_for_url("**/services/blabs/labs/lab-1/stop")
        assert requested and requested[0].endswith("/services/blabs/labs/lab-1/stop")
    finally:
        page.close()


def test_reconnects_after_the_relay_connection_drops(console, browser):
    page = browser.new_page()
    try:
        page.goto(console["url"])
        wait_connected(page, console)
        page.click("#btn-reconnect")
        wait_connected(page, console)
        # server side close: spice-html5 reports it, our page retries with backoff
        page.evaluate("() => window.spice_connection.ws.close()")
        page.wait_for_selector("body[data-console=disconnected]", timeout=5000)
        wait_connected(page, console)
    finally:
        page.close()


@pytest.mark.xfail(
    strict=False,
    reason="QEMU 7.2's SPICE server sometimes dies with SIGSEGV when spice-html5 reconnects "
    "(seen in ~1 of 3 runs of this module); not reproduced with main/display/inputs only",
)
def test_qemu_survives_console_reconnects(console, browser):
    page = browser.new_page()
    try:
        page.goto(console["url"])
        for _ in range(6):
            wait_connected(page, console)
            page.reload()
        wait_connected(page, console)
        assert console["qemu"].process.poll() is None, "QEMU died"
    finally:
        page.close()
