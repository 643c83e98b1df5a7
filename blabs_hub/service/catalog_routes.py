"""The catalog's part of the service's URL table: API, admin pages, static files, OpenAPI.

Built once at service start: the image store's limits are read from the environment here,
so a bad ``BLABS_*`` value stops the service at start with a line naming the variable.
"""

import sys
from pathlib import Path

from tornado import web
from traitlets import TraitError

from ..config import BlabsConfigError, BlabsPaths
from ..images.config import ImageStore
from .api.images import image_routes
from .api.readystate import ready_state_routes
from .api.settings import settings_routes
from .api.templates import template_routes
from .pages.admin import page_routes
from .uploads import ImageService

HERE = Path(__file__).parent
OPENAPI = HERE / "openapi.yaml"


class OpenAPIHandler(web.RequestHandler):
    """The API description, public like any API documentation."""

    def get(self):
        self.set_header("Content-Type", "application/yaml; charset=utf-8")
        self.finish(OPENAPI.read_bytes())


def catalog_routes(at) -> list:
    try:
        store = ImageStore()
        images = ImageService(store, BlabsPaths().images_dir)
    except (BlabsConfigError, TraitError) as e:
        print(f"blabs: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return [
        *image_routes(at, images),
        *template_routes(at),
        *ready_state_routes(at),
        *settings_routes(at),
        (at("api/openapi.yaml"), OpenAPIHandler),
        *page_routes(at),
        (at("static/(.*)"), web.StaticFileHandler, {"path": str(HERE / "static")}),
    ]
