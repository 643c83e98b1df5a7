"""``/api/templates``: lab templates. Students list (and read) enabled ones; holders of
``custom:blabs:templates`` see all and change them.

Disabling a template only stops new starts (the spawner refuses disabled templates);
deleting one is refused while labs from it run, with the users named.
"""

import json
import os

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from tornado.httpclient import AsyncHTTPClient

from ...catalog import Image, Template
from ...catalog.rules import validate_template
from .common import TEMPLATES, ApiError, APIHandler, raise_first, template_json

SLUG = r"([a-z0-9][a-z0-9-]{0,29})"


def lab_template(server_name: str, server: dict) -> str:
    """The template a running named server was started from (see hub.spawners.options)."""
    options = server.get("user_options") or {}
    slug = options.get("template", server_name)
    if isinstance(slug, list) and len(slug) == 1:
        slug = slug[0]
    return slug if isinstance(slug, str) else server_name


def users_running(users: list[dict], slug: str) -> list[str]:
    """Names of users with a lab of template ``slug`` running or starting (pure)."""
    found = set()
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if name and lab_template(name, server) == slug:
                found.add(user["name"])
    return sorted(found)


async def active_users() -> list[dict]:
    """Users with running servers, from the hub, with the service's own token.

    The service needs ``list:users`` and ``read:servers``; without them we cannot know
    whether a template is in use, and say so instead of guessing.
    """
    api = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    response = await AsyncHTTPClient().fetch(
        f"{api}/users?state=active&limit=10000",
        headers={
            "Authorization": f"token {token}",
            "Accept": "application/jupyterhub-pagination+json",
        },
        raise_error=False,
        request_timeout=20,
    )
    if response.code != 200:
        raise ApiError(
            503,
            f"cannot ask the hub which labs run (HTTP {response.code}): the blabs service "
            "needs the scopes list:users and read:servers",
        )
    data = json.loads(response.body)
    return data["items"] if isinstance(data, dict) else data


class TemplatesBase(APIHandler):
    @property
    def manager(self) -> bool:
        return self.has_scope(TEMPLATES)

    def load(self, db, slug: str) -> Template:
        template = db.execute(
            select(Template).options(selectinload(Template.image)).where(Template.slug == slug)
        ).scalar_one_or_none()
        # Students do not learn that a disabled template exists.
        if template is None or (not template.enabled and not self.manager):
            raise ApiError(404, f"there is no lab template {slug!r}")
        return template

    def context(self, db, exclude: str | None = None):
        images = {
            i.id: {"name": i.name, "status": i.status} for i in db.execute(select(Image)).scalars()
        }
        slugs = set(db.execute(select(Template.slug)).scalars()) - {exclude}
        return images, slugs

    def resolve_image_name(self, db, data: dict) -> dict:
        """Accept ``"image": "<name>"`` as a convenience for ``image_id``."""
        if "image" in data and "image_id" not in data:
            name = data.pop("image")
            image_id = db.execute(select(Image.id).where(Image.name == name)).scalar()
            if image_id is None:
                raise ApiError(400, f"there is no image named {name!r}", field="image")
            data["image_id"] = image_id
        return data

    def update(self, slug: str, data: dict):
        with self.catalog.session() as db, db.begin():
            template = self.load(db, slug)
            data = self.resolve_image_name(db, data)
            images, slugs = self.context(db, exclude=slug)
            clean, errors = validate_template(data, images, slugs, partial=True)
            raise_first(errors)
            for key, value in clean.items():
                setattr(template, key, value)
            db.flush()
            db.refresh(template)
            body = template_json(template)
        self.write_json(body)


class TemplateListHandler(TemplatesBase):
    def get(self):
        self.require_user()
        query = select(Template).options(selectinload(Template.image)).order_by(Template.title)
        if not self.manager:
            query = query.where(Template.enabled.is_(True))
        with self.catalog.session() as db:
            items = [template_json(t) for t in db.execute(query).scalars()]
        self.write_json({"templates": items})

    def post(self):
        self.require_scope(TEMPLATES)
        data = self.json_body()
        with self.catalog.session() as db, db.begin():
            data = self.resolve_image_name(db, data)
            images, slugs = self.context(db)
            clean, errors = validate_template(data, images, slugs)
            raise_first(errors)
            template = Template(**clean)
            db.add(template)
            try:
                db.flush()
            except IntegrityError:
                raise ApiError(409, "a template with this slug already exists", "slug") from None
            db.refresh(template)
            body = template_json(template)
        self.set_header("Location", f"{self.service_prefix}api/templates/{clean['slug']}")
        self.write_json(body, status=201)


class TemplateHandler(TemplatesBase):
    def get(self, slug):
        self.require_user()
        with self.catalog.session() as db:
            self.write_json(template_json(self.load(db, slug)))

    def patch(self, slug):
        self.require_scope(TEMPLATES)
        self.update(slug, self.json_body())

    async def delete(self, slug):
        self.require_scope(TEMPLATES)
        with self.catalog.session() as db:
            self.load(db, slug)
        users = users_running(await active_users(), slug)
        if users:
            raise ApiError(
                409,
                f"labs from template {slug!r} are running for {', '.join(users)}: disable it "
                "to stop new starts, and delete it when they have ended",
                users=users,
            )
        with self.catalog.session() as db, db.begin():
            db.delete(self.load(db, slug))
        self.set_status(204)
        self.finish()


class TemplateToggleHandler(TemplatesBase):
    """POST .../enable or .../disable: running labs are left alone either way."""

    def initialize(self, enabled: bool):
        self.enabled = enabled

    def post(self, slug):
        self.require_scope(TEMPLATES)
        self.update(slug, {"enabled": self.enabled})


def template_routes(at) -> list:
    return [
        (at("api/templates"), TemplateListHandler),
        (at(f"api/templates/{SLUG}"), TemplateHandler),
        (at(f"api/templates/{SLUG}/enable"), TemplateToggleHandler, {"enabled": True}),
        (at(f"api/templates/{SLUG}/disable"), TemplateToggleHandler, {"enabled": False}),
    ]
