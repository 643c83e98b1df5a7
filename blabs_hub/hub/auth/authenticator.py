"""``BlabsAuthenticator``: local accounts with argon2id hashes, forced change and lockout.

How the forced password change is enforced (see docs/authentication.md):

- ``authenticate()`` refuses a correct temporary password with :class:`PasswordChangeRequired`
  (a 403), so neither the login form nor ``POST /hub/api/users/{name}/tokens`` with a
  username and password ever yields a session or a token while the flag is set. Our login
  handler catches it and shows the change form; the login cookie is set only after the
  change.
- Credentials that exist anyway (a token minted by ``jupyterhub token``, by an admin, or
  before an admin reset the password) are refused by ``refresh_user()``: it returns False
  while the flag is set, and with ``auth_refresh_strict`` (always the behaviour before
  JupyterHub 6.1) the hub then treats every request of that user - cookie or token - as
  unauthenticated. Nothing is stripped, so nothing has to be restored: after the change
  the same tokens work again with the user's unchanged roles and groups.

Hub admins also get the ``blabs-admin`` role (JupyterHub's own ``admin`` role cannot be
extended): :func:`hubsync.sync_user` keeps it in step with the admin flag at login, at hub
start, when a user is added and at every auth refresh.
"""

import os
from datetime import timedelta

from jupyterhub.auth import Authenticator
from sqlalchemy.orm import object_session
from tornado import web
from traitlets import Bool, Integer, TraitError, Unicode, default, validate

from ...config import env_int, env_value
from . import hubsync, lockout, passwords, store

_PLAIN_LOGIN_ERROR = "Invalid username or password."


class PasswordChangeRequired(web.HTTPError):
    """The password was right but temporary: the owner must choose a new one first."""

    def __init__(self, username: str):
        super().__init__(
            403,
            "Your password is temporary: choose a new one to sign in.",
            reason="Password change required",
        )
        self.username = username


class AccountLocked(web.HTTPError):
    def __init__(self, username: str, until):
        super().__init__(403, lockout.lock_message(until), reason="Account locked")
        self.username = username
        self.until = until


