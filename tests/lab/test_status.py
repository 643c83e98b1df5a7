"""Stage lines: written whole, read tolerantly."""

import pytest

from blabs_hub.lab.children import child_environment
from blabs_hub.lab.launcher import load_spec
from blabs_hub.lab.spec import LabPaths, LabSpec
from blabs_hub.lab.status import STAGES, read_stages, stage_record, write_stage


def test_stages_are_read_back_in_order_with_their_details(tmp_path):
    paths = LabPaths(tmp_path)
    write_stage(paths, "preparing-disk", "Preparing")
    write_stage(paths, "booting", "Booting", accel="tcg", slow_mode=True)
    stages = read_stages(paths)
    assert [s["stage"] for s in stages] == ["preparing-disk", "booting"]
    assert stages[1]["slow_mode"] is True and isinstance(stages[1]["time"], float)


def test_a_partially_written_last_line_is_skipped(tmp_path):
    paths = LabPaths(tmp_path)
    write_stage(paths, "preparing-disk", "Preparing")
    with open(paths.status_file, "a") as f:
        f.write('{"stage": "boot')
    assert [s["stage"] for s in read_stages(paths)] == ["preparing-disk"]


def test_no_status_file_means_no_stages(tmp_path):
    assert read_stages(LabPaths(tmp_path)) == []


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="stage must be one of"):
        stage_record("flying", "")


def test_stage_names_are_the_documented_ones():
    for stage in ("preparing-disk", "booting", "console-ready", "failed", "stopped"):
        assert stage in STAGES


def test_child_environment_keeps_no_hub_token_or_other_secrets():
    env = child_environment(
        {
            "PATH": "/usr/bin",
            "TZ": "Europe/Berlin",
            "LC_ALL": "C.UTF-8",
            "JUPYTERHUB_API_TOKEN": "secret",
            "JPY_API_TOKEN": "secret",
            "BLABS_LAB_SPEC": "{}",
            "AWS_SECRET_ACCESS_KEY": "secret",
        }
    )
    assert env == {"PATH": "/usr/bin", "TZ": "Europe/Berlin", "LC_ALL": "C.UTF-8"}


def test_spec_comes_from_the_environment_as_json_or_a_file(tmp_path):
    spec = LabSpec(slug="a", image_path="/i.qcow2", image_format="qcow2")
    assert load_spec(None, {"BLABS_LAB_SPEC": spec.to_json()}) == spec
    (tmp_path / "spec.json").write_text(spec.to_json())
    assert load_spec(None, {"BLABS_LAB_SPEC": str(tmp_path / "spec.json")}) == spec
    assert load_spec(str(tmp_path / "spec.json"), {}) == spec
    with pytest.raises(ValueError, match="BLABS_LAB_SPEC"):
        load_spec(None, {})
