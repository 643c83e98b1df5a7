"""The Images page in Debian's Chromium: the progress bar moves, the image becomes ready."""

import hashlib

import pytest

from tests.catalog.conftest import qemu_img

pytestmark = pytest.mark.browser

# Records every change of the bar and the speed line, so a fast upload is still seen moving.
RECORDER = """
window.__bar = [];
window.__stats = [];
const bar = document.getElementById("upload-bar");
const stats = document.getElementById("upload-stats");
new MutationObserver(() => window.__bar.push(Number(bar.getAttribute("aria-valuenow"))))
  .observe(bar, {attributes: true, attributeFilter: ["aria-valuenow"]});
new MutationObserver(() => window.__stats.push(stats.textContent))
  .observe(stats, {childList: true, characterData: true, subtree: true});
"""


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    raw = d / "noise.raw"
    with open(raw, "wb") as f:
        for i in range(16 * 16):
            f.write(hashlib.sha512(i.to_bytes(4, "big")).digest() * 1024)
    image = d / "Browser Disk.vhdx"
    qemu_img("convert", "-f", "raw", "-O", "vhdx", str(raw), str(image))
    return image


def test_upload_page_shows_progress_and_a_ready_image(hub, browser, upload_file, artifacts):
    context = browser.new_context()
    page = context.new_page()
    console = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda e: console.append(str(e)))
    try:
        page.goto(f"{hub.url}/hub/login?next=/services/blabs/images")
        page.fill("#username_input", "boss")
        page.fill("#password_input", "anything")
        page.click("#login_submit")
        page.wait_for_selector("#upload-form", timeout=20_000)
        page.evaluate(RECORDER)
        page.set_input_files("#upload-file", str(upload_file))
        assert page.input_value("#upload-name") == "Browser Disk"
        page.click("#upload-start")
        try:
            page.wait_for_selector(
                'tr[data-name="Browser Disk"][data-status="ready"]', timeout=60_000
            )
        except Exception:
            page.screenshot(path=str(artifacts / "catalog-images-failed.png"), full_page=True)
            status = page.text_content("#upload-status"), page.text_content("#page-error")
            raise AssertionError(f"not ready: {status} {console}") from None
        page.screenshot(path=str(artifacts / "catalog-images-page.png"), full_page=True)
        seen = page.evaluate("window.__bar")
        stats = page.evaluate("window.__stats")
        assert len({v for v in seen if 0 < v < 100}) >= 3, seen  # it moved, in steps
        assert seen[-1] == 100
        assert any("MB/s" in s and "left" in s for s in stats), stats
        assert page.text_content("#upload-status").startswith("Ready")
        row = page.text_content('tr[data-name="Browser Disk"]')
        assert "vhdx → qcow2" in row
    finally:
        context.close()


def test_upload_page_resumes_after_a_dropped_connection(hub, browser, upload_file):
    """The third chunk's connection is cut: the page says so, asks the server for its
    offset, and carries on to a complete, verified image."""
    context = browser.new_context()
    page = context.new_page()
    patches = []

    def cut_the_third(route):
        if route.request.method == "PATCH":
            patches.append(route.request.headers.get("upload-offset"))
            if len(patches) == 3:
                route.abort("connectionreset")
                return
        route.continue_()

    try:
        page.goto(f"{hub.url}/hub/login?next=/services/blabs/images")
        page.fill("#username_input", "boss")
        page.fill("#password_input", "anything")
        page.click("#login_submit")
        page.wait_for_selector("#upload-form", timeout=20_000)
        page.route("**/api/uploads/**", cut_the_third)
        page.evaluate(
            """window.__status = [];
            const s = document.getElementById("upload-status");
            new MutationObserver(() => window.__status.push(s.textContent))
              .observe(s, {childList: true, characterData: true, subtree: true});"""
        )
        page.set_input_files("#upload-file", str(upload_file))
        page.fill("#upload-name", "Dropped Disk")
        page.click("#upload-start")
        page.wait_for_selector('tr[data-name="Dropped Disk"][data-status="ready"]', timeout=60_000)
        statuses = page.evaluate("window.__status")
        assert any(s.startswith("Connection lost") for s in statuses), statuses
        assert patches[3] == patches[2]  # the cut chunk was sent again, from the same offset
        image = next(
            i
            for i in hub.service_api("GET", "/images").json()["images"]
            if i["name"] == "Dropped Disk"
        )
        assert image["sha256"] == hashlib.sha256(upload_file.read_bytes()).hexdigest()
    finally:
        context.close()
