"""Request handlers' common ground: hub authentication, scopes, JSON errors, pages."""

import json
from datetime import datetime
from http import HTTPStatus
from urllib.parse import urlparse

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthenticated, UserNotAllowed
from tornado import web

from ..resources import hub_templates_dir, templates_dir


def make_jinja_env() -> Environment:
    """Our templates first; JupyterHub's own as the fallback, so ours extend ``page.html``.

    JupyterHub's templates are also reachable as ``hub/<name>`` for pages that override
    one of them and still need the original.
    """
    hub = FileSystemLoader(str(hub_templates_dir()))
    loader = ChoiceLoader([FileSystemLoader(str(templates_dir())), hub, PrefixLoader({"hub": hub})])
    return Environment(loader=loader, autoescape=select_autoescape(default=True))


class _TemplateUser:
    """The few user attributes JupyterHub's ``page.html`` reads."""

    def __init__(self, model: dict):
        self.name = model["name"]
        self.json_escaped_name = json.dumps(model["name"])[1:-1]
        self.admin = bool(model.get("admin"))


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """A handler that knows who is calling (through the hub) and what they may do."""

    @property
    def catalog(self):
        return self.settings["catalog"]

    @property
    def hub_prefix(self) -> str:
        """The hub's URL prefix, e.g. ``/hub/``, for links and static files."""
        return self.settings["hub_prefix"]

    @property
    def service_prefix(self) -> str:
        return self.settings["service_prefix"]

    @property
    def scopes(self) -> set[str]:
        user = self.current_user
        return set(user.get("scopes", [])) if user else set()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def require_scope(self, scope: str) -> None:
        if not self.has_scope(scope):
            raise web.HTTPError(403, f"this needs the permission {scope}")

    # --- pages -----------------------------------------------------------------------------

    def template_namespace(self) -> dict:
        user = self.current_user
        hub = self.hub_prefix
        return {
            "base_url": hub,
            "prefix": urlparse(hub).path.rsplit("hub/", 1)[0] or "/",
            "service_prefix": self.service_prefix,
            "user": _TemplateUser(user) if user else None,
            "scopes": self.scopes,
            "blabs_scopes": sorted(s for s in self.scopes if s.startswith("custom:blabs:")),
            "parsed_scopes": self.scopes,
            "login_url": f"{hub}login",
            "logout_url": f"{hub}logout",
            "static_url": lambda path, include_version=True: f"{hub}static/{path}",
            "version_hash": "",
            "services": [],
            "xsrf": self.xsrf_token.decode("ascii"),
            "xsrf_form_html": self.xsrf_form_html,
            "announcement": None,
            # page.html asks the hub's spawner about its options form; we are not the hub.
            "no_spawner_check": True,
        }

    def render_template(self, name: str, **ns) -> None:
        template = self.settings["jinja_env"].get_template(name)
        self.finish(template.render(**{**self.template_namespace(), **ns}))

    def write_error(self, status_code: int, **kwargs) -> None:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        try:
            self.render_template("blabs-error.html", status_code=status_code, message=message)
        except Exception:
            self.finish(f"{status_code}: {message}")


class APIHandler(BaseHandler):
    """JSON in, JSON out; errors are JSON with the offending field named.

    The caller is resolved before the method runs, asynchronously: ``HubAuthenticated``'s
    own lookup asks the hub synchronously on a cache miss, which would stall uploads and
    every other request meanwhile.
    """

    async def prepare(self):
        await self.resolve_user()

    async def resolve_user(self):
        if hasattr(self, "_hub_auth_user_cache"):
            return self._hub_auth_user_cache
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            self._hub_auth_user_cache = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            self._hub_auth_user_cache = None
        return self._hub_auth_user_cache

    def check_xsrf_cookie(self):
        """Requests that carry a hub token are not forgeable by another site: no XSRF check.

        Tornado checks XSRF before ``prepare`` resolves the token, so the header is what
        tells here; a request with a bad token is refused as unauthenticated later (a token
        in the header is used instead of any cookie, never beside it).
        """
        auth = self.request.headers.get("Authorization", "")
        if auth.lower().startswith(("token ", "bearer ")):
            return
        return super().check_xsrf_cookie()

    def require_user(self) -> dict:
        user = self.current_user
        if not user:
            raise ApiError(403, "sign in, or send a hub token: Authorization: token <token>")
        return user

    def require_scope(self, *scopes: str) -> dict:
        """The caller, if they hold one of ``scopes``; else 403 naming the permission."""
        user = self.require_user()
        if not any(self.has_scope(s) for s in scopes):
            raise ApiError(403, f"this needs the permission {' or '.join(scopes)}")
        return user

    def get_login_url(self):
        # API clients are never redirected to a login page: they get a 403.
        raise web.HTTPError(403, "sign in, or send a hub token: Authorization: token <token>")

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def write_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, default=_json_default))

    def json_body(self) -> dict:
        """The request body as a JSON object, or a 400 that says what is wrong with it."""
        try:
            data = json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return data

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body = {"status": status_code, "message": HTTPStatus(status_code).phrase}
        if isinstance(exc, ApiError):
            body.update(exc.body())
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            body["message"] = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))


class ApiError(web.HTTPError):
    """A 4xx with a message for people and, where one field is at fault, its name."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra):
        super().__init__(status, message.replace("%", "%%"))
        self.message = message
        self.field = field
        self.extra = extra

    def body(self) -> dict:
        body = {"message": self.message, **self.extra}
        if self.field:
            body["field"] = self.field
        return body


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")
