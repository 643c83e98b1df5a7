"""Choosing KVM or TCG: ``auto`` believes KVM only after a test guest ran under it."""

import json
from pathlib import Path

import pytest

from blabs_hub.lab.accel import (
    clear_memory_cache,
    probe_cache_key,
    probe_kvm_async,
    resolve_accel_async,
)

KVM = Path("/dev/kvm")


@pytest.fixture(autouse=True)
def fresh_memory_cache():
    clear_memory_cache()
    yield
    clear_memory_cache()


async def test_tcg_mode_is_slow_mode_and_probes_nothing(tmp_path):
    cache = tmp_path / "accel.json"
    choice = await resolve_accel_async("tcg", cache_file=cache)
    assert (choice.accel, choice.slow_mode) == ("tcg", True)
    assert "BLABS_ACCEL=tcg" in choice.reason
    assert not cache.exists()


async def test_kvm_mode_is_trusted_without_a_probe(tmp_path):
    choice = await resolve_accel_async("kvm", cache_file=tmp_path / "accel.json")
    assert (choice.accel, choice.slow_mode) == ("kvm", False)


async def test_unknown_mode_is_refused_with_the_variable_named():
    with pytest.raises(ValueError, match="BLABS_ACCEL must be one of auto, kvm, tcg"):
        await resolve_accel_async("fast")


async def test_auto_without_a_kvm_device_is_slow_mode_naming_the_device(tmp_path):
    missing = tmp_path / "kvm"
    choice = await resolve_accel_async("auto", kvm_device=missing)
    assert (choice.accel, choice.slow_mode) == ("tcg", True)
    assert str(missing) in choice.reason


@pytest.mark.qemu
async def test_probe_passes_when_the_accelerator_really_runs_code():
    result = await probe_kvm_async(accel="tcg")
    assert result.works, result.detail


@pytest.mark.qemu
@pytest.mark.skipif(not KVM.exists(), reason="no /dev/kvm on this host")
async def test_auto_probes_once_and_caches_the_verdict_per_host(tmp_path):
    """On hosts whose /dev/kvm cannot run guests (these), auto means TCG with a reason."""
    cache = tmp_path / "accel.json"
    choice = await resolve_accel_async("auto", cache_file=cache)
    data = json.loads(cache.read_text())
    assert data["key"] == probe_cache_key("qemu-system-x86_64")
    assert data["works"] == (choice.accel == "kvm")
    if choice.accel == "tcg":
        assert choice.slow_mode is True
        assert "KVM is unusable" in choice.reason and "test guest" in choice.reason


async def test_a_cached_verdict_is_used_instead_of_probing_again(tmp_path):
    if not KVM.exists():
        pytest.skip("no /dev/kvm on this host")
    cache = tmp_path / "accel.json"
    key = probe_cache_key("qemu-system-x86_64")
    cache.write_text(json.dumps({"key": key, "works": True, "detail": "planted"}))
    choice = await resolve_accel_async("auto", cache_file=cache)
    assert choice.accel == "kvm" and "planted" in choice.reason


async def test_a_verdict_cached_for_another_host_or_qemu_is_ignored(tmp_path):
    if not KVM.exists():
        pytest.skip("no /dev/kvm on this host")
    cache = tmp_path / "accel.json"
    cache.write_text(json.dumps({"key": "other-host", "works": False, "detail": "planted"}))
    # A broken QEMU binary makes the fresh probe fail fast, with its own reason.
    choice = await resolve_accel_async(
        "auto", cache_file=cache, qemu_binary=str(tmp_path / "no-qemu")
    )
    assert "planted" not in choice.reason and "cannot run" in choice.reason
