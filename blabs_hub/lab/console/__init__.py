"""The lab console: a jupyter-server-proxy entry that runs our websockify relay.

Configuration over code (like jupyter-remote-desktop-proxy): :func:`setup_console` returns
the server-proxy entry; the relay (:mod:`.relay`) does the rest. The console lives at
``<server URL>console/``, e.g. ``/user/<name>/<lab>/console/``.
"""

import sys
from pathlib import Path

from blabs_hub.lab.console.settings import ConsoleSettings
from blabs_hub.lab.spec import LabPaths

# Headers server-proxy would forward from the browser to the relay. It copies every request
# header, including the hub token (``Authorization``) and the hub cookies (whose value is a
# signed, readable token). ``request_headers_override`` can only set values, not delete, so
# they are blanked: the relay never sees a credential.
STRIPPED_HEADERS = {"Authorization": "", "Cookie": ""}


def setup_console(config=None) -> dict:
    """The jupyter-server-proxy entry for ``/console/``."""
    settings = ConsoleSettings(config=config)
    lab = LabPaths(Path(settings.lab_workdir))
    lab.check()
    return {
        "command": [
            sys.executable,
            "-m",
            "blabs_hub.lab.console.relay",
            "--unix-listen",
            "{unix_socket}",
            "--workdir",
            str(lab.workdir),
            "--unix-target",
            str(lab.spice_socket),
            "--spice-html5",
            settings.spice_html5_dir,
            "--activity-interval",
            str(settings.activity_interval_seconds),
        ],
        "unix_socket": True,
        "timeout": settings.start_timeout_seconds,
        "absolute_url": False,
        "new_browser_tab": False,
        # server-proxy counts traffic both ways as activity; the relay reports input itself.
        "update_last_activity": False,
        "request_headers_override": dict(STRIPPED_HEADERS),
        "launcher_entry": {"enabled": True, "title": "Lab console"},
    }