class BlabsAuthenticator(Authenticator):
    """Local username/password accounts for Bretter Labs, stored in the hub's database."""

    # --- bootstrap ----------------------------------------------------------------------
    initial_admin_password = Unicode(
        help="""Password of the ``admin`` account created on the very first start (when the
        credentials table is empty). It is temporary either way: the first login must
        replace it. Default: ``$BLABS_INITIAL_ADMIN_PASSWORD`` (e.g. from a Kubernetes
        Secret) or ``admin``.""",
    ).tag(config=True)

    @default("initial_admin_password")
    def _default_initial_admin_password(self):
        return env_value("BLABS_INITIAL_ADMIN_PASSWORD", store.BOOTSTRAP_PASSWORD)

    db_url = Unicode(
        help="""Database for the credentials table. Default: the hub's own ``db_url``
        (the table is ``blabs_credentials``; its migrations are versioned in
        ``blabs_auth_alembic_version``). Only change this if you know why.""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self):
        return getattr(self.parent, "db_url", "") or "sqlite:///jupyterhub.sqlite"

    # --- password policy ------------------------------------------------------------------
    password_min_length = Integer(
        help="""Shortest password a user may choose. Default:
        ``$BLABS_PASSWORD_MIN_LENGTH`` or 10.""",
    ).tag(config=True)

    @default("password_min_length")
    def _default_password_min_length(self):
        return env_int("BLABS_PASSWORD_MIN_LENGTH", 10)

    @validate("password_min_length")
    def _validate_password_min_length(self, proposal):
        value = proposal["value"]
        if not 6 <= value <= 256:
            raise TraitError(
                f"BLABS_PASSWORD_MIN_LENGTH / BlabsAuthenticator.password_min_length must be "
                f"between 6 and 256, got {value}"
            )
        return value

    password_max_length = Integer(
        1024,
        help="""Longest password accepted, in characters. Longer input is refused before
        hashing (as a policy error for new passwords, as a wrong password at login) so that
        huge posts cannot burn the hub's CPU.""",
    ).tag(config=True)

    password_forbid_common = Bool(
        True,
        help="Refuse new passwords from a short list of the most guessed ones.",
    ).tag(config=True)

    argon2_time_cost = Integer(
        0,
        help="""argon2id passes; 0 keeps argon2-cffi's default. Raising it (or the memory
        cost) upgrades existing hashes at each user's next login.""",
    ).tag(config=True)

    argon2_memory_cost = Integer(
        0,
        help="argon2id memory in KiB; 0 keeps argon2-cffi's default (64 MiB).",
    ).tag(config=True)

    # --- lockout --------------------------------------------------------------------------
    lockout_threshold = Integer(
        help="""Failed logins within ``lockout_window_minutes`` that lock an account.
        Default: ``$BLABS_LOCKOUT_THRESHOLD`` or 5.""",
    ).tag(config=True)

    @default("lockout_threshold")
    def _default_lockout_threshold(self):
        return env_int("BLABS_LOCKOUT_THRESHOLD", 5)

    lockout_window_minutes = Integer(
        help="""Minutes, from the first failed login, in which failures are counted.
        Default: ``$BLABS_LOCKOUT_WINDOW_MINUTES`` or 15.""",
    ).tag(config=True)

    @default("lockout_window_minutes")
    def _default_lockout_window_minutes(self):
        return env_int("BLABS_LOCKOUT_WINDOW_MINUTES", 15)

    lockout_minutes = Integer(
        help="""How long a locked account stays locked (an admin can unlock it sooner on
        the Accounts page). Default: ``$BLABS_LOCKOUT_MINUTES`` or 15.""",
    ).tag(config=True)

    @default("lockout_minutes")
    def _default_lockout_minutes(self):
        return env_int("BLABS_LOCKOUT_MINUTES", 15)

    @validate("lockout_threshold", "lockout_window_minutes", "lockout_minutes")
    def _validate_lockout(self, proposal):
        value = proposal["value"]
        if not 1 <= value <= 100_000:
            name = proposal["trait"].name
            raise TraitError(
                f"BLABS_{name.upper()} / BlabsAuthenticator.{name} must be between 1 and "
                f"100000, got {value}"
            )
        return value

    # --- JupyterHub behaviour we rely on --------------------------------------------------
    @default("allow_all")
    def _default_allow_all(self):
        # Having a password in our table is what allows a login; there is no outside
        # directory to filter against.
        return True

    auth_refresh_strict = Bool(
        True,
        help="""Refuse token requests of users whose auth cannot be refreshed. Must stay
        True: it is how tokens of a user who must change their password are refused
        (JupyterHub >= 6.1 defaults it to False; before 6.1 it was always strict).""",
    ).tag(config=True)

    @default("refresh_pre_spawn")
    def _default_refresh_pre_spawn(self):
        return True

    @validate("auth_refresh_age")
    def _validate_auth_refresh_age(self, proposal):
        if not proposal["value"]:
            raise TraitError(
                "BlabsAuthenticator.auth_refresh_age must be > 0: the forced password change "
                "is enforced on tokens through refresh_user()"
            )
        return proposal["value"]

    # --- derived ------------------------------------------------------------------------
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hasher = passwords.make_hasher(self.argon2_time_cost, self.argon2_memory_cost)
        self._bootstrapped = False

    @property
    def password_policy(self) -> passwords.PasswordPolicy:
        return passwords.PasswordPolicy(
            min_length=self.password_min_length,
            max_length=self.password_max_length,
            forbid_common=self.password_forbid_common,
        )

    @property
    def lockout_policy(self) -> lockout.LockoutPolicy:
        return lockout.LockoutPolicy(
            threshold=self.lockout_threshold,
            window=timedelta(minutes=self.lockout_window_minutes),
            duration=timedelta(minutes=self.lockout_minutes),
        )

    # --- start-up -----------------------------------------------------------------------
    def check_allow_config(self):
        """Called once by the hub before it loads users: migrate our table and create the
        bootstrap admin on a first start."""
        super().check_allow_config()
        self.bootstrap()

    def bootstrap(self):
        if self._bootstrapped:
            return
        created = store.migrate_and_bootstrap(self.db_url, self.initial_admin_password, self.hasher)
        if created:
            source = (
                "$BLABS_INITIAL_ADMIN_PASSWORD"
                if os.environ.get("BLABS_INITIAL_ADMIN_PASSWORD", "").strip()
                or self.initial_admin_password != store.BOOTSTRAP_PASSWORD
                else "the default 'admin'"
            )
            self.log.warning(
                "Created the bootstrap account %r with %s as its temporary password; "
                "it must be changed at the first login.",
                store.BOOTSTRAP_ADMIN,
                source,
            )
        self._bootstrapped = True

    # --- the Authenticator API ----------------------------------------------------------
    async def check_password(self, db, username: str, password: str) -> store.LoginResult:
        """One login attempt against the credentials table, counted for lockout, with this
        authenticator's hasher, lockout policy and length limit (sign-in and password
        change both go through here)."""
        return await store.check_login(
            db,
            username,
            password,
            hasher=self.hasher,
            policy=self.lockout_policy,
            max_length=self.password_max_length,
        )

    async def authenticate(self, handler, data):
        """Username + password → username; raises 403s for locked and temporary passwords.

        Also the path of ``POST /hub/api/users/{name}/tokens`` with
        ``{"auth": {"username": ..., "password": ...}}``.
        """
        if not isinstance(data, dict):
            return None
        raw_name = data.get("username")
        password = data.get("password")
        if not isinstance(raw_name, str) or not isinstance(password, str):
            return None
        username = self.normalize_username(raw_name.strip())
        result = await self.check_password(handler.db, username, password)
        shown = username if len(username) <= 64 else f"{username[:32]}...({len(username)} chars)"
        ip = handler.request.remote_ip if handler is not None else "-"
        if result.outcome is store.Outcome.LOCKED:
            self.log.warning(
                "Refused login for %r from %s: account locked until %s",
                shown,
                ip,
                result.locked_until.isoformat(),
            )
            raise AccountLocked(username, result.locked_until)
        if result.outcome is store.Outcome.INVALID:
            self.log.warning("Failed login for %r from %s", shown, ip)
            return None
        if result.outcome is store.Outcome.MUST_CHANGE:
            self.log.info("Login for %r refused until the password is changed", shown)
            raise PasswordChangeRequired(username)
        return {"name": username, "admin": True if result.credential.grant_admin else None}

    async def refresh_user(self, user, handler=None):
        """False (no access, not even with tokens) while the password is temporary."""
        cred = store.get(user.db, user.name)
        if cred is not None and cred.must_change_password:
            return False
        hubsync.sync_user(user.db, user.orm_user, cred)
        return True

    def add_user(self, user):
        """Every hub user gets a credentials row: users added in the admin panel start
        without a password until an admin issues a temporary one (Accounts page)."""
        super().add_user(user)
        db, orm_user = _session_and_row(user)
        cred = store.ensure_row(db, user.name)
        hubsync.sync_user(db, orm_user, cred)

    def delete_user(self, user):
        super().delete_user(user)
        store.delete(_session_and_row(user)[0], user.name)

    def get_handlers(self, app):
        from . import handlers

        self.bootstrap()
        return handlers.routes()


def _session_and_row(user):
    """The hub's session and ORM row of ``user``: the hub passes its ``User`` wrapper from
    handlers but the bare ORM row at start (``admin_users``, ``allowed_users``)."""
    orm_user = getattr(user, "orm_user", user)
    return object_session(orm_user), orm_user
