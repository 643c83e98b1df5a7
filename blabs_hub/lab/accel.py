"""Choosing KVM or TCG for a lab, and proving KVM works before trusting it.

The presence of ``/dev/kvm`` proves nothing: on some hosts it is a software layer where QEMU
starts with ``-accel kvm`` and the guest then dies with "KVM internal error … emulation
failure", or hang. So ``auto`` boots a tiny VM (SeaBIOS and a 512-byte boot sector that
switches to protected mode) with the CPU model labs use under KVM, waits for the marker it
writes to its serial port, and asks QMP whether it is still running.
The verdict is cached per host (kernel, QEMU binary) in a small JSON file and in memory,
because the probe costs up to a few seconds and the answer does not change between labs.

When KVM is not used, labs run under TCG ("slow mode") and the reason is shown to the user.
"""

import asyncio
import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from blabs_hub.lab.qemu import KVM_CPU_MODEL

MODES = ("auto", "kvm", "tcg")
KVM_DEVICE = Path("/dev/kvm")
PROBE_TIMEOUT_SECONDS = 4.0


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator a lab runs with and why; ``slow_mode`` is shown to students."""

    accel: str
    slow_mode: bool
    reason: str


@dataclass(frozen=True)
class ProbeResult:
    works: bool
    detail: str


_memory_cache: dict[str, ProbeResult] = {}


def probe_cache_key(qemu_binary: str) -> str:
    """What the KVM verdict depends on: the host, its kernel and the QEMU build."""
    resolved = shutil.which(qemu_binary) or qemu_binary
    try:
        mtime = int(os.stat(resolved).st_mtime)
    except OSError:
        mtime = 0
    return f"{platform.node()}|{platform.release()}|{resolved}|{mtime}"


# A 512-byte boot sector: real mode writes "R" to COM1, switches to 32-bit protected mode,
# runs an IRET, then writes "P\n" and halts. Assembled with GNU as from:
#   cli; xor ax,ax; mov ds,ax; mov ss,ax; mov sp,0x7c00; mov dx,0x3f8; mov al,'R'; out dx,al
#   lgdt gdt_desc; mov eax,cr0; or eax,1; mov cr0,eax; ljmp 0x08:pm
#   pm: (32-bit) mov ax,0x10; mov ds/es/ss,ax; mov esp,0x7000; pushfd; push 0x08; push after
#   iret; after: mov dx,0x3f8; mov al,'P'; out dx,al; mov al,10; out dx,al; hang: hlt; jmp hang
#   gdt: null, flat code 0x08, flat data 0x10
# On a software /dev/kvm this guest never prints: SeaBIOS or the mode switch dies or hangs,
# which a BIOS idling with nothing to boot would not show.
PROBE_BOOT_CODE = bytes.fromhex(
    "fa31c08ed88ed0bc007cbaf803b052ee0f0116687c0f20c06683c8010f22c0ea247c080066b810008ed88ec0"
    "8ed0bc007000009c6a08683c7c0000cf66baf803b050eeb00aeef4ebfd8db426000000000000000000000000"
    "ffff0000009acf00ffff00000092cf001700507c"
)
PROBE_MARKER = b"RP\n"
# SeaBIOS needs a disk of at least one CHS cylinder to boot from it.
PROBE_DISK_BYTES = 1024 * 1024


def write_probe_disk(path: Path) -> None:
    """Write the probe's bootable raw disk (sparse, 1 MiB)."""
    sector = PROBE_BOOT_CODE.ljust(510, b"\0") + b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(sector)
        f.truncate(PROBE_DISK_BYTES)


def probe_argv(qemu_binary: str, workdir: Path, accel: str = "kvm") -> list[str]:
    """A minimal guest booting the probe disk, with the CPU model labs use under KVM.

    ``accel="tcg"`` exists so that tests can show the probe passes on a working accelerator.
    """
    return [
        qemu_binary,
        "-no-user-config",
        "-nodefaults",
        "-display",
        "none",
        "-machine",
        "q35",
        "-accel",
        accel,
        "-cpu",
        KVM_CPU_MODEL if accel == "kvm" else "qemu64",
        "-m",
        "64",
        "-drive",
        f"file={workdir / 'probe.img'},format=raw,if=virtio,readonly=on",
        "-serial",
        f"file:{workdir / 'serial.log'}",
        "-qmp",
        f"unix:{workdir / 'qmp.sock'},server=on,wait=off",
    ]


