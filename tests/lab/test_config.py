"""LabRuntime: every option from a BLABS_* variable, bad values refused with the name."""

import pytest
from traitlets import TraitError

from blabs_hub.config import BlabsConfigError
from blabs_hub.lab.config import LabRuntime


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (
        "BLABS_ACCEL",
        "BLABS_QEMU_EXTRA_ARGS",
        "BLABS_CONSOLE_TIMEOUT",
        "BLABS_STOP_TIMEOUT",
        "BLABS_LAB_NETWORK",
    ):
        monkeypatch.delenv(name, raising=False)


def test_accel_defaults_to_auto():
    assert LabRuntime().accel == "auto"


def test_accel_comes_from_blabs_accel(monkeypatch):
    monkeypatch.setenv("BLABS_ACCEL", "TCG")
    assert LabRuntime().accel == "tcg"


def test_a_bad_accel_names_the_variable(monkeypatch):
    monkeypatch.setenv("BLABS_ACCEL", "turbo")
    with pytest.raises(TraitError, match="BLABS_ACCEL must be one of auto, kvm, tcg"):
        LabRuntime()


def test_the_network_backend_defaults_to_passt():
    assert LabRuntime().network_backend == "passt"


def test_slirp_can_be_chosen_by_variable(monkeypatch):
    monkeypatch.setenv("BLABS_LAB_NETWORK", "Slirp")
    assert LabRuntime().network_backend == "slirp"


def test_an_unknown_network_backend_names_the_variable(monkeypatch):
    monkeypatch.setenv("BLABS_LAB_NETWORK", "bridge")
    with pytest.raises(TraitError, match="BLABS_LAB_NETWORK must be one of passt, slirp"):
        LabRuntime()


def test_extra_qemu_args_are_split_like_a_shell(monkeypatch):
    monkeypatch.setenv("BLABS_QEMU_EXTRA_ARGS", "-vnc 'unix:/tmp/a b.sock'")
    assert LabRuntime().qemu_extra_args == ["-vnc", "unix:/tmp/a b.sock"]


def test_extra_qemu_args_that_open_a_port_are_refused(monkeypatch):
    monkeypatch.setenv("BLABS_QEMU_EXTRA_ARGS", "-vnc :1")
    with pytest.raises(TraitError, match="must not open network ports"):
        LabRuntime()


def test_a_timeout_that_is_not_a_number_names_the_variable(monkeypatch):
    monkeypatch.setenv("BLABS_CONSOLE_TIMEOUT", "soon")
    with pytest.raises(BlabsConfigError, match="BLABS_CONSOLE_TIMEOUT"):
        LabRuntime()


def test_a_timeout_out_of_range_names_the_variable(monkeypatch):
    monkeypatch.setenv("BLABS_STOP_TIMEOUT", "0")
    with pytest.raises(TraitError, match="BLABS_STOP_TIMEOUT"):
        LabRuntime()


def test_every_option_has_help():
    for name, trait in LabRuntime.class_traits(config=True).items():
        assert trait.help.strip(), name
