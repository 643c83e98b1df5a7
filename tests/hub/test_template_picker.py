"""How templates are offered to students: the picker and the home page cards."""

from blabs_hub.hub.spawners.options import memory_label


def test_memory_is_shown_as_people_read_it():
    assert [memory_label(m) for m in (256, 1024, 1536, 4096)] == [
        "256 MiB",
        "1 GiB",
        "1.5 GiB",
        "4 GiB",
    ]
