"""Ready-state compatibility rules, as pure functions: what makes a saved state unusable."""

from pathlib import Path

from blabs_hub.lab.qemu import build_qemu_argv, build_resume_argv, network_listeners
from blabs_hub.lab.readystate import (
    check_ready_state,
    check_template,
    machine_key,
    ready_dir_for,
    state_metadata,
)
from blabs_hub.lab.spec import LabPaths, LabSpec
from tests.lab.conftest import spec_json

SPEC = LabSpec(slug="win", image_path="/images/w.qcow2", image_format="qcow2", cpus=2)
PREP = LabPaths(Path("/labs/prep1"))
LAB = LabPaths(Path("/labs/lab22"))


def argv_for(spec: LabSpec, paths: LabPaths, **kw) -> list[str]:
    return build_qemu_argv(spec, paths, accel="tcg", **kw)


def meta(spec: LabSpec = SPEC, version: str = "7.2.13", size: int = 1000) -> dict:
    return state_metadata(
        spec,
        qemu_version=version,
        argv=argv_for(spec, PREP) + ["-qmp", "unix:/tmp/k.sock,server=on,wait=off"],
        workdir=PREP.workdir,
        state_size=size,
        state_sha256="ab" * 32,
        saved_at=1.0,
    )


def check(m: dict | None, spec: LabSpec = SPEC, version="7.2.13", size=1000, argv=None):
    return check_ready_state(
        m,
        spec,
        qemu_version=version,
        argv=argv if argv is not None else argv_for(spec, LAB),
        workdir=LAB.workdir,
        state_size=size,
    )


def test_a_state_resumes_in_another_lab_folder_with_other_monitors():
    assert check(meta()).usable


def test_machine_key_hides_the_lab_folder_and_host_only_options():
    prep = machine_key(argv_for(SPEC, PREP), PREP.workdir)
    resumed = machine_key(build_resume_argv(argv_for(SPEC, LAB), 7), LAB.workdir)
    assert prep == resumed
    assert not any("/labs/" in arg for arg in prep)
    assert "-incoming" not in resumed and "-S" not in resumed


def test_another_qemu_version_is_refused_naming_both():
    verdict = check(meta(version="7.2.13"), version="8.2.2")
    assert not verdict.usable
    assert "7.2.13" in verdict.reason and "8.2.2" in verdict.reason


def test_template_edited_after_preparation_is_refused_naming_the_fields():
    edited = spec_json(SPEC, memory_mib=8192, cpus=4)
    verdict = check(meta(), spec=edited)
    assert not verdict.usable
    assert "memory_mib 4096 → 8192" in verdict.reason and "cpus 2 → 4" in verdict.reason
    assert not check_template(meta(), edited).usable
    assert check_template(meta(), spec_json(SPEC, max_session_minutes=30)).usable


def test_different_machine_arguments_are_refused_with_the_first_difference():
    argv = argv_for(SPEC, LAB, tcg_cpu_model="qemu64")
    verdict = check(meta(), argv=argv)
    assert not verdict.usable and "qemu64" in verdict.reason


def test_missing_truncated_and_unsaved_states_are_refused():
    assert "missing" in check(meta(), size=None).reason
    assert "truncated" in check(meta(), size=999).reason
    assert "no ready state" in check(None).reason
    assert "format" in check({**meta(), "meta_version": 99}).reason
    missing_layer = check_ready_state(
        meta(),
        SPEC,
        qemu_version="7.2.13",
        argv=argv_for(SPEC, LAB),
        workdir=LAB.workdir,
        state_size=1000,
        layer_exists=False,
    )
    assert "layer" in missing_layer.reason


def test_tpm_templates_cannot_be_resumed():
    tpm = spec_json(SPEC, firmware="uefi-secure-tpm")
    saved = {**meta(), "machine": {**meta()["machine"], "firmware": "uefi-secure-tpm"}}
    assert "TPM" in check_template(saved, tpm).reason


def test_ready_states_live_beside_the_image_one_per_template():
    assert ready_dir_for("/images/w.qcow2", "win") == Path("/images/w.qcow2.ready/win")


def test_the_resume_argv_opens_no_network_port():
    assert network_listeners(build_resume_argv(argv_for(SPEC, LAB), 5)) == []
    assert network_listeners(["-incoming", "tcp:0:4444"])
