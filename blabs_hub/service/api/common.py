"""What the catalog API handlers share: JSON views of catalog rows, error helpers."""

import asyncio
import logging

from tornado import web

from ...catalog import Image, Template
from ..base import ApiError, APIHandler

log = logging.getLogger("blabs.service")

IMAGES = "custom:blabs:images"
TEMPLATES = "custom:blabs:templates"
SETTINGS = "custom:blabs:settings"


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
    "APIHandler",
    "IMAGES",
    "SETTINGS",
    "TEMPLATES",
    "image_json",
    "in_thread",
    "raise_first",
    "template_json",
    "web",
]
