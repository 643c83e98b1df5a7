"""Preparation labs are asked for explicitly and only admins get one (pure parts)."""

from types import SimpleNamespace

import pytest
from tornado import web

from blabs_hub.hub.spawners.options import TemplateChoice, lab_spec_for, requested_prepare
from blabs_hub.hub.spawners.progress import stage_event


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, False),
        ({"template": "x"}, False),
        ({"prepare": True}, True),
        ({"prepare": ["1"]}, True),  # ?opt-prepare=1
        ({"prepare": ["0"]}, False),
        ({"prepare": "yes"}, True),
    ],
)
def test_prepare_is_only_what_is_asked_for(options, expected):
    assert requested_prepare(options) is expected


def template():
    image = SimpleNamespace(filename="img-1.qcow2", format="qcow2")
    return SimpleNamespace(
        slug="win",
        image=image,
        cpus=2,
        memory_mib=4096,
        firmware="bios",
        disk_bus="sata",
        network="internet",
        guest_profile="windows",
        max_session_minutes=None,
    )


def test_every_lab_names_its_ready_state_beside_the_image():
    spec = lab_spec_for(template(), "/data/images")
    assert spec.mode == "run"
    assert spec.ready_dir == "/data/images/img-1.qcow2.ready/win"
    assert lab_spec_for(template(), "/data/images", prepare=True).mode == "prepare"


def test_a_student_asking_for_a_preparation_lab_gets_403_before_any_lookup():
    choice = TemplateChoice(db_url="sqlite://", images_dir="/nowhere")
    with pytest.raises(web.HTTPError) as err:
        choice.spec_for_request({"template": "win", "prepare": True}, "win", may_prepare=False)
    assert err.value.status_code == 403


def test_progress_names_a_resume_and_a_cold_boot_reason():
    loading = stage_event({"stage": "loading-state", "message": "", "time": 1.0})
    assert "Resuming" in loading["message"] and loading["blabs_stage"]["time"] == 1.0
    booting = stage_event(
        {"stage": "booting", "message": "Booting the VM (no instant start: cpus 1 → 2)"}
    )
    assert "no instant start: cpus 1 → 2" in booting["message"]
