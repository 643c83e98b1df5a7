"""Bretter Labs' authenticator (entry point ``blabs``) and the switch to single sign-on.

``BLABS_AUTH=local`` (the default) uses :class:`BlabsAuthenticator`: local accounts in the
hub's database. ``BLABS_AUTH=oidc`` uses :class:`~.sso.BlabsOIDCAuthenticator`, a
GenericOAuthenticator with a stable username claim and IdP groups mapped to admin and
instructor; the local password pages are then not registered at all.
"""

from .authenticator import AccountLocked, BlabsAuthenticator, PasswordChangeRequired
from .sso import authenticator_class

__all__ = ["AccountLocked", "BlabsAuthenticator", "PasswordChangeRequired", "authenticator_class"]
