"""Launch links (``/launch/<slug>``) and the instructors' page that hands them out.

A launch link is stable: it names a template, never a user or a server. Opening it signs
the person in if needed (HubOAuth), then sends them to their lab's console if it runs, to
its spawn-pending page if it is starting, or through the hub's own spawn URL (with the
template as a query option, exactly like the home page's Start lab button) otherwise: the
hub's admission, start gate and progress page apply unchanged, and the lab's default URL
is its console.
"""

import json
from html import escape
from urllib.parse import quote, urlencode

import segno
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from tornado import web
from tornado.httpclient import AsyncHTTPClient

from ...catalog import Template
from ..base import BaseHandler

SLUG = r"([a-z0-9][a-z0-9-]{0,29})"
TEMPLATES = "custom:blabs:templates"


def launch_problem(slug: str, template) -> str | None:
    """Why a launch link cannot start its lab, in a student's words; None if it can (pure)."""
    if template is None:
        return f"There is no lab called “{slug}”. Check the link, or ask your instructor."
    if not template.enabled:
        return f"The lab “{template.title}” ({slug}) is switched off. Ask your instructor."
    if template.image is None or template.image.status != "ready":
        return f"The lab “{template.title}” ({slug}) is not ready yet: its disk image is missing."
    return None


def launch_target(hub_prefix: str, prefix: str, user: str, slug: str, server: dict | None) -> str:
    """Where to send someone who opened the link, given their server of that name (pure)."""
    if server and server.get("ready"):
        return f"{prefix}user/{quote(user)}/{slug}/console/"
    if server and server.get("pending") == "spawn":
        return f"{hub_prefix}spawn-pending/{quote(user)}/{slug}"
    return f"{hub_prefix}spawn/{quote(user)}/{slug}?{urlencode({'template': slug})}"


def snippets(link: str, badge: str, title: str) -> dict:
    """What an instructor pastes into course material (pure)."""
    alt = f"Start lab: {title}"
    return {
        "markdown": f"[![{alt}]({badge})]({link})",
        "html": f'<a href="{escape(link)}"><img src="{escape(badge)}" alt="{escape(alt)}"></a>',
    }


def qr_svg(link: str) -> str:
    """The link as an inline SVG QR code (segno), for slides and printed sheets."""
    return segno.make(link, error="m").svg_inline(scale=4, title=f"QR code for {link}")


BADGE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="92" height="24" role="img" '
    'aria-label="Start lab"><title>Start lab</title>'
    '<rect width="92" height="24" rx="4" fill="#0d6efd"/>'
    '<text x="46" y="16" fill="#fff" font-family="sans-serif" font-size="13" '
    'text-anchor="middle">▶ Start lab</text></svg>'
)


class BadgeHandler(web.RequestHandler):
    """The "Start lab" badge image: public, as course pages show it to anyone."""

    def get(self):
        self.set_header("Content-Type", "image/svg+xml")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(BADGE_SVG)


def _find(catalog, slug: str):
    with catalog.session() as db:
        return db.execute(
            select(Template).options(selectinload(Template.image)).where(Template.slug == slug)
        ).scalar_one_or_none()


class LaunchHandler(BaseHandler):
    """``GET /launch/<slug>``: sign in, then start or reopen that template's lab."""

    @web.authenticated
    async def get(self, slug):
        problem = launch_problem(slug, _find(self.catalog, slug))
        if problem:
            raise web.HTTPError(404, problem.replace("%", "%%"))
        user = self.current_user
        server = await self._server(user["name"], slug)
        prefix = self.hub_prefix.rsplit("hub/", 1)[0] or "/"
        self.redirect(launch_target(self.hub_prefix, prefix, user["name"], slug, server))

    async def _server(self, name: str, slug: str) -> dict | None:
        """The caller's server ``slug``, read with their own token (``read:users!user``)."""
        token = self.hub_auth.get_token(self)
        response = await AsyncHTTPClient().fetch(
            f"{self.hub_auth.api_url.rstrip('/')}/users/{quote(name)}",
            headers={"Authorization": f"token {token}"},
            raise_error=False,
            request_timeout=10,
        )
        if response.code != 200:
            return None  # the hub's spawn page will tell the truth
        return (json.loads(response.body).get("servers") or {}).get(slug)


class LinksPage(BaseHandler):
    """Instructors: each enabled template's launch link, badge snippets and QR code."""

    @web.authenticated
    def get(self):
        self.require_scope(TEMPLATES)
        origin = f"{self.request.protocol}://{self.request.host}"
        badge = f"{origin}{self.service_prefix}badge.svg"
        with self.catalog.session() as db:
            rows = list(
                db.execute(
                    select(Template).options(selectinload(Template.image)).order_by(Template.title)
                ).scalars()
            )
        links = []
        for t in rows:
            link = f"{origin}{self.service_prefix}launch/{t.slug}"
            links.append(
                {
                    "slug": t.slug,
                    "title": t.title,
                    "link": link,
                    "problem": launch_problem(t.slug, t),
                    "qr": qr_svg(link),
                    **snippets(link, badge, t.title),
                }
            )
        self.render_template("blabs-links.html", links=links, badge=badge)


def link_routes(at) -> list:
    return [
        (at(f"launch/{SLUG}"), LaunchHandler),
        (at(r"launch/([^/]*)"), UnknownLaunch),
        (at("links"), LinksPage),
        (at("badge.svg"), BadgeHandler),
    ]


class UnknownLaunch(BaseHandler):
    """A launch link whose slug cannot be a template's: the same friendly 404."""

    @web.authenticated
    def get(self, slug):
        raise web.HTTPError(404, launch_problem(slug, None).replace("%", "%%"))
