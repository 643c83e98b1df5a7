"""Live limits through a real hub (local spawner, the demo guest under TCG).

The admin changes the settings row over the blabs service's API; the very next start obeys,
with no restart. Refusals come back as clear 4xx answers over the REST API and as a readable
page in the browser; the per-user limit counts running labs, not stopped named servers; after
a hub restart, running labs still hold their seats.
"""

import contextlib
import time

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.accounts import add_account
from tests.limits.helpers import (
    TEMPLATE,
    seeded_hub,
    server_model,
    set_limits,
    start,
    start_ready,
    stop,
)

pytestmark = [pytest.mark.qemu]
PASSWORD = "correct-horse-battery-42"


@pytest.fixture(scope="module")
def hub(hub_factory, demo_image):
    return seeded_hub(hub_factory, demo_image)


def refusal(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()["message"]


def test_limits_apply_live_count_running_only_and_survive_a_restart(hub):
    ada = add_account(hub, "ada", PASSWORD)
    bob = hub.create_user("bob")
    set_limits(hub, max_concurrent_vms=1, per_user_vm_limit=1)
    start_ready(hub, ada, "ada", "first")

    message = refusal(start(hub, bob, "bob", "one"), 429)
    assert message.startswith("All 1 lab seats are in use.")
    message = refusal(start(hub, ada, "ada", "second"), 409)
    assert message.startswith("You already have 1 lab running")
    # A refused start leaves nothing running and no lab folder behind.
    assert server_model(hub, "bob", "one") is None

    set_limits(hub, max_concurrent_vms=0)
    assert "switched off" in refusal(start(hub, bob, "bob", "one"), 403)

    set_limits(hub, max_concurrent_vms=2)  # live: the next start is admitted
    start_ready(hub, bob, "bob", "one")
    message = refusal(start(hub, bob, "bob", "two"), 409)
    assert "stop it to start another" in message

    # A hub restart: both labs run on (cleanup_servers = False) and still hold their seats.
    hub.restart()
    set_limits(hub, per_user_vm_limit=2)
    assert refusal(start(hub, bob, "bob", "two"), 429).startswith("All 2 lab seats")

    # Stopped, not removed: the named server stays, but holds no seat.
    stop(hub, "ada", "first", remove=False)
    named = hub.api("GET", "/users/ada", params={"include_stopped_servers": "1"}).json()
    assert "first" in named["servers"] and not named["servers"]["first"]["ready"]
    start_ready(hub, bob, "bob", "two")  # bob now runs 2 of per-user 2
    set_limits(hub, per_user_vm_limit=1)
    assert refusal(start(hub, ada, "ada", "second"), 429).startswith("All 2 lab seats")
    stop(hub, "bob", "two", remove=True)
    start_ready(hub, ada, "ada", "second")  # ada's stopped "first" does not count
    for user, server in (("ada", "second"), ("bob", "one")):
        stop(hub, user, server, remove=True)


def test_refusal_is_a_readable_page_in_the_browser(hub, browser):
    add_account(hub, "cleo", PASSWORD)
    set_limits(hub, max_concurrent_vms=0, per_user_vm_limit=1)
    page = browser.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "cleo")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")
    page.goto(f"{hub.url}/hub/spawn/cleo/{TEMPLATE}?opt-template={TEMPLATE}")
    text = ""
    deadline = time.monotonic() + 30
    while "switched off" not in text and time.monotonic() < deadline:
        with contextlib.suppress(PlaywrightError):
            text = page.inner_text("body", timeout=500)
        time.sleep(0.2)
    page.screenshot(path=str(hub.root / "refused.png"))
    assert "New labs are switched off right now" in text, text
    page.close()
    set_limits(hub, max_concurrent_vms=20)
