"""The service's own pages and endpoints that are not catalog resources."""

import json
from urllib.parse import quote

from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient

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


class StopLabPage(BaseHandler):
    """Stop one of your own labs: the console's "Stop lab" button lands here.

    GET asks for confirmation (a link must never change state); POST stops the lab through
    the hub's REST API with the caller's own token, so the hub's permission checks apply:
    nobody can stop someone else's lab from here. The named server is removed with it, as
    its disk is gone.
    """

    @web.authenticated
    def get(self, server_name):
        self.render_template("blabs-stop-lab.html", server_name=server_name)

    @web.authenticated
    async def post(self, server_name):
        user = self.current_user
        token = self.hub_auth.get_token(self)
        url = url_path_join(
            self.hub_auth.api_url, "users", quote(user["name"]), "servers", quote(server_name)
        )
        response = await AsyncHTTPClient().fetch(
            url,
            method="DELETE",
            headers={"Authorization": f"token {token}"},
            body=json.dumps({"remove": True}),
            allow_nonstandard_methods=True,
            raise_error=False,
        )
        if response.code not in (202, 204, 404):
            raise web.HTTPError(response.code, f"the hub refused to stop {server_name}")
        self.redirect(f"{self.hub_prefix}home")
