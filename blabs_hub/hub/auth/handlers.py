"""The authenticator's pages: login, change password, and the admins' Accounts page.

Every handler is a JupyterHub ``BaseHandler``, so POSTs keep the hub's XSRF check and
pages render through the hub's Jinja environment (autoescaped, ``page.html`` layout).
Nothing changes state on GET. The password change also has a JSON form for API clients
(:class:`PasswordAPIHandler`), with the same rules, decided once in :func:`change_password`.
"""

import json
from dataclasses import dataclass

from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import maybe_future
from tornado import web

from . import hubsync, passwords, store
from .authenticator import AccountLocked, PasswordChangeRequired

CHANGE_URL = "auth/change-password"
CHANGE_API_URL = "auth/api/password"
ACCOUNTS_URL = "auth/accounts"


def routes():
    return [
        (r"/login", BlabsLoginHandler),
        (rf"/{CHANGE_URL}", ChangePasswordHandler),
        (rf"/{CHANGE_API_URL}", PasswordAPIHandler),
        (rf"/{ACCOUNTS_URL}", AccountsHandler),
    ]


@dataclass(frozen=True)
class PasswordChange:
    """What became of a password change: 200 done, 400 new password refused (``field``
    says which), 403 wrong current password or locked account."""

    status: int
    message: str
    field: str | None = None
    forced: bool = False


async def change_password(handler, username: str, old: str, new: str, repeat: str):
    """Check the current password and the new one, and store it; the one place that does.

    Every refusal is logged with the (truncated) username; the answer never says whether an
    account exists.
    """
    auth = handler.authenticator
    shown = username[:64]
    result = await auth.check_password(handler.db, username, old)
    if result.outcome is store.Outcome.LOCKED:
        auth.log.warning("Refused password change for %r: account locked", shown)
        message = AccountLocked(username, result.locked_until).log_message
        return PasswordChange(403, message, "old_password")
    if result.outcome is store.Outcome.INVALID:
        auth.log.warning(
            "Failed password change for %r from %s: wrong current password",
            shown,
            handler.request.remote_ip,
        )
        return PasswordChange(403, "Invalid username or current password.", "old_password")
    forced = result.outcome is store.Outcome.MUST_CHANGE
    problems = passwords.policy_problems(
        new, username=username, policy=auth.password_policy, old=old
    )
    if new != repeat:
        problems.insert(0, "The two new passwords do not match.")
    if problems:
        field = "new_password_repeat" if new != repeat else "new_password"
        return PasswordChange(400, " ".join(problems), field, forced)
    await store.set_password(
        handler.db, result.credential, new, hasher=auth.hasher, must_change=False
    )
    auth.log.info("Password changed for %r%s", username, " (was temporary)" if forced else "")
    return PasswordChange(200, "Password changed.", forced=forced)


def _forget_refresh(handler, orm_user) -> None:
    """Make the hub ask ``refresh_user`` again at this user's next request, so a password
    reset takes effect on their open sessions and tokens at once."""
    if orm_user is not None and orm_user in handler.users:
        handler.users[orm_user]._auth_refreshed = None


class _AuthPage:
    """Shared rendering of the change-password form."""

    async def render_change(self, *, username="", message="", status=200, forced=False):
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        html = await self.render_template(
            "auth-change-password.html",
            username=username,
            message=message,
            forced=forced,
            fixed_username=self.current_user is not None,
            next=self.get_argument("next", ""),
            change_url=self.hub.base_url + CHANGE_URL,
            policy=self.authenticator.password_policy,
            xsrf=self.xsrf_token.decode("ascii"),
        )
        self.finish(html)


class BlabsLoginHandler(_AuthPage, LoginHandler):
    """JupyterHub's login page, plus: a temporary password leads to the change form, a
    locked account gets a message saying until when."""

    async def post(self):
        username = self.get_body_argument("username", "", strip=True)
        data = {"username": username, "password": self.get_body_argument("password", "")}
        try:
            user = await self.login_user(data)
        except PasswordChangeRequired as e:
            await self.render_change(
                username=e.username, message=e.log_message, status=403, forced=True
            )
            return
        except AccountLocked as e:
            self.set_status(403)
            self.finish(await self._render(login_error=e.log_message, username=username[:64]))
            return
        if user is None:
            self.set_status(403)
            self.finish(
                await self._render(login_error="Invalid username or password.", username="")
            )
            return
        self._jupyterhub_user = user
        cred = store.get(self.db, user.name)
        hubsync.sync_user(self.db, user.orm_user, cred)
        self.redirect(self.get_next_url(user, default=self.hub.base_url + "home"))


class ChangePasswordHandler(_AuthPage, BaseHandler):
    """Old + new + repeat. Works without a session (that is the point of a forced
    change) and for signed-in users; in both cases the current password is the proof."""

    async def get(self):
        user = self.current_user
        await self.render_change(username=user.name if user else self.get_argument("username", ""))

    async def post(self):
        auth = self.authenticator
        user = self.current_user
        if user is not None:
            username = user.name
        else:
            username = auth.normalize_username(self.get_body_argument("username", "", strip=True))
        new = self.get_body_argument("new_password", "")
        change = await change_password(
            self,
            username,
            self.get_body_argument("old_password", ""),
            new,
            self.get_body_argument("new_password_repeat", ""),
        )
        if change.status != 200:
            shown = username[:64] if change.status == 403 else username
            await self.render_change(
                username=shown, message=change.message, status=change.status, forced=change.forced
            )
            return
        user = await self.login_user({"username": username, "password": new})
        if user is None:  # e.g. blocked by an allow/block list
            raise web.HTTPError(403, "Password changed, but this account may not sign in.")
        self._jupyterhub_user = user
        hubsync.sync_user(self.db, user.orm_user, store.get(self.db, user.name))
        _forget_refresh(self, user.orm_user)
        self.redirect(self.get_next_url(user, default=self.hub.base_url + "home"))


