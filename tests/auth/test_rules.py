"""The authenticator's pure rules: password policy, hashing, lockout, SSO claim mapping."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from blabs_hub.config import BlabsConfigError
from blabs_hub.hub.auth import lockout, passwords, sso
from blabs_hub.hub.auth.authenticator import BlabsAuthenticator

FAST = passwords.make_hasher(time_cost=1, memory_cost=1024)
POLICY = passwords.PasswordPolicy(min_length=10, max_length=1024)
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


# --- passwords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "fragment"),
    [
        ("", "at least 10"),
        ("short", "at least 10"),
        ("x" * 10_240, "at most 1024"),
        ("          ", "empty or only spaces"),
        ("Password", "at least 10"),
        ("administrator", "too common"),
        ("alice-the-user", "differ from the username"),
        ("old-password-1", "differ from the current one"),
    ],
)
def test_policy_refuses_with_a_reason(new, fragment):
    problems = passwords.policy_problems(
        new, username="Alice-The-User", policy=POLICY, old="old-password-1"
    )
    assert any(fragment in p for p in problems), problems


def test_policy_accepts_a_good_password():
    assert passwords.policy_problems("correct horse battery", username="a", policy=POLICY) == []


def test_hash_is_argon2id_and_verifies_only_the_right_password():
    h = passwords.hash_password(FAST, "correct horse battery")
    assert h.startswith("$argon2id$")
    assert passwords.verify_password(FAST, h, "correct horse battery")
    assert not passwords.verify_password(FAST, h, "correct horse batterY")
    assert not passwords.verify_password(FAST, h, "x" * 10_240)  # long input: no crash
    assert not passwords.verify_password(FAST, "not-a-hash", "anything")
    assert not passwords.verify_password(FAST, None, "anything")


def test_rehash_when_parameters_rise():
    h = passwords.hash_password(FAST, "correct horse battery")
    assert not passwords.needs_rehash(FAST, h)
    stronger = passwords.make_hasher(time_cost=2, memory_cost=2048)
    assert passwords.needs_rehash(stronger, h)


def test_missing_hash_costs_a_verification():
    """No account / no password must not answer faster than a wrong password."""
    hasher = passwords.make_hasher()  # production parameters: differences would show
    real = passwords.hash_password(hasher, "correct horse battery")
    passwords.dummy_hash(hasher)  # made once per process; not part of a login

    def cost(stored):
        start = time.perf_counter()
        for _ in range(3):
            passwords.verify_password(hasher, stored, "wrong guess here")
        return time.perf_counter() - start

    wrong, missing = cost(real), cost(None)
    assert 0.5 < missing / wrong < 2, (wrong, missing)


def test_temporary_passwords_are_random_and_pass_the_policy():
    seen = {passwords.temporary_password() for _ in range(50)}
    assert len(seen) == 50
    for pw in seen:
        assert len(pw) == 19 and pw.count("-") == 3
        assert passwords.policy_problems(pw, username="bob", policy=POLICY) == []


# --- lockout --------------------------------------------------------------------------------

LOCK = lockout.LockoutPolicy(
    threshold=3, window=timedelta(minutes=10), duration=timedelta(minutes=5)
)


def fail(counters, minutes):
    return lockout.after_failure(counters, T0 + timedelta(minutes=minutes), LOCK)


def test_threshold_failures_in_the_window_lock_until_now_plus_duration():
    c = fail(fail(fail(lockout.Counters(), 0), 1), 2)
    assert c.failed_count == 3
    assert lockout.locked_until(c, T0 + timedelta(minutes=2)) == T0 + timedelta(minutes=7)
    assert lockout.locked_until(c, T0 + timedelta(minutes=7, seconds=1)) is None


def test_failures_outside_the_window_start_a_new_count():
    c = fail(fail(lockout.Counters(), 0), 1)
    c = fail(c, 11)  # the window of the first failure is over
    assert c.failed_count == 1 and c.locked_until is None


def test_after_the_lock_lifts_counting_starts_over():
    c = fail(fail(fail(lockout.Counters(), 0), 1), 2)
    c = fail(c, 8)  # lock lifted at 7
    assert c.failed_count == 1 and lockout.locked_until(c, T0 + timedelta(minutes=8)) is None


def test_success_clears_and_naive_database_times_are_utc():
    c = lockout.Counters(3, datetime(2026, 11, 29, 12, 0), datetime(2026, 11, 29, 12, 5))
    assert lockout.locked_until(c, T0) == T0 + timedelta(minutes=5)
    assert lockout.after_success(c) == lockout.Counters()


def test_lock_message_names_the_time():
    assert "2026-11-29 12:05:00 UTC" in lockout.lock_message(T0 + timedelta(minutes=5))


# --- SSO ------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["preferred_username", "sub", "oid", "upn"])
def test_username_from_a_stable_claim(claim):
    assert sso.username_from_claims({claim: " ada ", "name": "Ada L."}, claim) == "ada"


@pytest.mark.parametrize("claim", ["name", "given_name", "nickname", "display_name"])
def test_display_names_are_never_usernames(claim):
    with pytest.raises(ValueError, match="not a stable identifier"):
        sso.username_from_claims({claim: "Ada"}, claim)


def test_email_only_when_verified():
    assert sso.username_from_claims({"email": "a@x", "email_verified": True}, "email") == "a@x"
    for info in ({"email": "a@x"}, {"email": "a@x", "email_verified": "true"}):
        with pytest.raises(ValueError, match="verified"):
            sso.username_from_claims(info, "email")


def test_missing_claim_is_refused():
    with pytest.raises(ValueError, match="no 'sub'"):
        sso.username_from_claims({"preferred_username": "ada"}, "sub")


def test_groups_map_to_admin_and_instructors():
    info = {"groups": ["/uni/staff/lab-admins", "teachers", 7]}
    groups = sso.idp_groups(info, "groups")
    assert {"lab-admins", "teachers"} <= groups
    assert sso.map_roles(groups, {"lab-admins"}, {"teachers"}) == (True, ["instructors"])
    assert sso.map_roles({"students"}, {"lab-admins"}, {"teachers"}) == (False, [])
    assert sso.idp_groups({"groups": "teachers"}, "groups") == {"teachers"}
    assert sso.idp_groups({}, "groups") == set()


def test_mode_selects_the_class():
    assert sso.authenticator_class({}) is BlabsAuthenticator
    assert sso.authenticator_class({"BLABS_AUTH": "local"}) is BlabsAuthenticator
    assert sso.authenticator_class({"BLABS_AUTH": "OIDC"}) is sso.BlabsOIDCAuthenticator
    with pytest.raises(BlabsConfigError, match="BLABS_AUTH='ldap'"):
        sso.authenticator_class({"BLABS_AUTH": "ldap"})


def test_oidc_config_resolution(monkeypatch):
    monkeypatch.setenv("BLABS_OIDC_ADMIN_GROUPS", "lab-admins, it ")
    monkeypatch.setenv("BLABS_OIDC_INSTRUCTOR_GROUPS", "teachers")
    monkeypatch.setenv("BLABS_OIDC_USERNAME_CLAIM", "oid")
    a = sso.BlabsOIDCAuthenticator()
    assert a.manage_groups is True
    assert a.username_claim == "oid"
    assert a.idp_admin_groups == {"lab-admins", "it"}
    assert a.idp_instructor_groups == {"teachers"}
    assert a.allow_all is True
    # The local pages are not registered under SSO: only oauthenticator's own.
    routes = [r[0] for r in a.get_handlers(None)]
    assert not any("change-password" in r or "accounts" in r for r in routes)
    monkeypatch.setenv("BLABS_OIDC_USERNAME_CLAIM", "name")
    with pytest.raises(Exception, match="stable identifier"):
        sso.BlabsOIDCAuthenticator().username_claim  # noqa: B018


async def test_oidc_auth_model_from_claims(monkeypatch):
    monkeypatch.setenv("BLABS_OIDC_ADMIN_GROUPS", "lab-admins")
    monkeypatch.setenv("BLABS_OIDC_INSTRUCTOR_GROUPS", "teachers")
    monkeypatch.setenv("BLABS_OIDC_ALLOWED_GROUPS", "students,teachers")
    a = sso.BlabsOIDCAuthenticator()
    assert a.allow_all is False

    async def model(info):
        m = {"name": a.user_info_to_username(info), "admin": None, "auth_state": {}}
        m["auth_state"][a.user_auth_state_key] = info
        m = await a.update_auth_model(m)
        m = await a._apply_managed_groups(m)
        return m, await a.check_allowed(m["name"], m)

    m, allowed = await model({"preferred_username": "t1", "groups": ["teachers"]})
    assert (m["name"], m["admin"], m["groups"], allowed) == ("t1", False, ["instructors"], True)
    m, allowed = await model({"preferred_username": "boss", "groups": ["lab-admins"]})
    assert (m["admin"], m["groups"], allowed) == (True, [], True)
    m, allowed = await model({"preferred_username": "x", "groups": ["visitors"]})
    assert (m["admin"], allowed) == (False, False)
