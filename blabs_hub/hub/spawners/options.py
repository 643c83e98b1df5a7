"""From what a user asked for to the lab they get: shared by both spawners.

A lab is a named server; the user picks a template (the options form, ``?opt-template=``
on a spawn URL, or ``{"user_options": {"template": "<slug>"}}`` over the REST API). When
no template is named, the server's name is taken as the template's slug, so
``/hub/spawn/<user>/<slug>`` starts that template directly. The decisions here are plain
functions; :class:`TemplateChoice` only adds the catalog lookups and the HTTP error.
"""

import time
from functools import cache
from html import escape
from pathlib import Path

from jupyterhub.utils import maybe_future
from sqlalchemy import select
from tornado import web
from traitlets import HasTraits, Instance, Unicode, default
from traitlets.config import LoggingConfigurable

from ...catalog import Catalog, Image, Template
from ...config import BlabsPaths, CatalogDatabase
from ...culler import CullerSettings
from ...lab.readystate import ready_dir_for
from ...lab.spec import LabSpec
from . import lifecycle

# QEMU's name for each stored image format (the catalog stores what the inspector found).
QEMU_FORMATS = {"qcow2": "qcow2", "raw": "raw", "vhd": "vpc", "vpc": "vpc", "vhdx": "vhdx"}


class LabOptionsError(ValueError):
    """The user asked for a lab that cannot be started; the message says why, to them."""


def requested_slug(user_options: dict | None, server_name: str) -> str:
    """The template a spawn request names: ``template`` in its options, else the server name."""
    options = user_options or {}
    slug = options.get("template", server_name)
    if isinstance(slug, list) and len(slug) == 1:  # form and query values arrive as lists
        slug = slug[0]
    if not isinstance(slug, str) or not slug:
        raise LabOptionsError('choose a lab template (user_options: {"template": "<slug>"})')
    return slug


def requested_prepare(user_options: dict | None) -> bool:
    """Whether a spawn asks for a *preparation* lab (``"prepare": true``, ``?opt-prepare=1``).

    A preparation lab always cold-boots, and its state can be saved as the template's ready
    state, which every later lab of the template resumes from: admins only.
    """
    value = (user_options or {}).get("prepare", False)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value in (True, 1, "1", "true", "on", "yes")


def check_template(slug: str, template: Template | None) -> Template:
    """Refuse unknown, disabled and not-ready templates, in words a student understands."""
    if template is None:
        raise LabOptionsError(f"there is no lab template called {slug!r}")
    if not template.enabled:
        raise LabOptionsError(f"the lab template {slug!r} is disabled: ask your instructor")
    if template.image is None or template.image.status != "ready":
        raise LabOptionsError(f"the disk image of lab template {slug!r} is not ready yet")
    return template


def lab_spec_for(template: Template, images_dir: str | Path, prepare: bool = False) -> LabSpec:
    """The machine a template describes, with its image's path in the image store.

    Every lab names the template's ready-state folder beside the image: a student's lab
    resumes from it when a usable state is there (the launcher decides, and cold-boots
    otherwise); a preparation lab saves into it.
    """
    image = template.image
    image_path = Path(images_dir) / image.filename
    return LabSpec(
        slug=template.slug,
        image_path=str(image_path),
        image_format=QEMU_FORMATS.get(image.format or "", image.format or ""),
        cpus=template.cpus,
        memory_mib=template.memory_mib,
        firmware=template.firmware,
        disk_bus=template.disk_bus,
        network=template.network,
        guest_profile=template.guest_profile,
        max_session_minutes=template.max_session_minutes,
        mode="prepare" if prepare else "run",
        ready_dir=str(ready_dir_for(image_path, template.slug)),
    )


def session_environment(spec: LabSpec, warning_minutes: int, now: float) -> dict[str, str]:
    """What the lab's console needs to count down to a template's session limit: its end
    (epoch seconds) and when to start warning. Nothing for templates without a limit."""
    if not spec.max_session_minutes:
        return {}
    return {
        "BLABS_SESSION_ENDS_AT": f"{now + spec.max_session_minutes * 60:.0f}",
        "BLABS_SESSION_WARNING_MINUTES": str(warning_minutes),
    }


def memory_label(mib: int) -> str:
    """Memory as people read it: "256 MiB", "4 GiB", "1.5 GiB"."""
    return f"{mib} MiB" if mib < 1024 else f"{mib / 1024:g} GiB"


