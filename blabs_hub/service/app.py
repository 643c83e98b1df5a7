"""Start the blabs service: read the hub-provided environment, open the catalog, listen."""

import logging
import os
import signal
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import httpserver, ioloop, web

from ..catalog import Catalog
from ..config import check_environment
from .base import make_jinja_env
from .handlers import HealthHandler, HomePage, StopLabPage, WhoAmIHandler

log = logging.getLogger("blabs.service")


def routes(prefix: str) -> list:
    """The URL table, under the service prefix (``/services/blabs/``)."""

    def at(path: str) -> str:
        return url_path_join(prefix, path)

    from .catalog_routes import catalog_routes
    from .people import people_routes

    return [
        (at("health"), HealthHandler),
        (at("oauth_callback"), HubOAuthCallbackHandler),
        (at("api/whoami"), WhoAmIHandler),
        *catalog_routes(at),
        *people_routes(at),
        (at(r"labs/([a-z0-9][a-z0-9-]{0,29})/stop"), StopLabPage),
        (prefix, HomePage),
    ]


def cookie_secret(data_dir: str) -> bytes:
    """A secret that survives restarts, so signed-in browsers stay signed in."""
    path = os.path.join(data_dir, "blabs-service-cookie-secret")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        secret = os.urandom(32).hex().encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
        return secret


def make_app(catalog: Catalog, secret: bytes) -> web.Application:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/blabs/")
    hub_prefix = url_path_join(os.environ.get("JUPYTERHUB_BASE_URL", "/"), "hub/")
    return web.Application(
        routes(prefix),
        catalog=catalog,
        service_prefix=prefix,
        hub_prefix=hub_prefix,
        jinja_env=make_jinja_env(),
        cookie_secret=secret,
        xsrf_cookies=True,
        login_url=url_path_join(prefix, "oauth_callback"),
    )


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname).1s %(asctime)s blabs] %(message)s"
    )
    resolved = check_environment()
    catalog = Catalog(resolved["CatalogDatabase"].db_url)
    catalog.check()
    app = make_app(catalog, cookie_secret(resolved["BlabsPaths"].data_dir))
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8082"))
    server = httpserver.HTTPServer(app, xheaders=True, max_body_size=64 * 1024 * 1024)
    server.listen(url.port, url.hostname)
    log.info("blabs service listening on %s", url.geturl())

    loop = ioloop.IOLoop.current()

    def stop(*_):
        loop.add_callback_from_signal(loop.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loop.start()
    server.stop()
    catalog.dispose()
