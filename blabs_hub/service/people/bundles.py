"""``/api/bundle``: export templates as a course bundle (YAML), import one (all or nothing).

The rules are in :mod:`blabs_hub.catalog.bundles` (pure); this is the thin part: read the
catalog, answer. Import answers 400 for a malformed bundle (with the path of the first bad
field and all of them listed), 422 with ``missing_images`` when images must be uploaded
first, 409 when a slug exists here (unless ``?replace=true``) — and writes nothing then.
"""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ...catalog import Image, Template
from ...catalog import bundles as rules
from ..api.common import TEMPLATES, raise_first, template_json
from ..base import ApiError, APIHandler

MAX_BUNDLE_BYTES = 1 << 20


class BundleHandler(APIHandler):
    def get(self):
        self.require_scope(TEMPLATES)
        wanted = [s for s in self.get_argument("templates", "").split(",") if s]
        with self.catalog.session() as db:
            query = select(Template).options(selectinload(Template.image))
            if wanted:
                query = query.where(Template.slug.in_(wanted))
            rows = list(db.execute(query).scalars())
            found = {t.slug for t in rows}
            unknown = [s for s in wanted if s not in found]
            if unknown:
                raise ApiError(404, f"no template {unknown[0]!r}", field="templates")
            items = [{**template_json(t), "image_sha256": t.image.sha256} for t in rows]
        doc = rules.export_bundle(
            items, datetime.now(UTC).isoformat(timespec="seconds"), source=self.request.host
        )
        self.set_header("Content-Type", "application/yaml; charset=utf-8")
        self.set_header("Content-Disposition", 'attachment; filename="blabs-bundle.yaml"')
        self.finish(rules.dump_bundle(doc))

    def post(self):
        self.require_scope(TEMPLATES)
        if len(self.request.body) > MAX_BUNDLE_BYTES:
            raise ApiError(413, "a bundle is at most 1 MiB")
        replace = self.get_argument("replace", "false").lower() in ("1", "true", "yes")
        doc, errors = rules.parse_bundle(self.request.body)
        if not errors:
            errors = rules.check_bundle(doc)
        raise_first(errors)
        templates = doc["templates"]
        with self.catalog.session() as db, db.begin():
            images = [
                {"id": i.id, "name": i.name, "sha256": i.sha256, "status": i.status}
                for i in db.execute(select(Image)).scalars()
            ]
            image_ids, missing = rules.resolve_images(templates, images)
            if missing:
                names = ", ".join(f"{m['name']} ({m['sha256'][:12]}…)" for m in missing)
                raise ApiError(
                    422,
                    f"upload these images first (nothing was imported): {names}",
                    missing_images=missing,
                )
            existing = set(db.execute(select(Template.slug)).scalars())
            plan, errors = rules.plan_import(templates, image_ids, existing, replace)
            raise_first(errors)
            created, updated = [], []
            for action, row in plan:
                if action == "create":
                    db.add(Template(**row))
                    created.append(row["slug"])
                else:
                    template = db.execute(
                        select(Template).where(Template.slug == row["slug"])
                    ).scalar_one()
                    for key, value in row.items():
                        setattr(template, key, value)
                    updated.append(row["slug"])
        self.write_json({"created": created, "updated": updated})


def bundle_routes(at) -> list:
    return [(at("api/bundle"), BundleHandler)]
