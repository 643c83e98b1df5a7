"""Single sign-on: ``BLABS_AUTH=oidc`` selects an OpenID Connect provider instead of local
passwords (Keycloak, Azure AD / Entra ID, Google and the like, through oauthenticator's
GenericOAuthenticator).

Two rules the pure functions below enforce, because getting them wrong silently hands one
person's labs to another:

- The hub username comes from a *stable, unique* claim: ``preferred_username``, ``sub``,
  ``oid`` or ``upn``; ``email`` only when the provider marks it verified. Never a display
  name (``name``, ``given_name``), which people share and may edit.
- Roles come from the provider's groups claim: members of the configured admin groups
  become hub admins (and get ``blabs-admin``), members of the instructor groups are put in
  the hub group ``instructors`` (bound to the ``instructor`` role). Everyone else is a
  student. The provider is the source of truth: memberships are re-applied at every login.
"""

import os
from collections.abc import Iterable, Mapping

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler
from traitlets import Set, TraitError, Unicode, default, validate

from ...config import BlabsConfigError, env_value
from ..rbac import INSTRUCTORS_GROUP
from . import hubsync

STABLE_CLAIMS = ("preferred_username", "sub", "oid", "upn", "email")
MODES = ("local", "oidc")


def username_from_claims(user_info: Mapping, claim: str) -> str:
    """The hub username from ``claim``, refusing unstable or unverified values."""
    if claim not in STABLE_CLAIMS:
        raise ValueError(
            f"username claim {claim!r} is not a stable identifier; use one of "
            f"{', '.join(STABLE_CLAIMS)}"
        )
    value = user_info.get(claim)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the identity provider sent no {claim!r} claim")
    if claim == "email" and user_info.get("email_verified") is not True:
        raise ValueError("the identity provider did not mark this email address as verified")
    return value.strip()


def idp_groups(user_info: Mapping, groups_claim: str) -> set[str]:
    """Group names from ``groups_claim`` (a list, or one string); Keycloak's full paths
    (``/staff/admins``) also match by their last part."""
    raw = user_info.get(groups_claim) or []
    if isinstance(raw, str):
        raw = [raw]
    groups = set()
    for g in raw:
        if isinstance(g, str) and g:
            groups.add(g)
            if "/" in g:
                groups.add(g.rstrip("/").rsplit("/", 1)[-1])
    return groups


def map_roles(
    groups: set[str], admin_groups: Iterable[str], instructor_groups: Iterable[str]
) -> tuple[bool, list[str]]:
    """(is hub admin, hub groups) for a user in the provider's ``groups``."""
    admin = bool(groups & set(admin_groups))
    hub_groups = [INSTRUCTORS_GROUP] if groups & set(instructor_groups) else []
    return admin, hub_groups


def _env_set(name: str) -> set[str]:
    return {g.strip() for g in os.environ.get(name, "").split(",") if g.strip()}


class BlabsOIDCCallbackHandler(OAuthCallbackHandler):
    """oauthenticator's callback, plus ``blabs-admin`` in step with the admin flag the
    provider's groups just set (``add_user`` runs before the flag is applied)."""

    async def login_user(self, data=None):
        user = await super().login_user(data)
        if user is not None:
            hubsync.sync_user(self.db, user.orm_user, None)
        return user


class BlabsOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator with Bretter Labs' username and role rules.

    Provider endpoints and the client come from GenericOAuthenticator's own settings
    (``OAUTH2_AUTHORIZE_URL``, ``OAUTH2_TOKEN_URL``, ``OAUTH2_USERDATA_URL``,
    ``OAUTH_CLIENT_ID``, ``OAUTH_CLIENT_SECRET``, ``OAUTH_CALLBACK_URL``, or the traits).
    """

    callback_handler = BlabsOIDCCallbackHandler

    @default("manage_groups")
    def _default_manage_groups(self):
        return True

    @default("scope")
    def _default_scope(self):
        return ["openid", "profile", "email"]

    @default("login_service")
    def _default_login_service(self):
        return env_value("BLABS_OIDC_LOGIN_SERVICE", "single sign-on")

    @default("username_claim")
    def _default_username_claim(self):
        # traitlets does not run @validate on defaults: check the environment value here.
        return self._check_claim(env_value("BLABS_OIDC_USERNAME_CLAIM", "preferred_username"))

    @validate("username_claim")
    def _validate_username_claim(self, proposal):
        return self._check_claim(proposal["value"])

    @staticmethod
    def _check_claim(value):
        if value not in STABLE_CLAIMS:
            raise TraitError(
                f"BLABS_OIDC_USERNAME_CLAIM / username_claim must be one of "
                f"{', '.join(STABLE_CLAIMS)} (a stable identifier), got {value!r}"
            )
        return value

    groups_claim = Unicode(
        help="""Claim of the userinfo answer that lists the user's groups (Keycloak: add a
        "groups" mapper; Azure AD: ``groups`` with group object ids). Default:
        ``$BLABS_OIDC_GROUPS_CLAIM`` or ``groups``.""",
    ).tag(config=True)

    @default("groups_claim")
    def _default_groups_claim(self):
        return env_value("BLABS_OIDC_GROUPS_CLAIM", "groups")

    idp_admin_groups = Set(
        Unicode(),
        help="""Provider groups whose members are hub admins. Default:
        ``$BLABS_OIDC_ADMIN_GROUPS`` (comma-separated).""",
    ).tag(config=True)

    @default("idp_admin_groups")
    def _default_idp_admin_groups(self):
        return _env_set("BLABS_OIDC_ADMIN_GROUPS")

    idp_instructor_groups = Set(
        Unicode(),
        help="""Provider groups whose members are instructors (hub group ``instructors``).
        Default: ``$BLABS_OIDC_INSTRUCTOR_GROUPS`` (comma-separated).""",
    ).tag(config=True)

    @default("idp_instructor_groups")
    def _default_idp_instructor_groups(self):
        return _env_set("BLABS_OIDC_INSTRUCTOR_GROUPS")

    idp_allowed_groups = Set(
        Unicode(),
        help="""If set, only members of these provider groups (and admins) may sign in;
        if empty, everyone the provider authenticates may. Default:
        ``$BLABS_OIDC_ALLOWED_GROUPS`` (comma-separated).""",
    ).tag(config=True)

    @default("idp_allowed_groups")
    def _default_idp_allowed_groups(self):
        return _env_set("BLABS_OIDC_ALLOWED_GROUPS")

    @default("allow_all")
    def _default_allow_all(self):
        return not self.idp_allowed_groups

    def _user_info(self, auth_state) -> Mapping:
        return (auth_state or {}).get(self.user_auth_state_key) or {}

    def user_info_to_username(self, user_info):
        try:
            return username_from_claims(user_info, self.username_claim)
        except ValueError as e:
            from tornado import web

            self.log.warning("Refused single sign-on: %s", e)
            raise web.HTTPError(403, f"Sign-in refused: {e}.") from None

    async def get_user_groups(self, auth_state):
        groups = idp_groups(self._user_info(auth_state), self.groups_claim)
        return set(map_roles(groups, self.idp_admin_groups, self.idp_instructor_groups)[1])

    async def update_auth_model(self, auth_model):
        groups = idp_groups(self._user_info(auth_model.get("auth_state")), self.groups_claim)
        admin, _ = map_roles(groups, self.idp_admin_groups, self.idp_instructor_groups)
        if admin:
            auth_model["admin"] = True
        elif self.idp_admin_groups and not auth_model.get("admin"):
            auth_model["admin"] = False  # the provider revoked it
        auth_model["blabs_idp_groups"] = sorted(groups)
        return auth_model

    async def check_allowed(self, username, auth_model):
        if auth_model and self.idp_allowed_groups:
            if auth_model.get("admin"):
                return True
            return bool(set(auth_model.get("blabs_idp_groups", [])) & self.idp_allowed_groups)
        return await super().check_allowed(username, auth_model)

    def add_user(self, user):
        super().add_user(user)
        hubsync.sync_user(user.db, user.orm_user, None)

    async def refresh_user(self, user, handler=None, **kwargs):
        result = await super().refresh_user(user, handler, **kwargs)
        hubsync.sync_user(user.db, user.orm_user, None)
        return result


def auth_mode(env: Mapping | None = None) -> str:
    """``local`` or ``oidc`` from ``BLABS_AUTH``; anything else is a configuration error."""
    env = os.environ if env is None else env
    mode = (env.get("BLABS_AUTH") or "local").strip().lower()
    if mode not in MODES:
        raise BlabsConfigError(f"BLABS_AUTH={mode!r} must be one of {', '.join(MODES)}")
    return mode


def authenticator_class(env: Mapping | None = None) -> type:
    """The authenticator class for ``JupyterHub.authenticator_class``, by ``BLABS_AUTH``."""
    if auth_mode(env) == "oidc":
        return BlabsOIDCAuthenticator
    from .authenticator import BlabsAuthenticator

    return BlabsAuthenticator
