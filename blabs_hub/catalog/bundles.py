"""Course bundles: a set of templates as one YAML file, moved between hubs. Pure functions.

A bundle names each template's image by sha256 (what identifies the bytes) and by name
(what people recognise); it never carries image files, image ids, secrets or who made
what. Import is all or nothing: the whole file is checked (:func:`check_bundle`), every
image resolved (:func:`resolve_images`) and every template validated with the catalog's
own rules before the first row is written; a bad field is reported with its path
(``templates[2].cpus``), missing images are listed instead of half-creating templates.
"""

import re

import yaml

from .rules import TEMPLATE_DEFAULTS, TEMPLATE_FIELDS, validate_template

KIND = "blabs-bundle"
VERSION = 1
TOP_KEYS = {"kind": str, "version": int, "exported_at": str, "source": str, "templates": list}
IMAGE_KEYS = {"name": str, "sha256": str}
EXPORTED_FIELDS = [f for f in TEMPLATE_FIELDS if f != "image_id"]
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def export_bundle(templates: list[dict], exported_at: str, source: str = "") -> dict:
    """``templates`` as ``template_json`` rows plus ``image_sha256`` → the bundle document."""
    items = []
    for t in sorted(templates, key=lambda t: t["slug"]):
        item = {key: t[key] for key in EXPORTED_FIELDS if key in t}
        item["image"] = {"name": t["image"], "sha256": t["image_sha256"]}
        items.append(item)
    doc = {"kind": KIND, "version": VERSION, "exported_at": exported_at}
    if source:
        doc["source"] = source
    doc["templates"] = items
    return doc


def dump_bundle(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _err(path: str, message: str) -> dict:
    return {"field": path, "message": f"{path}: {message}"}


def _kind(value) -> str:
    return {
        str: "text",
        bool: "true/false",
        int: "a number",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), "null" if value is None else type(value).__name__)


def parse_bundle(text: str | bytes) -> tuple[dict | None, list[dict]]:
    """YAML text → the document, or an error (a bundle is a YAML mapping)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        return None, [{"field": "", "message": f"the bundle is not valid YAML{where}"}]
    if not isinstance(doc, dict):
        return None, [{"field": "", "message": "a bundle is a YAML mapping with templates"}]
    return doc, []


def check_bundle(doc: dict) -> list[dict]:
    """Structure and field types, with paths; templates checked by the catalog's rules."""
    errors = []
    for key, value in doc.items():
        if key not in TOP_KEYS:
            errors.append(_err(str(key), "unknown key"))
        elif not isinstance(value, TOP_KEYS[key]) or isinstance(value, bool):
            errors.append(_err(key, f"must be {_kind(TOP_KEYS[key]())}, not {_kind(value)}"))
    if doc.get("kind") != KIND and "kind" not in {e["field"] for e in errors}:
        errors.append(_err("kind", f"must be {KIND!r}"))
    if doc.get("version") not in (VERSION,) and "version" not in {e["field"] for e in errors}:
        errors.append(_err("version", f"this hub reads bundle version {VERSION}"))
    templates = doc.get("templates")
    if not isinstance(templates, list):
        if "templates" not in doc:
            errors.append(_err("templates", "is required"))
        return errors
    seen: dict[str, int] = {}
    for i, item in enumerate(templates):
        base = f"templates[{i}]"
        if not isinstance(item, dict):
            errors.append(_err(base, f"must be a mapping, not {_kind(item)}"))
            continue
        errors += _check_image_ref(f"{base}.image", item.get("image"))
        body = {k: v for k, v in item.items() if k != "image"}
        if "image_id" in body:
            errors.append(_err(f"{base}.image_id", "unknown key (bundles name images by sha256)"))
            body.pop("image_id")
        _clean, problems = validate_template({**body, "image_id": 0}, {0: _READY}, set())
        errors += [_err(f"{base}.{p['field']}", _strip(p["message"], p["field"])) for p in problems]
        slug = item.get("slug")
        if isinstance(slug, str):
            if slug in seen:
                errors.append(
                    _err(f"{base}.slug", f"duplicate slug {slug!r} (also templates[{seen[slug]}])")
                )
            else:
                seen[slug] = i
    return errors


_READY = {"name": "-", "status": "ready"}


def _strip(message: str, field: str) -> str:
    """The rules' messages start with the field name; the path already says it."""
    return message[len(field) + 1 :] if message.startswith(field + " ") else message


def _check_image_ref(path: str, ref) -> list[dict]:
    if ref is None:
        return [_err(path, "is required: {name: ..., sha256: ...}")]
    if not isinstance(ref, dict):
        return [_err(path, f"must be a mapping with name and sha256, not {_kind(ref)}")]
    errors = []
    for key in ref:
        if key not in IMAGE_KEYS:
            errors.append(_err(f"{path}.{key}", "unknown key"))
    for key in IMAGE_KEYS:
        value = ref.get(key)
        if not isinstance(value, str):
            errors.append(_err(f"{path}.{key}", f"must be text, not {_kind(value)}"))
    sha = ref.get("sha256")
    if isinstance(sha, str) and not SHA256.match(sha):
        errors.append(_err(f"{path}.sha256", "must be 64 lowercase hex digits"))
    return errors


def resolve_images(templates: list[dict], images: list[dict]) -> tuple[dict[str, int], list[dict]]:
    """Each template's image on this hub, by sha256 (a ready image; same name preferred).

    ``images`` are ``{"id", "name", "sha256", "status"}``. Returns ``({slug: image_id},
    missing)`` where ``missing`` lists ``{"name", "sha256", "templates"}`` to upload first.
    """
    by_sha: dict[str, list[dict]] = {}
    for image in images:
        if image.get("status") == "ready" and image.get("sha256"):
            by_sha.setdefault(image["sha256"], []).append(image)
    found, missing = {}, {}
    for t in templates:
        ref = t["image"]
        candidates = by_sha.get(ref["sha256"], [])
        if candidates:
            same_name = [c for c in candidates if c["name"] == ref["name"]]
            found[t["slug"]] = (same_name or candidates)[0]["id"]
        else:
            entry = missing.setdefault(
                ref["sha256"], {"name": ref["name"], "sha256": ref["sha256"], "templates": []}
            )
            entry["templates"].append(t["slug"])
    return found, list(missing.values())


def plan_import(
    templates: list[dict], image_ids: dict[str, int], existing_slugs: set[str], replace: bool
) -> tuple[list[tuple[str, dict]], list[dict]]:
    """``[("create"|"update", clean row)]`` and errors (409-style conflicts have conflict=True)."""
    plan, errors = [], []
    for i, t in enumerate(templates):
        base = f"templates[{i}]"
        body = {k: v for k, v in t.items() if k != "image"}
        body["image_id"] = image_ids[t["slug"]]
        if t["slug"] in existing_slugs:
            if not replace:
                errors.append(
                    {
                        **_err(f"{base}.slug", f"a template {t['slug']!r} already exists here"),
                        "conflict": True,
                    }
                )
                continue
            slug = body.pop("slug")
            full = {**TEMPLATE_DEFAULTS, **body}
            clean, _ = validate_template(full, {body["image_id"]: _READY}, set(), partial=True)
            plan.append(("update", {**clean, "slug": slug}))
        else:
            clean, _ = validate_template(body, {body["image_id"]: _READY}, set())
            plan.append(("create", clean))
    return plan, errors
