"""``/api/templates/{slug}/ready-state`` and ``.../prepare``: instant start for a template.

An admin starts a *preparation lab* (the hub's own spawn URL with ``opt-prepare=1``: the
lab runs under the admin's session, like any lab), gets the guest where students should
find it, then asks for "Save as ready state". The service never talks to the VM: it drops a
request file beside the ready state, which the preparation lab's launcher polls, and reads
the launcher's answer from there (see :mod:`blabs_hub.lab.readystate`).
"""

import time
from pathlib import Path
from urllib.parse import quote

from ...config import BlabsPaths
from ...hub.spawners.options import lab_spec_for
from ...lab.readystate import ready_dir_for, save_request_file, template_status
from .common import TEMPLATES, ApiError
from .templates import SLUG, TemplatesBase

# A preparation lab reports "console-ready" while it runs; these mean it is gone or busy.
RUNNING_STAGES = ("console-ready", "save-failed")


def ready_state_json(template, images_dir: str) -> dict:
    """The template's instant-start status, or why there is none (reads files beside the image)."""
    if template.image is None or not template.image.filename:
        return {"instant_start": False, "reason": "the template's image is not ready"}
    spec = lab_spec_for(template, images_dir)
    return template_status(spec.image_path, spec)


class ReadyStateBase(TemplatesBase):
    @property
    def images_dir(self) -> str:
        return BlabsPaths().images_dir


class ReadyStateHandler(ReadyStateBase):
    def get(self, slug):
        self.require_scope(TEMPLATES)
        with self.catalog.session() as db:
            self.write_json(ready_state_json(self.load(db, slug), self.images_dir))

    def post(self, slug):
        """Save as ready state: ask the running preparation lab to save (answers 202)."""
        self.require_scope(TEMPLATES)
        with self.catalog.session() as db:
            template = self.load(db, slug)
            status = ready_state_json(template, self.images_dir)
            image_path = Path(self.images_dir) / template.image.filename
        preparation = status.get("preparation") or {}
        if preparation.get("stage") not in RUNNING_STAGES:
            raise ApiError(
                409,
                f"no preparation lab of {slug!r} is running: start one first "
                f"(POST api/templates/{slug}/prepare)",
            )
        request = save_request_file(ready_dir_for(image_path, slug))
        request.write_text(str(time.time()))
        self.write_json({"requested": True, **status}, status=202)


class PrepareHandler(ReadyStateBase):
    def post(self, slug):
        """Where to start the preparation lab: the hub's spawn URL for the caller, as admin."""
        user = self.require_scope(TEMPLATES)
        if not user.get("admin"):
            raise ApiError(403, "only hub admins can prepare a template's ready state")
        with self.catalog.session() as db:
            self.load(db, slug)
        name = quote(user["name"], safe="")
        url = f"{self.hub_prefix}spawn/{name}/{slug}?opt-template={slug}&opt-prepare=1"
        self.write_json(
            {"url": url, "server_name": slug, "user_options": {"template": slug, "prepare": True}}
        )


def ready_state_routes(at) -> list:
    return [
        (at(f"api/templates/{SLUG}/ready-state"), ReadyStateHandler),
        (at(f"api/templates/{SLUG}/prepare"), PrepareHandler),
    ]
