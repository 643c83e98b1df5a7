"""How templates are offered to students: the picker and the home page cards."""

from blabs_hub.hub.spawners.options import memory_label, session_environment
from blabs_hub.lab.spec import LabSpec


def test_memory_is_shown_as_people_read_it():
    assert [memory_label(m) for m in (256, 1024, 1536, 4096)] == [
        "256 MiB",
        "1 GiB",
        "1.5 GiB",
        "4 GiB",
    ]


def test_a_session_limit_becomes_the_labs_end_time_and_warning():
    spec = LabSpec(slug="exam", image_path="/i.qcow2", image_format="qcow2", max_session_minutes=45)
    assert session_environment(spec, 5, now=1000.0) == {
        "BLABS_SESSION_ENDS_AT": "3700",
        "BLABS_SESSION_WARNING_MINUTES": "5",
    }


def test_no_session_limit_no_end_time():
    spec = LabSpec(slug="free", image_path="/i.qcow2", image_format="qcow2")
    assert session_environment(spec, 5, now=1000.0) == {}