def render_picker(templates: list[Template], selected: str = "") -> str:
    """The options form: one radio button per enabled template."""
    if not templates:
        return '<p class="alert alert-info">No lab templates are available yet.</p>'
    rows = []
    for t in templates:
        checked = " checked" if t.slug == selected or (not selected and t is templates[0]) else ""
        rows.append(
            f'<div class="form-check mb-2">'
            f'<input class="form-check-input" type="radio" name="template" '
            f'id="template-{escape(t.slug)}" value="{escape(t.slug)}"{checked}>'
            f'<label class="form-check-label" for="template-{escape(t.slug)}">'
            f"<strong>{escape(t.title)}</strong> · {t.cpus} CPU · {memory_label(t.memory_mib)}"
            f'<br><small class="text-muted">{escape(t.description or "")}</small></label></div>'
        )
    return "<fieldset><legend>Choose a lab</legend>" + "".join(rows) + "</fieldset>"


@cache
def _catalog(url: str) -> Catalog:
    return Catalog(url)


class TemplateChoice(LoggingConfigurable):
    """The catalog as the hub sees it: enabled templates and the one a spawn asks for."""

    db_url = Unicode(help="The catalog database (default: CatalogDatabase.db_url).").tag(
        config=True
    )

    @default("db_url")
    def _default_db_url(self):
        return CatalogDatabase(config=self.config).db_url

    images_dir = Unicode(help="The image store (default: BlabsPaths.images_dir).").tag(config=True)

    @default("images_dir")
    def _default_images_dir(self):
        return BlabsPaths(config=self.config).images_dir

    @property
    def catalog(self) -> Catalog:
        return _catalog(self.db_url)

    def enabled_templates(self) -> list[Template]:
        with self.catalog.session() as db:
            query = (
                select(Template)
                .join(Image)
                .where(Template.enabled.is_(True), Image.status == "ready")
                .order_by(Template.title)
            )
            return list(db.execute(query).scalars())

    def find(self, slug: str) -> Template | None:
        with self.catalog.session() as db:
            template = db.execute(
                select(Template).where(Template.slug == slug)
            ).scalar_one_or_none()
            if template is not None:
                template.image  # noqa: B018 (load it while the session is open)
            return template

    def spec_for_request(
        self, user_options: dict | None, server_name: str, may_prepare: bool = False
    ) -> LabSpec:
        """The lab to start for a spawn request, or a 400/403 naming the problem."""
        prepare = requested_prepare(user_options)
        if prepare and not may_prepare:
            raise web.HTTPError(403, "only admins can prepare a template's ready state")
        try:
            slug = requested_slug(user_options, server_name)
            template = check_template(slug, self.find(slug))
        except LabOptionsError as e:
            raise web.HTTPError(400, str(e)) from None
        # A missing image file is the launcher's to report, as a failed stage in the
        # progress page: it is a fault of the deployment, not of the request.
        return lab_spec_for(template, self.images_dir, prepare=prepare)


class LabTemplateMixin(HasTraits):
    """What both spawners offer the user: a lab template to pick, and its console as the URL.

    Mixed in before the spawner base class (``KubeSpawner``, ``LocalProcessSpawner``).
    """

    templates = Instance(TemplateChoice)
    session_limits = Instance(CullerSettings)
    starting_spec = Instance(LabSpec, allow_none=True)  # the lab being started

    @default("templates")
    def _default_templates(self):
        return TemplateChoice(parent=self)

    @default("session_limits")
    def _default_session_limits(self):
        return CullerSettings(parent=self)

    may_prepare = False  # whether this spawner runs admins' preparation labs (local only)

    async def run_pre_spawn_hook(self):
        """Which lab, whether it is admitted, and its turn at the start gate.

        JupyterHub awaits this before it starts the clock on ``start_timeout``: a lab
        waiting in line behind a class burst must not time out for having waited. A refusal
        (a 4xx naming the limit) ends the spawn here, before anything is created.
        """
        self.starting_spec = None
        try:
            self.starting_spec = self.templates.spec_for_request(
                self.user_options, self.name, may_prepare=self.may_prepare and self.user.admin
            )
            # The admin panel shows user_options.profile in its Profile column: the template.
            self.user_options = {**(self.user_options or {}), "profile": self.starting_spec.slug}
            if self.orm_spawner is not None:
                self.orm_spawner.user_options = self.user_options
            await lifecycle.lab_starting(self, self.starting_spec)
        except BaseException as e:
            await lifecycle.lab_start_failed(self, self.starting_spec, e)
            raise
        return await maybe_future(super().run_pre_spawn_hook())

    def get_env(self):
        """The base spawner's env, plus the session deadline of the lab being started."""
        env = super().get_env()
        if self.starting_spec is not None:
            warn = self.session_limits.warning_minutes
            env.update(session_environment(self.starting_spec, warn, time.time()))
        return env

    @default("default_url")
    def _default_default_url(self):
        return "/console/"

    @default("options_form")
    def _default_options_form(self):
        return self._render_options_form

    def _render_options_form(self, spawner):
        return render_picker(self.templates.enabled_templates(), selected=self.name)

    def options_from_form(self, formdata):
        return {"template": requested_slug(formdata, self.name)}

    def options_from_query(self, query_data):
        return self.options_from_form(query_data)
