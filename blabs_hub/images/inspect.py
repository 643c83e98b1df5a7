"""What an uploaded file is, decided from its bytes, and whether we accept it.

:func:`inspect_file` is the only I/O here: it feeds the file to every oslo.utils format
inspector at once (the inspector OpenStack adopted after CVE-2024-32498) and reads the
last sector for a VHD footer, because a *fixed* VHD has no header: it is raw data with a
512-byte footer, and every inspector calls it raw. The decisions are pure functions of the
result (:func:`image_verdict`, :func:`qemu_info_verdict`) and are unit-tested without files.
"""

import struct
from dataclasses import dataclass
from dataclasses import field as _field

from oslo_utils.imageutils import format_inspector as fi

# What each accepted format is called by qemu-img, and what it is stored as after import.
QEMU_NAMES = {"qcow2": "qcow2", "raw": "raw", "vhd": "vpc", "vhdx": "vhdx"}
STORED_AS = {"qcow2": "qcow2", "raw": "raw", "vhd": "qcow2", "vhdx": "qcow2"}
# The inspector's "gpt" is a raw disk with a partition table in its first sector.
RAW_LIKE = {"raw", "gpt"}

VHD_FOOTER_SIZE = 512
VHD_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}

SAFETY_WORDS = {
    "backing_file": "it has a backing file (it would make QEMU read another file on this server)",
    "data_file": "it keeps its data in an external data file (another file on this server)",
    "unknown_features": "it uses qcow2 features this server does not know",
}


@dataclass(frozen=True)
class VHDFooter:
    disk_type: str
    current_size: int


@dataclass(frozen=True)
class Inspection:
    """Everything the verdict needs, as plain data."""

    file_size: int
    matches: tuple[str, ...] = ()
    virtual_size: int = 0
    safety_failures: tuple[str, ...] = ()
    footer: VHDFooter | None = None
    # The VHD disk type in a dynamic VHD's header copy (a differencing VHD has a parent).
    vhd_header_type: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str = ""
    format: str | None = None  # our name: qcow2 | raw | vhd | vhdx
    virtual_size: int = 0
    field: str | None = None
    details: dict = _field(default_factory=dict)

    @property
    def qemu_format(self) -> str:
        return QEMU_NAMES[self.format]

    @property
    def needs_conversion(self) -> bool:
        return STORED_AS[self.format] != self.format


def parse_vhd_footer(sector: bytes) -> VHDFooter | None:
    """A VHD footer (or a dynamic VHD's header copy), if the sector is one with a valid checksum.

    The checksum is the one's complement of the byte sum with the checksum field as zero,
    so random data that happens to say ``conectix`` is not taken for a VHD.
    """
    if len(sector) < VHD_FOOTER_SIZE or not sector.startswith(b"conectix"):
        return None
    sector = sector[:VHD_FOOTER_SIZE]
    (stored,) = struct.unpack(">I", sector[64:68])
    total = sum(sector[:64]) + sum(sector[68:])
    if (~total) & 0xFFFFFFFF != stored:
        return None
    (current_size,) = struct.unpack(">Q", sector[48:56])
    (disk_type,) = struct.unpack(">I", sector[60:64])
    return VHDFooter(VHD_TYPES.get(disk_type, f"unknown ({disk_type})"), current_size)


