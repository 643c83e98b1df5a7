"""The service's own pages and endpoints that are not catalog resources."""

from tornado import web

from .. import __version__
from .base import APIHandler, BaseHandler


class HealthHandler(web.RequestHandler):
    """Unauthenticated liveness check: the process runs and the catalog answers."""

    def get(self):
        catalog = self.settings["catalog"]
        catalog.check()
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish({"status": "ok", "version": __version__})


class HomePage(BaseHandler):
    """The service's landing page: who is signed in, and what they may do here."""

    @web.authenticated
    def get(self):
        self.render_template("blabs-home.html")


class WhoAmIHandler(APIHandler):
    """The caller as the hub sees them, with the blabs permissions they hold."""

    @web.authenticated
    def get(self):
        user = self.current_user
        self.write_json(
            {
                "name": user["name"],
                "kind": user.get("kind", "user"),
                "admin": bool(user.get("admin")),
                "scopes": sorted(s for s in self.scopes if s.startswith("custom:blabs:")),
            }
        )
