"""Ready states: a template's saved VM (memory + devices + frozen disk), and when one is usable.

An admin prepares a template once; the preparation lab's memory/device state is saved through
QMP migration and its overlay becomes a read-only layer over the base image. Every student lab
then puts its own overlay on that layer and starts QEMU with the state as incoming migration.

A ready state is a folder beside the base image, ``<image>.ready/<template slug>/``:

- ``layer.qcow2``: the frozen preparation overlay (read-only, backed by the base image with its
  format stated), the disk the saved memory belongs to;
- ``state.bin``: QEMU's migration stream (RAM, CPU and device state);
- ``efivars.fd``: the UEFI variable store, for UEFI templates;
- ``meta.json``: written last, so a folder without it is an unfinished save. It records what
  the state needs: the QEMU version, the machine arguments (normalized, see
  :func:`machine_key`), the template's machine fields, and the state file's size and sha256.

Whether a state is usable is :func:`check_ready_state`, a pure function of that metadata and
the current spec, QEMU version and argv. Migration streams are only guaranteed to load into the
same QEMU version with the same machine type and devices (``q35`` is an alias for the newest
machine version, so a QEMU upgrade silently changes it), hence the strict rules.
"""

import hashlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from blabs_hub.lab.spec import LabSpec

META_VERSION = 1
# Template fields that define the machine the state belongs to; others (title, session
# limits) may change freely after preparation.
MACHINE_FIELDS = (
    "image_path",
    "image_format",
    "cpus",
    "memory_mib",
    "firmware",
    "disk_bus",
    "network",
    "guest_profile",
)
# Options that only connect the host to QEMU (monitors) or are added for the resume itself:
# they carry no guest state, so they may differ between preparation and resume.
HOST_ONLY_OPTIONS = ("-qmp", "-incoming")
HOST_ONLY_FLAGS = ("-S",)
WORKDIR = "{workdir}"


@dataclass(frozen=True)
class ReadyPaths:
    """The files of one ready state (see the module docstring)."""

    dir: Path

    @property
    def layer(self) -> Path:
        return self.dir / "layer.qcow2"

    @property
    def state(self) -> Path:
        return self.dir / "state.bin"

    @property
    def efivars(self) -> Path:
        return self.dir / "efivars.fd"

    @property
    def meta(self) -> Path:
        return self.dir / "meta.json"


@dataclass(frozen=True)
class Verdict:
    """Whether a ready state can be resumed; ``reason`` says why not, for logs and the UI."""

    usable: bool
    reason: str = ""


def ready_dir_for(image_path: str | Path, slug: str) -> Path:
    """Where the ready state of template ``slug`` over ``image_path`` lives (pure)."""
    image = Path(image_path)
    return image.parent / f"{image.name}.ready" / slug


def save_request_file(ready_dir: str | Path) -> Path:
    """Touched by the blabs service ("Save as ready state"); the preparation lab polls it."""
    ready_dir = Path(ready_dir)
    return ready_dir.parent / f"{ready_dir.name}.save-request"


def save_status_file(ready_dir: str | Path) -> Path:
    """The preparation lab's last word (running, saving, saved, failed), for the service."""
    ready_dir = Path(ready_dir)
    return ready_dir.parent / f"{ready_dir.name}.save-status.json"


def machine_fields(spec: LabSpec) -> dict:
    """The part of a spec the saved state depends on (pure)."""
    data = asdict(spec)
    return {name: data[name] for name in MACHINE_FIELDS}


def machine_key(argv: list[str], workdir: str | Path) -> list[str]:
    """The argv a state depends on (pure): lab folder paths made generic, host-only options out.

    Paths inside a lab's folder (sockets, overlay, serial log) differ from lab to lab, but
    not what they are; monitors and the ``-incoming``/``-S`` of a resume carry no guest state.
    """
    prefix = str(workdir).rstrip("/")
    key = []
    skip = False
    for arg in argv[1:]:  # the binary's path is not part of the machine
        if skip:
            skip = False
            continue
        if arg in HOST_ONLY_OPTIONS:
            skip = True
            continue
        if arg in HOST_ONLY_FLAGS:
            continue
        key.append(arg.replace(prefix, WORKDIR))
    return key


