"""What a valid template, settings change or upload request is: pure functions, no I/O.

Each ``validate_*`` takes the decoded JSON body (and what it must be checked against) and
returns ``(clean, errors)``: ``clean`` has the accepted values with Python types, ``errors``
is a list of ``{"field", "message"}`` in the order the fields were checked, so an API can
answer with the first one and list them all. JSON has no integer type that a string can
pass for: ``"4"`` for a number is an error naming the field, never a silent conversion.
"""

import re

from ..lab.spec import DISK_BUSES, FIRMWARES, GUEST_PROFILES, NETWORKS

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?$")
# Image names are shown and used on the command line; they never become file names.
IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,99}$")

CPUS = (1, 64)
MEMORY_MIB = (256, 512 * 1024)
MAX_SESSION_MINUTES = (1, 7 * 24 * 60)
SETTINGS_BOUNDS = {
    # field: (low, high, what the low end means)
    "max_concurrent_vms": (0, 10_000, "0 means no new labs start anywhere; running labs go on"),
    "per_user_vm_limit": (0, 100, "0 means no user may start a new lab; running labs go on"),
    "idle_timeout_minutes": (1, 7 * 24 * 60, "a lab idle this long is stopped"),
    "max_concurrent_starts": (1, 10_000, "labs starting at once; more wait in line"),
}

TEMPLATE_FIELDS = (
    "slug",
    "title",
    "description",
    "image_id",
    "cpus",
    "memory_mib",
    "firmware",
    "disk_bus",
    "network",
    "guest_profile",
    "enabled",
    "max_session_minutes",
)
TEMPLATE_DEFAULTS = {
    "description": "",
    "cpus": 2,
    "memory_mib": 4096,
    "firmware": "bios",
    "disk_bus": "sata",
    "network": "internet",
    "guest_profile": "windows",
    "enabled": True,
    "max_session_minutes": None,
}
REQUIRED = ("slug", "title", "image_id")


def _err(field: str, message: str) -> dict:
    return {"field": field, "message": message}