def inspect_file(path: str, chunk_size: int = 64 * 1024) -> Inspection:
    """Run every format inspector over ``path`` until they have all decided; read the footer.

    Most formats are decided within the first megabytes; only a file that nothing
    recognises is read further, until the inspectors that wait for more data give up.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - VHD_FOOTER_SIZE))
            footer = parse_vhd_footer(f.read(VHD_FOOTER_SIZE))
            f.seek(0)
            head = f.read(VHD_FOOTER_SIZE)
            f.seek(0)
            wrapper = fi.InspectWrapper(f)
            try:
                while wrapper.formats is None:
                    if not wrapper.read(chunk_size):
                        break
            finally:
                wrapper.close()
            found = wrapper.formats or []
    except fi.ImageFormatError as e:
        return Inspection(file_size=0, error=str(e))
    except OSError as e:
        return Inspection(file_size=0, error=f"cannot read the file: {e.strerror}")

    failures = []
    for inspector in found:
        if str(inspector) in RAW_LIKE:
            # The "gpt" check judges the guest's partition table, which QEMU never reads
            # as a host file reference when it opens the disk with -f raw: not our concern.
            continue
        try:
            inspector.safety_check()
        except fi.SafetyCheckFailed as e:
            failures.extend(sorted(e.failures))
        except fi.ImageFormatError as e:
            failures.append(f"unreadable: {e}")
    header_copy = parse_vhd_footer(head)
    return Inspection(
        file_size=size,
        matches=tuple(sorted(str(i) for i in found)),
        virtual_size=max((i.virtual_size for i in found), default=0),
        safety_failures=tuple(failures),
        footer=footer,
        vhd_header_type=header_copy.disk_type if header_copy else None,
    )


def _reject(message: str, **details) -> Verdict:
    return Verdict(False, message, field="file", details=details)


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"


def image_verdict(ins: Inspection, allowed: list[str] | tuple[str, ...], max_virtual: int):
    """Accept exactly one known, allowed, safe format with a virtual size within the limit."""
    if ins.error:
        return _reject(f"the file is not a disk image this server can read: {ins.error}")
    if ins.file_size == 0:
        return _reject("the file is empty")
    matches = set(ins.matches)
    fmt_virtual = ins.virtual_size
    if ins.footer is not None and ins.footer.disk_type == "fixed" and matches <= RAW_LIKE:
        # A fixed VHD: raw data, then the footer. Only the footer tells, so it decides.
        matches = {"vhd"}
        fmt_virtual = ins.footer.current_size
    elif ins.footer is not None and not matches & {"vhd"}:
        others = ", ".join(sorted(matches))
        return _reject(
            f"the file matches more than one format (a VHD footer and {others}): "
            "refusing to guess which one it is",
            matches=sorted(matches | {"vhd"}),
        )
    if matches <= RAW_LIKE and "gpt" in matches:
        matches = {"raw"}
    if len(matches) != 1:
        return _reject(
            f"the file matches more than one format ({', '.join(sorted(matches))}): "
            "refusing to guess which one it is",
            matches=sorted(matches),
        )
    (fmt,) = matches
    if fmt not in allowed:
        return _reject(
            f"{fmt} images are not accepted here (allowed: {', '.join(allowed)})", format=fmt
        )
    if ins.safety_failures:
        words = "; ".join(SAFETY_WORDS.get(f, f) for f in ins.safety_failures)
        return _reject(f"unsafe {fmt} image: {words}", failures=list(ins.safety_failures))
    vhd_type = ins.footer.disk_type if ins.footer else ins.vhd_header_type
    if fmt == "vhd" and vhd_type not in ("fixed", "dynamic"):
        return _reject(f"only fixed and dynamic VHDs are accepted, this one is {vhd_type}")
    if fmt == "raw":
        fmt_virtual = ins.file_size
    if fmt_virtual > max_virtual:
        return Verdict(
            False,
            f"the image's virtual size {_gib(fmt_virtual)} is above the limit of "
            f"{_gib(max_virtual)}",
            field="virtual_size",
            details={"virtual_size": fmt_virtual, "max_virtual_size": max_virtual},
        )
    return Verdict(True, format=fmt, virtual_size=fmt_virtual)


def qemu_info_verdict(info: dict, qemu_format: str, max_virtual: int) -> Verdict:
    """Check qemu-img's own reading (with an explicit ``-f``) against what we expect.

    The inspector already refused backing and data files; qemu-img is asked again because it
    is the program that will open the file for every lab.
    """
    fmt = info.get("format")
    if fmt != qemu_format:
        return _reject(f"qemu-img reads this file as {fmt}, not {qemu_format}")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        return _reject("unsafe image: qemu-img reports a backing file")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file") or specific.get("data-file-raw"):
        return _reject("unsafe image: qemu-img reports an external data file")
    if info.get("encrypted"):
        return _reject("encrypted images cannot boot without their key: upload it unencrypted")
    if (info.get("children") or []) and any(
        c.get("name") not in ("file",) for c in info.get("children", [])
    ):
        return _reject("unsafe image: qemu-img reports more than one file behind it")
    virtual = int(info.get("virtual-size") or 0)
    if virtual <= 0:
        return _reject("qemu-img reports no virtual size")
    if virtual > max_virtual:
        return Verdict(
            False,
            f"the image's virtual size {_gib(virtual)} is above the limit of {_gib(max_virtual)}",
            field="virtual_size",
            details={"virtual_size": virtual, "max_virtual_size": max_virtual},
        )
    return Verdict(True, format=None, virtual_size=virtual)


def check_verdict(returncode: int, report: dict | None) -> Verdict:
    """``qemu-img check`` on a qcow2: corruption (a truncated file, say) is a rejection.

    rc 0 is clean, 3 only leaked clusters (harmless: space, not data); 2 is corruption,
    1 means the check itself failed.
    """
    if returncode in (0, 3):
        return Verdict(True)
    report = report or {}
    if returncode == 2:
        n = report.get("corruptions", "some")
        return _reject(f"the qcow2 image is corrupt ({n} errors): was the upload cut short?")
    return _reject("qemu-img could not check the image: is the file complete?")
