"""Where the files that ship beside the code are found, installed or in a checkout."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def templates_dir() -> Path:
    """Our Jinja templates: ``share/blabs_hub/templates`` when installed, else the checkout."""
    installed = Path(sys.prefix) / "share" / "blabs_hub" / "templates"
    checkout = REPO / "templates"
    # An editable install has both; the checkout is the one being edited.
    return checkout if checkout.is_dir() else installed


def hub_templates_dir() -> Path:
    """JupyterHub's own templates (``page.html``), which ours extend."""
    from jupyterhub._data import DATA_FILES_PATH

    return Path(DATA_FILES_PATH) / "templates"


def chp_command() -> list[str]:
    """configurable-http-proxy, pinned by package-lock.json in the checkout, else on PATH."""
    local = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
    return [str(local)] if local.exists() else ["configurable-http-proxy"]


__all__ = ["REPO", "templates_dir", "hub_templates_dir", "chp_command"]