async def _query_status(qmp_socket: Path) -> str:
    from qemu.qmp import QMPClient

    client = QMPClient("blabs-kvm-probe")
    await client.connect(str(qmp_socket))
    try:
        status = await client.execute("query-status")
        return str(status["status"])
    finally:
        await client.disconnect()


async def probe_kvm_async(
    qemu_binary: str = "qemu-system-x86_64",
    timeout: float = PROBE_TIMEOUT_SECONDS,
    accel: str = "kvm",
) -> ProbeResult:
    """KVM works if a test guest prints its marker and QMP still says "running"."""
    with tempfile.TemporaryDirectory(prefix="blabs-kvm-probe-") as tmp:
        workdir = Path(tmp)
        write_probe_disk(workdir / "probe.img")
        try:
            proc = await asyncio.create_subprocess_exec(
                *probe_argv(qemu_binary, workdir, accel),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            return ProbeResult(False, f"cannot run {qemu_binary}: {e.strerror}")
        try:
            deadline = time.monotonic() + timeout
            serial = workdir / "serial.log"
            while proc.returncode is None and time.monotonic() < deadline:
                if serial.exists() and PROBE_MARKER in serial.read_bytes():
                    break
                await asyncio.sleep(0.05)
            if proc.returncode is not None:
                err = (await proc.stderr.read()).decode(errors="replace").strip()
                last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
                return ProbeResult(False, f"QEMU with {accel} exited: {last}")
            try:
                status = await asyncio.wait_for(_query_status(workdir / "qmp.sock"), 3)
            except Exception as e:  # noqa: BLE001 - any failure means "not proven"
                status = f"no QMP answer ({type(e).__name__})"
            if status != "running":
                return ProbeResult(False, f"a {accel} test guest stopped with status {status!r}")
            if PROBE_MARKER not in serial.read_bytes():
                return ProbeResult(
                    False, f"a {accel} test guest ran no code to completion within {timeout:g} s"
                )
            return ProbeResult(True, f"a {accel} test guest ran real and protected mode code")
        finally:
            if proc.returncode is None:
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)


def _read_cache(cache_file: Path | None, key: str) -> ProbeResult | None:
    if key in _memory_cache:
        return _memory_cache[key]
    if cache_file is None:
        return None
    try:
        data = json.loads(cache_file.read_text())
        if data.get("key") == key:
            return ProbeResult(bool(data["works"]), str(data["detail"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_cache(cache_file: Path | None, key: str, result: ProbeResult) -> None:
    _memory_cache[key] = result
    if cache_file is None:
        return
    data = {"key": key, "time": time.time(), **asdict(result)}
    with contextlib.suppress(OSError):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cache_file)


def clear_memory_cache() -> None:
    _memory_cache.clear()


async def resolve_accel_async(
    mode: str,
    *,
    qemu_binary: str = "qemu-system-x86_64",
    cache_file: Path | None = None,
    kvm_device: Path = KVM_DEVICE,
) -> AccelChoice:
    """Turn ``auto|kvm|tcg`` into the accelerator to use, probing KVM for ``auto``."""
    if mode not in MODES:
        raise ValueError(f"BLABS_ACCEL must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "tcg":
        return AccelChoice("tcg", True, "BLABS_ACCEL=tcg asks for software emulation")
    if mode == "kvm":
        return AccelChoice("kvm", False, "BLABS_ACCEL=kvm: hardware acceleration (not probed)")
    if not kvm_device.exists():
        return AccelChoice("tcg", True, f"{kvm_device} does not exist on this host")
    if not os.access(kvm_device, os.R_OK | os.W_OK):
        return AccelChoice("tcg", True, f"{kvm_device} is not accessible")
    key = probe_cache_key(qemu_binary)
    result = _read_cache(cache_file, key)
    if result is None:
        result = await probe_kvm_async(qemu_binary)
        _write_cache(cache_file, key, result)
    if result.works:
        return AccelChoice("kvm", False, f"KVM works on this host ({result.detail})")
    return AccelChoice("tcg", True, f"KVM is unusable on this host: {result.detail}")


def resolve_accel(mode: str, **kwargs) -> AccelChoice:
    """Synchronous :func:`resolve_accel_async`, for callers without an event loop."""
    return asyncio.run(resolve_accel_async(mode, **kwargs))
