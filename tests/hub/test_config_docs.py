"""The configuration reference is generated from the traits, and nothing goes undocumented."""

import re

from blabs_hub.config_docs import render
from tests.harness import REPO

QUOTED_VARIABLE = re.compile(r"[\"'`$](BLABS_[A-Z0-9_]*[A-Z0-9])\b")


def test_the_configuration_reference_matches_the_code():
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render(), "run: .venv/bin/python -m blabs_hub.config_docs"


def test_every_blabs_variable_the_code_reads_is_documented():
    documented = (REPO / "README.md").read_text() + (REPO / "docs" / "configuration.md").read_text()
    sources = [REPO / "jupyterhub_config.py", *sorted((REPO / "blabs_hub").rglob("*.py"))]
    used = {v for path in sources for v in QUOTED_VARIABLE.findall(path.read_text())}
    assert used, "the pattern finds the variables"
    assert sorted(v for v in used if v not in documented) == []
