"""Console settings, as traits whose defaults come from environment variables.

The console runs as a child of the lab's jupyter-server (through jupyter-server-proxy), so
the spawner configures it the only way that reaches it: environment variables. Read once
in :func:`blabs_hub.lab.console.setup_console` and passed to the relay as arguments.
"""

import os
from pathlib import Path

from traitlets import Integer, TraitError, Unicode, default, validate

from blabs_hub.config import EnvConfigurable, check_range, env_int, env_value


class ConsoleSettings(EnvConfigurable):
    """Where the console finds its lab and how often it reports input to the hub."""

    lab_workdir = Unicode(
        help="""The running lab's scratch folder (see ``LabPaths``): the console connects to
        its SPICE socket and reads its status file there. Set by the spawner.
        Default: ``$BLABS_LAB_WORKDIR``.""",
    ).tag(config=True)

    @default("lab_workdir")
    def _default_lab_workdir(self):
        return env_value("BLABS_LAB_WORKDIR", "")

    @validate("lab_workdir")
    def _validate_lab_workdir(self, proposal):
        value = proposal["value"]
        if not value or not os.path.isabs(value):
            raise TraitError(
                f"BLABS_LAB_WORKDIR={value!r} must be the lab's folder as an absolute path "
                "(the spawner sets it)"
            )
        return value

    activity_interval_seconds = Integer(
        help="""At most one activity report to the hub per this many seconds while the user
        types or moves the mouse in the console; the last input of a burst is reported at the
        end of the interval. Keep it well under the idle timeout.
        Default: ``$BLABS_ACTIVITY_INTERVAL_SECONDS`` or 60.""",
    ).tag(config=True)

    @default("activity_interval_seconds")
    def _default_activity_interval_seconds(self):
        return env_int("BLABS_ACTIVITY_INTERVAL_SECONDS", 60)

    @validate("activity_interval_seconds")
    def _validate_activity_interval_seconds(self, proposal):
        return check_range(self, proposal, "BLABS_ACTIVITY_INTERVAL_SECONDS", 1, 3600)

    spice_html5_dir = Unicode(
        help="""Folder of the HTML5 SPICE client (Debian package spice-html5), served by the
        console under ``spice-html5/``; nothing is loaded from a CDN.
        Default: ``$BLABS_SPICE_HTML5_DIR`` or /usr/share/spice-html5.""",
    ).tag(config=True)

    @default("spice_html5_dir")
    def _default_spice_html5_dir(self):
        return env_value("BLABS_SPICE_HTML5_DIR", "/usr/share/spice-html5")

    @validate("spice_html5_dir")
    def _validate_spice_html5_dir(self, proposal):
        value = proposal["value"]
        if not (Path(value) / "main.js").is_file():
            raise TraitError(
                f"BLABS_SPICE_HTML5_DIR={value!r} has no main.js: install Debian's spice-html5"
            )
        return value

    start_timeout_seconds = Integer(
        help="""Seconds jupyter-server-proxy waits for the console relay to answer after
        starting it. Default: ``$BLABS_CONSOLE_START_TIMEOUT_SECONDS`` or 30.""",
    ).tag(config=True)

    @default("start_timeout_seconds")
    def _default_start_timeout_seconds(self):
        return env_int("BLABS_CONSOLE_START_TIMEOUT_SECONDS", 30)

    @validate("start_timeout_seconds")
    def _validate_start_timeout_seconds(self, proposal):
        return check_range(self, proposal, "BLABS_CONSOLE_START_TIMEOUT_SECONDS", 1, 600)
