"""Write the configuration reference (docs/configuration.md) from the traits themselves.

Every option is a trait with ``help=``; this page is generated from them so that it cannot
drift from the code (a test regenerates it and compares). Run ``python -m blabs_hub.config_docs``.
"""

import importlib
import re
import sys
from pathlib import Path

# (module, class): every Configurable of ours, grouped as the folders are.
CONFIGURABLES = [
    ("Deployment", "blabs_hub.config", "BlabsPaths"),
    ("Deployment", "blabs_hub.config", "CatalogDatabase"),
    ("Deployment", "blabs_hub.config", "HubNetwork"),
    ("Deployment", "blabs_hub.config", "SettingsDefaults"),
    ("Hub side", "blabs_hub.hub.auth.authenticator", "BlabsAuthenticator"),
    ("Hub side", "blabs_hub.hub.auth.sso", "BlabsOIDCAuthenticator"),
    ("Hub side", "blabs_hub.culler", "CullerSettings"),
    ("Hub side", "blabs_hub.hub.spawners.local", "BlabsLocalSpawner"),
    ("Hub side", "blabs_hub.hub.spawners.options", "TemplateChoice"),
    ("Hub side", "blabs_hub.hub.spawners.pod", "KubeLab"),
    ("Blabs service", "blabs_hub.images.config", "ImageStore"),
    ("Lab side", "blabs_hub.lab.config", "LabRuntime"),
    ("Lab side", "blabs_hub.lab.console.settings", "ConsoleSettings"),
]

ENV = re.compile(r"\$?(BLABS_[A-Z0-9_]+)")


def own_traits(cls) -> dict:
    """The configurable traits a class defines itself (not those of JupyterHub's bases)."""
    return {
        name: trait
        for name, trait in sorted(cls.class_traits(config=True).items())
        if trait.this_class.__module__.startswith("blabs_hub")
    }


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the code by `python -m blabs_hub.config_docs`; do not edit by hand.",
        "Set an option in `jupyterhub_config.d/*.py` as `c.Class.option = value`, or through",
        "the environment variable named in its description. A bad value stops the process",
        "at start with one line that names the variable.",
    ]
    section = None
    for group, module, name in CONFIGURABLES:
        cls = getattr(importlib.import_module(module), name)
        if group != section:
            lines += ["", f"## {group}"]
            section = group
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        lines += ["", f"### `{name}`", "", doc, "", "| option | variable | description |"]
        lines.append("|---|---|---|")
        for trait_name, trait in own_traits(cls).items():
            text = " ".join((trait.help or "").split())
            env = ", ".join(dict.fromkeys(f"`{v}`" for v in ENV.findall(text))) or "–"
            text = text.replace("|", "\\|")
            lines.append(f"| `{name}.{trait_name}` | {env} | {text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/configuration.md")
    out.write_text(render())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
