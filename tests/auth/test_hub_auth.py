"""The authenticator in a real hub, on SQLite and on PostgreSQL.

One hub per database runs the whole story in order (the tests of this module depend on
each other's state, as one deployment's life would): first start with admin/admin, bypass
attempts while the password is temporary, the change, accounts, lockout, restart.
"""

import re
import subprocess
import time

import pytest
import requests

from tests.harness import VENV_BIN

from .client import FormClient, temporary_password, token_for

NEW_ADMIN_PASSWORD = "purple-otter-harbour-42"
XSS_NAME = "<img src=x onerror=alert(1)>"

EXTRA_CONFIG = """
c.BlabsAuthenticator.lockout_threshold = 4
# The instructor role bound to the hub group "instructors" (what rbac.roles() should do).
for role in c.JupyterHub.load_roles:
    if role["name"] == "instructor":
        role["groups"] = ["instructors"]
"""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def hub(request, hub_factory):
    env = {}
    if request.param == "postgres":
        env["BLABS_HUB_DB_URL"] = request.getfixturevalue("postgres").new_database()
    running = hub_factory.start(EXTRA_CONFIG, env)
    yield running
    running.stop()


def jupyterhub_token(hub, name) -> str:
    """``jupyterhub token NAME``: a token minted straight into the database."""
    out = subprocess.run(
        [str(VENV_BIN / "jupyterhub"), "token", name, "-f", str(hub.config_path)],
        cwd=hub.root,
        env=hub.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def state():
    """What earlier steps learnt (tokens, sessions), for the later ones."""
    return {}


def test_first_start_has_admin_admin_with_a_forced_change(hub):
    browser = FormClient(hub)
    r = browser.login("admin", "admin")
    assert r.status_code == 403
    assert "Choose your own password" in r.text and "temporary" in r.text
    assert "jupyterhub-session-id" not in str(browser.s.cookies.keys()) or not any(
        c.name.startswith("jupyterhub-hub-login") for c in browser.s.cookies
    )
    assert not any(c.name.startswith("jupyterhub-hub-login") for c in browser.s.cookies)
    # The API-client login is refused the same way.
    assert token_for(hub, "admin", "admin").status_code == 403


def test_tokens_minted_before_the_change_are_useless(hub, state):
    hub.create_user("admin")  # what the admin panel would do before anyone signed in
    token = jupyterhub_token(hub, "admin")
    state["pre_minted"] = token
    assert hub.api("POST", "/users/admin/server", token=token).status_code == 403
    assert hub.api("GET", "/users", token=token).status_code == 403
    assert hub.api("GET", "/user", token=token).status_code == 403
    r = hub.api("GET", "/users/admin", token=token)
    assert r.status_code == 403
    # Not even an admin can start a server for the account while its password is temporary.
    assert hub.api("POST", "/users/admin/server").status_code == 403
    # /user/admin/ is not served: no server, and the token does not even sign in.
    r = FormClient(hub).get("/user/admin/", headers={"Authorization": f"token {token}"})
    assert "/hub/login" in r.url or r.status_code in (403, 404), (r.status_code, r.url)
    assert hub.api("GET", "/users/admin").json()["servers"] == {}


def test_form_posts_without_xsrf_are_refused_and_change_nothing(hub):
    browser = FormClient(hub)
    browser.get("/hub/login")
    r = browser.post(
        "/hub/auth/change-password",
        {
            "username": "admin",
            "old_password": "admin",
            "new_password": NEW_ADMIN_PASSWORD,
            "new_password_repeat": NEW_ADMIN_PASSWORD,
        },
        xsrf=False,
    )
    assert r.status_code == 403
    r = browser.post("/hub/login", {"username": "admin", "password": "admin"}, xsrf=False)
    assert r.status_code == 403
    assert "Choose your own password" in FormClient(hub).login("admin", "admin").text


@pytest.mark.parametrize(
    ("old", "new", "repeat", "status", "fragment"),
    [
        ("wrong-password", NEW_ADMIN_PASSWORD, None, 403, "Invalid username or current password"),
        ("admin", NEW_ADMIN_PASSWORD, "something-else-entirely", 400, "do not match"),
        ("admin", "short", None, 400, "at least 10"),
        ("admin", "", None, 400, "at least 10"),
        ("admin", "x" * 10_240, None, 400, "at most 1024"),
        ("admin", "administrator", None, 400, "too common"),
        ("x" * 10_240, NEW_ADMIN_PASSWORD, None, 403, "Invalid username"),
    ],
)
def test_bad_password_changes_are_refused(hub, old, new, repeat, status, fragment):
    r = FormClient(hub).change("admin", old, new, repeat)
    assert r.status_code == status, r.text[:500]
    assert fragment in r.text
    assert "Choose your own password" in FormClient(hub).login("admin", "admin").text


def test_the_change_signs_in_and_lands_on_home(hub, state):
    browser = FormClient(hub)
    r = browser.change("admin", "admin", NEW_ADMIN_PASSWORD)
    assert r.status_code == 302, r.text[:500]
    assert r.headers["Location"] == "/hub/home"
    assert any(c.name.startswith("jupyterhub-hub-login") for c in browser.s.cookies)
    home = browser.get("/hub/home")
    assert home.status_code == 200 and "/hub/login" not in home.url
    state["admin_browser"] = browser
    model = hub.api("GET", "/users/admin").json()
    assert model["admin"] is True
    assert {"admin", "blabs-admin", "user"} <= set(model["roles"])


def test_after_the_change_old_is_refused_new_works_tokens_work(hub, state):
    assert FormClient(hub).login("admin", "admin").status_code == 403
    assert FormClient(hub).login("admin", NEW_ADMIN_PASSWORD).status_code == 302
    r = token_for(hub, "admin", NEW_ADMIN_PASSWORD)
    assert r.status_code == 201
    token = r.json()["token"]
    assert hub.api("GET", "/users", token=token).status_code == 200
    assert hub.api("GET", "/users", token=state["pre_minted"]).status_code == 200
    assert token_for(hub, "admin", "admin").status_code == 403


def test_accounts_page_needs_a_session(hub):
    r = FormClient(hub).get("/hub/auth/accounts", allow_redirects=False)
    assert r.status_code == 302 and "/hub/login" in r.headers["Location"]


def test_admin_creates_an_account_with_a_temporary_password(hub, state):
    admin = state["admin_browser"]
    r = admin.accounts("create", "Carol")
    assert r.status_code == 201, r.text[:500]
    assert r.headers["Cache-Control"] == "no-store"
    temp = temporary_password(r.text)
    state["carol_temp"] = temp
    assert "temporary password" in admin.get("/hub/auth/accounts").text
    assert temp not in admin.get("/hub/auth/accounts").text  # shown once
    assert admin.accounts("create", "carol").status_code == 409
    r = FormClient(hub).login("carol", temp)
    assert r.status_code == 403 and "Choose your own password" in r.text


def test_users_added_in_the_admin_panel_get_a_usable_account(hub, state):
    hub.create_user("erin")  # the admin panel uses this API
    admin = state["admin_browser"]
    page = admin.get("/hub/auth/accounts").text
    assert re.search(r"erin</td>\s*<td>no password yet", page)
    assert FormClient(hub).login("erin", "").status_code == 403
    temp = temporary_password(admin.accounts("reset", "erin").text)
    erin = FormClient(hub)
    assert "Choose your own password" in erin.login("erin", temp).text
    assert erin.change("erin", temp, "erins-own-secret-99").status_code == 302
    # a student's session does not open the Accounts page
    assert erin.get("/hub/auth/accounts").status_code == 403


def change_over_api(hub, body, token=None, **kw) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.post(
        f"{hub.url}/hub/auth/api/password", json=body, headers=headers, timeout=30, **kw
    )


def test_scripts_replace_a_temporary_password_over_json(hub, state):
    temp = temporary_password(state["admin_browser"].accounts("create", "frank").text)
    assert token_for(hub, "frank", temp).status_code == 403  # temporary: no token yet
    body = {"username": "frank", "old_password": temp, "new_password": "franks-own-secret-77"}

    r = change_over_api(hub, {**body, "old_password": "wrong"})
    assert (r.status_code, r.json()["field"]) == (403, "old_password")
    r = change_over_api(hub, {**body, "new_password": "short"})
    assert (r.status_code, r.json()["field"]) == (400, "new_password")
    r = change_over_api(hub, {**body, "new_password": 42})
    assert (r.status_code, r.json()["field"]) == (400, "new_password")
    r = requests.post(f"{hub.url}/hub/auth/api/password", data="{not json", timeout=30)
    assert r.status_code == 400
    assert token_for(hub, "frank", temp).status_code == 403, "a refused change changed nothing"

    r = change_over_api(hub, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"username": "frank", "changed": True, "was_temporary": True}
    token = token_for(hub, "frank", "franks-own-secret-77")
    assert token.status_code in (200, 201), token.text
    state["frank_token"] = token.json()["token"]


def test_a_token_changes_only_its_own_users_password(hub, state):
    token = state["frank_token"]
    body = {"old_password": "franks-own-secret-77", "new_password": "franks-next-secret-88"}
    r = change_over_api(hub, {**body, "username": "admin"}, token)
    assert (r.status_code, r.json()["field"]) == (403, "username")
    r = change_over_api(hub, body, token)
    assert r.status_code == 200 and r.json()["was_temporary"] is False, r.text
    assert token_for(hub, "frank", "franks-next-secret-88").status_code in (200, 201)


def test_a_signed_in_browser_cannot_be_made_to_change_its_password_cross_site(hub, state):
    admin = state["admin_browser"]
    body = {"old_password": NEW_ADMIN_PASSWORD, "new_password": "attacker-chosen-secret-1"}
    r = admin.s.post(
        f"{hub.url}/hub/auth/api/password",
        json=body,
        headers={"Origin": "https://evil.example"},
        timeout=30,
    )
    assert r.status_code == 403, r.text
    assert token_for(hub, "admin", NEW_ADMIN_PASSWORD).status_code in (200, 201)


def test_instructor_is_a_group_the_admin_manages(hub):
    r = hub.api("POST", "/groups/instructors/users", json={"users": ["erin"]})
    assert r.status_code == 200, r.text
    r = token_for(hub, "erin", "erins-own-secret-99")
    whoami = hub.api("GET", "/user", token=r.json()["token"]).json()
    assert "custom:blabs:templates" in whoami["scopes"]
    assert "admin:users" not in whoami["scopes"]
    student = token_for(hub, "admin", NEW_ADMIN_PASSWORD)  # control: admin is not instructor
    assert student.status_code == 201


def test_bad_logins_get_one_answer(hub):
    browser = FormClient(hub)
    for name, password in [
        ("erin", "wrong-password"),
        ("nobody-here", "wrong-password"),
        ("erin", ""),
        ("", ""),
        ("erin", "x" * 10_240),
        ("x" * 10_240, "x"),
    ]:
        r = browser.login(name, password)
        assert r.status_code == 403, (name[:20], r.status_code)
        assert "Invalid username or password." in r.text
    # those three failures for erin are counted but below the threshold (4); reset them
    assert FormClient(hub).login("erin", "erins-own-secret-99").status_code == 302


def test_unknown_user_takes_as_long_as_a_wrong_password(hub):
    browser = FormClient(hub)
    xsrf = browser.xsrf()

    def timed(name):
        start = time.perf_counter()
        r = browser.s.post(
            hub.url + "/hub/login",
            data={"username": name, "password": "wrong-password", "_xsrf": xsrf},
            allow_redirects=False,
        )
        assert r.status_code == 403
        return time.perf_counter() - start

    # Interleaved, and the fastest of each: other load on the machine only adds time.
    known, unknown = [], []
    for _ in range(3):
        known.append(timed("erin"))
        unknown.append(timed("nobody-at-all"))
    ratio = min(unknown) / min(known)
    assert 0.5 < ratio < 2, (known, unknown)
    assert FormClient(hub).login("erin", "erins-own-secret-99").status_code == 302


def test_lockout_after_failures_with_the_time_it_lifts(hub, state):
    temp = state["carol_temp"]
    browser = FormClient(hub)
    answers = [browser.login("carol", f"wrong-{i}") for i in range(4)]
    assert [r.status_code for r in answers] == [403] * 4
    assert "Invalid username or password" in answers[0].text
    assert re.search(r"locked until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", answers[-1].text)
    r = browser.login("carol", temp)  # the right password does not get through a lock
    assert r.status_code == 403 and "locked until" in r.text
    assert token_for(hub, "carol", temp).status_code == 403
    log = hub.log_text()
    assert "Failed login for 'carol'" in log
    assert "Refused login for 'carol'" in log and "account locked until" in log


def test_restart_keeps_passwords_flags_and_locks(hub, state):
    hub.restart()
    assert FormClient(hub).login("admin", "admin").status_code == 403
    assert FormClient(hub).login("admin", NEW_ADMIN_PASSWORD).status_code == 302
    assert "locked until" in FormClient(hub).login("carol", state["carol_temp"]).text
    model = hub.api("GET", "/users/admin").json()
    assert model["admin"] is True and "blabs-admin" in model["roles"]


def test_admin_unlocks_and_reset_cuts_off_tokens_at_once(hub, state):
    admin = FormClient(hub)
    assert admin.login("admin", NEW_ADMIN_PASSWORD).status_code == 302
    r = admin.accounts("unlock", "carol")
    assert r.status_code == 200 and "Unlocked carol" in r.text
    carol = FormClient(hub)
    assert "Choose your own password" in carol.login("carol", state["carol_temp"]).text
    assert carol.change("carol", state["carol_temp"], "carols-new-secret-7").status_code == 302
    token = token_for(hub, "carol", "carols-new-secret-7").json()["token"]
    assert hub.api("GET", "/user", token=token).status_code == 200
    assert admin.accounts("reset", "carol").status_code == 200
    assert hub.api("GET", "/user", token=token).status_code == 403
    assert carol.get("/hub/home", allow_redirects=False).status_code == 302  # session gone
    assert admin.accounts("reset", "admin").status_code == 400  # not one's own


def test_usernames_are_escaped_on_the_accounts_page(hub):
    r = hub.api("POST", "/users", json={"usernames": [XSS_NAME]})
    assert r.status_code == 201, r.text
    admin = FormClient(hub)
    assert admin.login("admin", NEW_ADMIN_PASSWORD).status_code == 302
    page = admin.get("/hub/auth/accounts").text
    assert XSS_NAME not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    r = admin.accounts("create", "<script>alert(2)</script>")
    assert "<script>alert(2)" not in r.text


def test_users_named_in_the_config_get_accounts_at_start(hub_factory):
    """The hub hands configured users to add_user as bare ORM rows at start, not wrappers."""
    hub = hub_factory.start('c.Authenticator.admin_users = {"dean"}\n')
    try:
        assert "Traceback" not in hub.log_text()
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{hub.data_dir}/jupyterhub.sqlite")
        with engine.connect() as db:
            rows = db.execute(text("select username from blabs_credentials")).scalars().all()
        engine.dispose()
        assert "dean" in rows
    finally:
        hub.stop()
