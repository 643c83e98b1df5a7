"""The deploy side, checked without a cluster or a Docker engine.

- ``helm-values/values.yaml`` deep-merged onto the z2jh chart's defaults must pass the
  chart's own values schema (JSON Schema draft-07), as ``helm`` would check it; a typo'd
  key must fail that check;
- the image recipes in ``spawner/`` are parsed: pinned base images, no ``latest``, a
  non-root final user, and every file they copy or run exists.
"""

import copy
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.harness import REPO

# The chart's schema and defaults, vendored beside this file (see its README).
Z2JH = Path(__file__).parent / "z2jh"
VALUES = REPO / "helm-values" / "values.yaml"


def deep_merge(base, override):
    """Helm's merge of a values file onto the chart defaults: maps merge, the rest replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        for key, value in override.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(override)


@pytest.fixture(scope="module")
def chart():
    schema_path, defaults_path = Z2JH / "values.schema.yaml", Z2JH / "values.yaml"
    assert schema_path.exists(), f"z2jh chart schema not found at {schema_path}"
    schema = yaml.safe_load(schema_path.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return schema, yaml.safe_load(defaults_path.read_text())


def errors(schema, values) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(values)]


@pytest.fixture(scope="module")
def ours():
    return yaml.safe_load(VALUES.read_text())


def test_helm_values_pass_the_chart_schema(chart, ours):
    schema, defaults = chart
    assert errors(schema, deep_merge(defaults, ours)) == []


@pytest.mark.parametrize(
    "typo",
    [
        {"singleuser": {"netwrokPolicy": {"enabled": True}}},
        {"singleuser": {"cloudMetadata": {"blockWithIpTables": False}}},
        {"hub": {"extraVolume": []}},
        {"cul": {"enabled": False}},
    ],
)
def test_a_typo_in_the_values_fails_the_schema(chart, ours, typo):
    schema, defaults = chart
    assert errors(schema, deep_merge(defaults, deep_merge(ours, typo))) != []


def test_helm_values_switch_on_what_labs_need(ours):
    su = ours["singleuser"]
    assert su["cloudMetadata"]["blockWithIptables"] is False
    rules = su["networkPolicy"]["egressAllowRules"]
    assert rules["nonPrivateIPs"] is True
    assert not any(rules[k] for k in ("privateIPs", "cloudMetadataServer", "dnsPortsPrivateIPs"))
    assert su["storage"]["type"] == "none"
    assert ours["cull"]["enabled"] is False  # blabs culls
    assert ours["hub"]["allowNamedServers"] is True
    assert "blabs" in ours["hub"]["services"]
    mount = ours["hub"]["extraVolumeMounts"][0]
    assert mount["mountPath"] == ours["hub"]["extraEnv"]["BLABS_IMAGES_DIR"]
    body = ours["ingress"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body == "0"
    # Values switch features on; Python lives in the image, not in YAML strings.
    assert "extraConfig" not in ours["hub"]


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPO / "spawner" / name).read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    return [tuple(ln.split(None, 1)) for ln in lines]


@pytest.mark.parametrize("name", ["Dockerfile.lab", "Dockerfile.hub"])
def test_image_recipes_are_pinned_non_root_and_complete(name):
    steps = dockerfile(name)
    bases = [args for instr, args in steps if instr.upper() == "FROM"]
    assert bases, "no FROM"
    for base in bases:
        image = base.split()[0]
        assert "@sha256:" in image or re.search(r":[\w.-]+$", image), f"unpinned {image}"
        assert not image.endswith(":latest")
        tag = image.rsplit(":", 1)[-1]
        assert re.search(r"\d", tag), f"{image}: a moving tag, not a version"
    users = [args for instr, args in steps if instr.upper() == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as root"
    for instr, args in steps:
        if instr.upper() == "COPY":
            *sources, _ = args.split()
            for src in sources:
                assert (REPO / src).exists(), f"{name} copies missing {src}"
        if "latest" in args.lower() and instr.upper() != "RUN":
            pytest.fail(f"{name}: 'latest' in {instr} {args}")


def test_hub_image_tag_matches_the_chart_app_version():
    (base,) = [a for i, a in dockerfile("Dockerfile.hub") if i.upper() == "FROM"]
    assert base == "quay.io/jupyterhub/k8s-hub:4.4.0"  # chart 4.4.0 = JupyterHub 5.5.0


def test_lab_entrypoint_and_what_the_pod_runs_exist():
    steps = dict((i.upper(), a) for i, a in dockerfile("Dockerfile.lab"))
    entry = REPO / "spawner" / "entrypoint.sh"
    assert "/usr/local/bin/blabs-entrypoint" in steps["ENTRYPOINT"]
    assert entry.exists() and os.access(entry, os.X_OK)
    assert entry.read_text().startswith("#!/bin/sh")
    assert "USER" in steps and steps["USER"].startswith("1000")
    # What the pod runs: the launcher (vm) and the console's server config.
    assert (REPO / "blabs_hub" / "lab" / "jupyter_config" / "jupyter_server_config.py").exists()
    assert (REPO / "blabs_hub" / "lab" / "launcher.py").exists() or (
        REPO / "blabs_hub" / "lab" / "launcher" / "__main__.py"
    ).exists(), "the lab launcher module (python -m blabs_hub.lab.launcher) is missing"


def test_hub_config_file_compiles():
    source = (REPO / "spawner" / "blabs_z2jh_config.py").read_text()
    compile(source, "blabs_z2jh_config.py", "exec")


def test_the_chart_hub_is_configured_like_the_one_machine_hub(tmp_path, monkeypatch):
    """The z2jh config file, run as the chart would run it, makes a Bretter Labs hub."""
    from traitlets.config import Config

    monkeypatch.setenv("BLABS_DB_URL", f"sqlite:///{tmp_path}/blabs.sqlite")
    monkeypatch.setenv("BLABS_DATA_DIR", str(tmp_path))
    config = Config()
    config.JupyterHub.services = [{"name": "blabs", "url": "http://hub:10101"}]
    source = (REPO / "spawner" / "blabs_z2jh_config.py").read_text()
    exec(compile(source, "blabs_z2jh_config.py", "exec"), {"get_config": lambda: config})  # noqa: S102
    hub = config.JupyterHub
    assert hub.spawner_class == "blabs-kube"
    assert hub.proxy_class == "blabs_hub.hub.proxy.InputActivityProxy"
    assert (hub.allow_named_servers, hub.cleanup_servers) == (True, False)
    assert hub.concurrent_spawn_limit == hub.active_server_limit == 0
    services = {s["name"]: s for s in hub.services}
    assert {"blabs", "blabs-culler"} <= set(services)
    assert services["blabs"]["oauth_client_allowed_scopes"]
    culler_role = next(r for r in hub.load_roles if r["name"] == "blabs-culler")
    assert "admin:server_state" not in culler_role["scopes"], "no lab folders in the hub pod"