class PasswordAPIHandler(APIHandler):
    """``POST /hub/auth/api/password`` with JSON ``{"username", "old_password",
    "new_password"}``: the change-password form for scripts, including the first change of
    a temporary password (no token exists yet then; the current password is the proof).
    A request with a token changes the token owner's password; ``username`` is then
    optional and must match. Answers JSON: 200, or 400/403 with ``field`` and ``message``.
    """

    def _refuse(self, status: int, message: str, field: str | None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status, "message": message, "field": field}))

    async def post(self):
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            return self._refuse(400, "The body must be JSON.", None)
        if not isinstance(body, dict):
            return self._refuse(400, "The body must be a JSON object.", None)
        values = {}
        for field in ("username", "old_password", "new_password"):
            value = body.get(field, "")
            if not isinstance(value, str):
                return self._refuse(400, f"{field} must be a string.", field)
            values[field] = value
        auth = self.authenticator
        username = auth.normalize_username(values["username"].strip())
        if self.current_user is not None:
            if username and username != self.current_user.name:
                message = "A token changes only its own user's password."
                return self._refuse(403, message, "username")
            username = self.current_user.name
        elif not username:
            return self._refuse(400, "username is required without a token.", "username")
        new = values["new_password"]
        change = await change_password(self, username, values["old_password"], new, new)
        if change.status != 200:
            return self._refuse(change.status, change.message, change.field)
        hub_user = self.find_user(username)
        if hub_user is not None:
            hubsync.sync_user(self.db, hub_user.orm_user, store.get(self.db, username))
            _forget_refresh(self, hub_user.orm_user)
        self.finish({"username": username, "changed": True, "was_temporary": change.forced})


class AccountsHandler(BaseHandler):
    """Admins: create a local account, issue a temporary password, unlock.

    A temporary password is shown exactly once, in the answer to the POST that made it
    (``Cache-Control: no-store``); only its hash is stored.
    """

    async def _page(self, *, message="", error="", issued=None, status=200):
        from jupyterhub import orm

        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        creds = store.all_credentials(self.db)
        now = store.utcnow()
        rows = []
        for u in self.db.query(orm.User).order_by(orm.User.name):
            cred = creds.get(u.name)
            rows.append(_row(u.name, u.admin, cred, now))
        html = await self.render_template(
            "auth-accounts.html",
            rows=rows,
            message=message,
            error=error,
            issued=issued,
            accounts_url=self.hub.base_url + ACCOUNTS_URL,
            xsrf=self.xsrf_token.decode("ascii"),
        )
        self.finish(html)

    @web.authenticated
    @needs_scope("admin:users")
    async def get(self):
        await self._page()

    @web.authenticated
    @needs_scope("admin:users")
    async def post(self):
        from jupyterhub import orm

        action = self.get_body_argument("action", "")
        raw = self.get_body_argument("username", "", strip=True)
        name = self.authenticator.normalize_username(raw)
        if action not in {"create", "reset", "unlock"}:
            return await self._page(error="Unknown action.", status=400)
        if not name or not self.authenticator.validate_username(name):
            return await self._page(error=f"Invalid username: {raw[:64]!r}.", status=400)
        orm_user = orm.User.find(self.db, name)
        me = self.current_user.name

        if action == "create":
            if orm_user is not None:
                return await self._page(
                    error=f"User {name} already exists: use 'Issue temporary password'.",
                    status=409,
                )
            user = self.user_from_username(name)
            await maybe_future(self.authenticator.add_user(user))
            orm_user = user.orm_user
        elif orm_user is None and store.get(self.db, name) is None:
            return await self._page(error=f"No such user: {name}.", status=404)

        if action == "unlock":
            cred = store.ensure_row(self.db, name)
            store.unlock(self.db, cred)
            self.log.info("%s unlocked the account %r", me, name)
            return await self._page(message=f"Unlocked {name}.")

        if action == "reset" and name == me:
            return await self._page(
                error="Change your own password on the Change password page.", status=400
            )
        temp = passwords.temporary_password()
        cred = store.ensure_row(self.db, name)
        await store.set_password(
            self.db, cred, temp, hasher=self.authenticator.hasher, must_change=True
        )
        _forget_refresh(self, orm_user)
        verb = "created the account" if action == "create" else "issued a temporary password for"
        self.log.info("%s %s %r", me, verb, name)
        await self._page(
            message=f"{'Created' if action == 'create' else 'Reset'} {name}.",
            issued={"username": name, "password": temp},
            status=201 if action == "create" else 200,
        )


def _row(name, admin, cred, now) -> dict:
    from . import lockout

    if cred is None or not cred.password_hash:
        state = "no password yet"
    elif cred.must_change_password:
        state = "temporary password"
    else:
        state = "active"
    until = lockout.locked_until(cred.counters, now) if cred is not None else None
    return {
        "name": name,
        "admin": bool(admin),
        "state": state,
        "failed": cred.failed_count if cred is not None else 0,
        "locked_until": f"{until:%Y-%m-%d %H:%M} UTC" if until else "",
    }