def _type_name(value) -> str:
    return {str: "a string", bool: "true/false", list: "a list", dict: "an object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def check_int(field: str, value, low: int, high: int, meaning: str = "") -> dict | None:
    """An error for anything but a whole number in [low, high] (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return _err(field, f"{field} must be a whole number, not {_type_name(value)}")
    if not low <= value <= high:
        extra = f" ({meaning})" if meaning else ""
        return _err(field, f"{field} must be between {low} and {high}{extra}, got {value}")
    return None


def _check_choice(field: str, value, choices) -> dict | None:
    if not isinstance(value, str) or value not in choices:
        return _err(field, f"{field} must be one of {', '.join(choices)}")
    return None


def validate_template(
    data: dict,
    images: dict[int, dict],
    existing_slugs: set[str],
    partial: bool = False,
) -> tuple[dict, list[dict]]:
    """Check a template body.

    ``images`` maps image id → ``{"name", "status"}`` (the image must exist and be ready);
    ``existing_slugs`` are the slugs other templates hold. ``partial`` is for updates: only
    the fields present are checked, and the slug may not change (launch links use it).
    """
    errors: list[dict] = []
    clean: dict = {}
    for key in data:
        if key not in TEMPLATE_FIELDS:
            errors.append(_err(key, f"unknown field {key!r}"))
    if not partial:
        for key in REQUIRED:
            if key not in data:
                errors.append(_err(key, f"{key} is required"))
    elif "slug" in data:
        errors.append(_err("slug", "the slug cannot change: launch links use it"))

    def has(key):
        return key in data and key not in {e["field"] for e in errors}

    if has("slug"):
        slug = data["slug"]
        if not isinstance(slug, str) or not SLUG.match(slug):
            errors.append(
                _err(
                    "slug",
                    "slug must be 1-30 lowercase letters, digits and dashes, starting and "
                    "ending with a letter or digit (it is part of launch links)",
                )
            )
        elif slug in existing_slugs:
            errors.append(
                {**_err("slug", f"a template with slug {slug!r} already exists"), "conflict": True}
            )
        else:
            clean["slug"] = slug
    if has("title"):
        title = data["title"]
        if not isinstance(title, str) or not title.strip() or len(title) > 200:
            errors.append(_err("title", "title must be text of 1 to 200 characters"))
        else:
            clean["title"] = title.strip()
    if has("description"):
        text = data["description"]
        if text is None:
            text = ""
        if not isinstance(text, str) or len(text) > 5000:
            errors.append(_err("description", "description must be text of at most 5000 chars"))
        else:
            clean["description"] = text
    if has("image_id"):
        image_id = data["image_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            errors.append(
                _err("image_id", f"image_id must be a whole number, not {_type_name(image_id)}")
            )
        elif image_id not in images:
            errors.append(_err("image_id", f"there is no image with id {image_id}"))
        elif images[image_id]["status"] != "ready":
            name = images[image_id]["name"]
            errors.append(
                _err("image_id", f"image {name!r} is {images[image_id]['status']}, not ready")
            )
        else:
            clean["image_id"] = image_id
    for key, (low, high) in (("cpus", CPUS), ("memory_mib", MEMORY_MIB)):
        if has(key):
            error = check_int(key, data[key], low, high)
            errors.append(error) if error else clean.__setitem__(key, data[key])
    for key, choices in (
        ("firmware", FIRMWARES),
        ("disk_bus", DISK_BUSES),
        ("network", NETWORKS),
        ("guest_profile", GUEST_PROFILES),
    ):
        if has(key):
            error = _check_choice(key, data[key], choices)
            errors.append(error) if error else clean.__setitem__(key, data[key])
    if has("enabled"):
        if not isinstance(data["enabled"], bool):
            errors.append(_err("enabled", "enabled must be true or false"))
        else:
            clean["enabled"] = data["enabled"]
    if has("max_session_minutes"):
        value = data["max_session_minutes"]
        error = (
            None if value is None else check_int("max_session_minutes", value, *MAX_SESSION_MINUTES)
        )
        errors.append(error) if error else clean.__setitem__("max_session_minutes", value)
    if not partial and not errors:
        clean = {**TEMPLATE_DEFAULTS, **clean}
    return clean, errors


def validate_settings(data: dict) -> tuple[dict, list[dict]]:
    """A partial update of the live settings; at least one field."""
    errors: list[dict] = []
    clean: dict = {}
    for key in data:
        if key not in SETTINGS_BOUNDS:
            errors.append(_err(key, f"unknown setting {key!r}"))
    for key, (low, high, meaning) in SETTINGS_BOUNDS.items():
        if key in data:
            error = check_int(key, data[key], low, high, meaning)
            errors.append(error) if error else clean.__setitem__(key, data[key])
    if not data:
        errors.append(_err("body", f"name at least one of {', '.join(SETTINGS_BOUNDS)}"))
    return clean, errors


def validate_upload(data: dict, max_size: int, existing_names: set[str]):
    """A new upload: a display name and the size the client will send."""
    errors: list[dict] = []
    clean: dict = {}
    for key in data:
        if key not in ("name", "size", "sha256"):
            errors.append(_err(key, f"unknown field {key!r}"))
    name = data.get("name")
    if not isinstance(name, str) or not IMAGE_NAME.match(name) or ".." in name:
        errors.append(
            _err(
                "name",
                "name must be 1-100 letters, digits, spaces and . _ ( ) + -, starting with a "
                "letter or digit, without '..' or '/'",
            )
        )
    elif name in existing_names:
        errors.append({**_err("name", f"an image named {name!r} already exists"), "conflict": True})
    else:
        clean["name"] = name
    size = data.get("size")
    if "size" not in data:
        errors.append(_err("size", "size is required (bytes the upload will send)"))
    elif isinstance(size, int) and not isinstance(size, bool) and size == 0:
        errors.append(_err("size", "the file is empty (0 bytes): nothing to upload"))
    else:
        error = check_int("size", size, 1, max_size, f"at most {max_size} bytes")
        errors.append(error) if error else clean.__setitem__("size", size)
    if "sha256" in data:
        digest = data["sha256"]
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            errors.append(_err("sha256", "sha256 must be 64 lowercase hex digits"))
        else:
            clean["sha256"] = digest
    return clean, errors
