"""What every catalog API handler shares: who is calling (resolved without blocking the
event loop), token callers exempt from XSRF, JSON views of catalog rows, error helpers."""

import asyncio
import logging

from jupyterhub.services.auth import UserNotAllowed
from tornado import web

from ...catalog import Image, Template
from ..base import ApiError, APIHandler

log = logging.getLogger("blabs.service")

IMAGES = "custom:blabs:images"
TEMPLATES = "custom:blabs:templates"
SETTINGS = "custom:blabs:settings"


class CatalogAPIHandler(APIHandler):
    """An API handler that resolves the caller asynchronously before the method runs.

    ``HubAuthenticated.get_current_user`` asks the hub synchronously (in a helper thread,
    blocking this loop while it waits) on a cache miss; resolving the user here with
    ``sync=False`` keeps uploads and other requests flowing meanwhile.
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
        tells here; a request with a bad token is refused as unauthenticated later.
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

    def json_object(self) -> dict:
        return self.json_body()


def raise_first(errors: list[dict]) -> None:
    """Answer a validation failure: 409 for a name already taken, else 400; all listed."""
    if not errors:
        return
    first = errors[0]
    status = 409 if first.get("conflict") else 400
    raise ApiError(
        status,
        first["message"],
        field=first["field"],
        errors=[{"field": e["field"], "message": e["message"]} for e in errors],
    )


def image_json(image: Image, offset: int | None = None, chunk_size: int | None = None) -> dict:
    data = {
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "error": image.error,
        "format": image.format,
        "source_format": image.source_format,
        "virtual_size": image.virtual_size,
        "actual_size": image.actual_size,
        "sha256": image.sha256,
        "uploaded_by": image.uploaded_by,
        "created_at": image.created_at,
        "progress": image.progress,
        "templates": sorted(t.slug for t in image.templates),
        "upload": None,
    }
    if image.status == "uploading" and image.upload_id:
        data["upload"] = {
            "id": image.upload_id,
            "offset": offset or 0,
            "size": image.declared_size,
            "chunk_size": chunk_size,
        }
    return data


def template_json(t: Template) -> dict:
    return {
        "slug": t.slug,
        "title": t.title,
        "description": t.description,
        "image_id": t.image_id,
        "image": t.image.name if t.image else None,
        "image_ready": bool(t.image and t.image.status == "ready"),
        "cpus": t.cpus,
        "memory_mib": t.memory_mib,
        "firmware": t.firmware,
        "disk_bus": t.disk_bus,
        "network": t.network,
        "guest_profile": t.guest_profile,
        "enabled": t.enabled,
        "max_session_minutes": t.max_session_minutes,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


async def in_thread(fn, *args):
    """Run a short blocking catalog call (a SQLite write may wait on a lock) off the loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


__all__ = [
    "ApiError",
    "CatalogAPIHandler",
    "IMAGES",
    "SETTINGS",
    "TEMPLATES",
    "image_json",
    "in_thread",
    "raise_first",
    "template_json",
    "web",
]