def state_metadata(
    spec: LabSpec,
    *,
    qemu_version: str,
    argv: list[str],
    workdir: str | Path,
    state_size: int,
    state_sha256: str,
    saved_at: float,
    has_efivars: bool = False,
) -> dict:
    """The ``meta.json`` of a freshly saved state (pure)."""
    return {
        "meta_version": META_VERSION,
        "qemu_version": qemu_version,
        "machine_args": machine_key(argv, workdir),
        "machine": machine_fields(spec),
        "state_size": state_size,
        "state_sha256": state_sha256,
        "saved_at": saved_at,
        "efivars": has_efivars,
    }


def _first_difference(saved: list[str], current: list[str]) -> str:
    for i, (a, b) in enumerate(zip(saved, current, strict=False)):
        if a != b:
            return f"argument {i + 1} was {a!r}, is now {b!r}"
    return f"{len(saved)} arguments then, {len(current)} now"


def check_template(meta: dict | None, spec: LabSpec) -> Verdict:
    """Does the template still describe the machine that was saved? (pure; for UI and API)."""
    if not meta:
        return Verdict(False, "no ready state has been saved for this template")
    if meta.get("meta_version") != META_VERSION:
        return Verdict(False, f"ready state format {meta.get('meta_version')!r} is not known")
    if spec.firmware == "uefi-secure-tpm":
        return Verdict(False, "templates with a TPM cannot be resumed (swtpm state is not saved)")
    saved = meta.get("machine") or {}
    changed = [
        f"{name} {saved.get(name)!r} → {value!r}"
        for name, value in machine_fields(spec).items()
        if saved.get(name) != value
    ]
    if changed:
        return Verdict(False, "the template changed after preparation: " + ", ".join(changed))
    return Verdict(True)


def check_ready_state(
    meta: dict | None,
    spec: LabSpec,
    *,
    qemu_version: str,
    argv: list[str],
    workdir: str | Path,
    state_size: int | None,
    layer_exists: bool = True,
) -> Verdict:
    """Can this lab resume from the saved state? (pure; file facts are passed in)."""
    verdict = check_template(meta, spec)
    if not verdict.usable:
        return verdict
    if meta.get("qemu_version") != qemu_version:
        return Verdict(
            False,
            f"the state was saved by QEMU {meta.get('qemu_version')!r}, "
            f"this host runs {qemu_version!r}",
        )
    current = machine_key(argv, workdir)
    if meta.get("machine_args") != current:
        diff = _first_difference(meta.get("machine_args") or [], current)
        return Verdict(False, f"the QEMU arguments differ from the saved ones: {diff}")
    if state_size is None:
        return Verdict(False, "the state file is missing")
    if not layer_exists:
        return Verdict(False, "the frozen disk layer is missing")
    if state_size != meta.get("state_size"):
        return Verdict(
            False,
            f"the state file is {state_size} bytes, {meta.get('state_size')} were saved "
            "(truncated or replaced)",
        )
    return Verdict(True)


# --- thin I/O ------------------------------------------------------------------------------


def read_meta(ready: ReadyPaths) -> dict | None:
    """The saved metadata, or None when there is none or it cannot be read."""
    try:
        data = json.loads(ready.meta.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def sha256_file(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_meta(ready: ReadyPaths, meta: dict) -> None:
    """Write ``meta.json`` durably: it is what makes the folder a complete ready state."""
    tmp = ready.meta.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, ready.meta)


def write_save_status(ready_dir: str | Path, record: dict) -> None:
    path = save_status_file(ready_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, path)


def read_save_status(ready_dir: str | Path) -> dict | None:
    try:
        data = json.loads(save_status_file(ready_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def qemu_version(qemu_binary: str) -> str:
    """``QEMU emulator version X (package)``'s first line, e.g. "7.2.13 (Debian 1:7.2+dfsg-7)"."""
    result = subprocess.run(
        [qemu_binary, "--version"], capture_output=True, text=True, timeout=20, check=False
    )
    first = (result.stdout.strip().splitlines() or [""])[0]
    return first.removeprefix("QEMU emulator version ").strip() or f"unknown ({qemu_binary})"


def template_status(image_path: str | Path, spec: LabSpec) -> dict:
    """What the admin pages show: instant start ready or not, and why (reads meta only)."""
    ready_dir = ready_dir_for(image_path, spec.slug)
    meta = read_meta(ReadyPaths(ready_dir))
    verdict = check_template(meta, spec)
    return {
        "instant_start": verdict.usable,
        "reason": verdict.reason,
        "saved_at": meta.get("saved_at") if meta else None,
        "qemu_version": meta.get("qemu_version") if meta else None,
        "state_size": meta.get("state_size") if meta else None,
        "preparation": read_save_status(ready_dir),
    }
