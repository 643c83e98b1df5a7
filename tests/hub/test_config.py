"""Deployment configuration: BLABS_* variables, their defaults and their error messages."""

import pytest

from blabs_hub.config import (
    BlabsConfigError,
    BlabsPaths,
    SettingsDefaults,
    check_environment,
    env_int,
)


def test_settings_defaults_come_from_blabs_environment_variables(monkeypatch):
    monkeypatch.setenv("BLABS_MAX_CONCURRENT_VMS", "40")
    monkeypatch.setenv("BLABS_PER_USER_VM_LIMIT", "2")
    monkeypatch.setenv("BLABS_IDLE_TIMEOUT_MINUTES", "15")
    defaults = SettingsDefaults()
    assert (defaults.max_concurrent_vms, defaults.per_user_vm_limit) == (40, 2)
    assert defaults.idle_timeout_minutes == 15


def test_traitlets_config_overrides_the_environment(monkeypatch):
    from traitlets.config import Config

    monkeypatch.setenv("BLABS_MAX_CONCURRENT_VMS", "40")
    config = Config()
    config.SettingsDefaults.max_concurrent_vms = 3
    assert SettingsDefaults(config=config).max_concurrent_vms == 3


def test_zero_labs_is_a_valid_limit(monkeypatch):
    monkeypatch.setenv("BLABS_MAX_CONCURRENT_VMS", "0")
    assert SettingsDefaults().max_concurrent_vms == 0


def test_a_non_integer_limit_names_the_variable(monkeypatch):
    monkeypatch.setenv("BLABS_MAX_CONCURRENT_VMS", "forty")
    with pytest.raises(BlabsConfigError, match="BLABS_MAX_CONCURRENT_VMS='forty'"):
        env_int("BLABS_MAX_CONCURRENT_VMS", 20)


def test_a_negative_timeout_is_refused_with_the_variable_and_the_range(monkeypatch, capsys):
    monkeypatch.setenv("BLABS_IDLE_TIMEOUT_MINUTES", "-5")
    with pytest.raises(SystemExit):
        check_environment()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, "one line"
    assert "BLABS_IDLE_TIMEOUT_MINUTES" in err and "-5" in err


def test_data_dir_below_a_file_is_reported_as_not_creatable(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BLABS_DATA_DIR", str(blocker / "data"))
    with pytest.raises(BlabsConfigError, match="BLABS_DATA_DIR=.* cannot be created"):
        BlabsPaths().ensure()


def test_image_store_and_lab_folders_default_to_inside_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BLABS_DATA_DIR", str(tmp_path))
    paths = BlabsPaths()
    assert paths.images_dir == str(tmp_path / "images")
    assert paths.labs_dir == str(tmp_path / "labs")
