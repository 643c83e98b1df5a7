"""The first login in a real browser: admin/admin → change page → nowhere else → home."""

import pytest

NEW_PASSWORD = "green-heron-lantern-17"


@pytest.mark.browser
def test_first_login_is_forced_through_the_change_page(hub_factory, browser):
    hub = hub_factory.start()
    try:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", "admin")
        page.fill("#password_input", "admin")
        page.click("#login_submit")
        page.wait_for_selector("#blabs-change-password")
        assert "temporary" in page.inner_text("#change-message")
        assert page.input_value("#username_input") == "admin"

        # Nowhere else to go: every page sends us back to the login.
        for path in (
            "/hub/home",
            "/hub/admin",
            "/hub/token",
            "/user/admin/",
            "/services/blabs/",
        ):
            page.goto(f"{hub.url}{path}")
            assert "/hub/login" in page.url, (path, page.url)
        assert page.context.request.get(f"{hub.url}/hub/api/users").status == 403

        # Back to the change form: a weak password first, then a good one.
        page.goto(f"{hub.url}/hub/auth/change-password?username=admin")
        page.fill("#old_password_input", "admin")
        page.fill("#new_password_input", "administrator")
        page.fill("#repeat_password_input", "administrator")
        page.click("#change_submit")
        assert "too common" in page.inner_text("#change-message")
        page.fill("#old_password_input", "admin")
        page.fill("#new_password_input", NEW_PASSWORD)
        page.fill("#repeat_password_input", NEW_PASSWORD)
        page.click("#change_submit")
        page.wait_for_url(f"{hub.url}/hub/home**")
        assert page.url.startswith(f"{hub.url}/hub/home")
        page.goto(f"{hub.url}/hub/auth/accounts")
        assert page.is_visible("#accounts-table")
        page.close()
    finally:
        hub.stop()
