"""The Images, Templates and Settings pages: server-rendered frames, filled by JavaScript
from ``static/`` calling the same REST API as the CLI (one set of rules, one code path)."""

from tornado import web

from ..base import BaseHandler

PAGES = {
    "images": ("custom:blabs:images", "blabs-images.html"),
    "templates": ("custom:blabs:templates", "blabs-templates.html"),
    "settings": ("custom:blabs:settings", "blabs-settings.html"),
}


class AdminPage(BaseHandler):
    def initialize(self, page: str):
        self.page = page

    @web.authenticated
    def get(self):
        scope, template = PAGES[self.page]
        self.require_scope(scope)
        self.render_template(
            template,
            api_url=f"{self.service_prefix}api/",
            static=f"{self.service_prefix}static/",
        )


def page_routes(at) -> list:
    return [(at(name), AdminPage, {"page": name}) for name in PAGES]
