"""What one lab is made of, as plain data that crosses process and pod boundaries.

The hub side builds a :class:`LabSpec` from a catalog template and hands it to the lab as
JSON (an environment variable or a file); the lab side never reads the catalog database.
:class:`LabPaths` is the layout of a lab's scratch folder, shared by the launcher (which
creates the files) and the console (which connects to the SPICE socket).
"""

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

FIRMWARES = ("bios", "uefi", "uefi-secure-tpm")
DISK_BUSES = ("virtio", "sata")
NETWORKS = ("internet", "none")
GUEST_PROFILES = ("windows", "generic")
# run: a student's lab (resumes from the template's ready state when there is a usable one);
# prepare: an admin's preparation lab, cold-booted, whose state can be saved as ready state.
MODES = ("run", "prepare")
# qemu-img / QEMU names of the base image formats a lab can boot from.
IMAGE_FORMATS = ("qcow2", "raw", "vpc", "vhdx")

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class LabSpec:
    """The machine a lab runs: base image and hardware, from an admin's template."""

    slug: str
    image_path: str
    image_format: str
    cpus: int = 2
    memory_mib: int = 4096
    firmware: str = "bios"
    disk_bus: str = "sata"
    network: str = "internet"
    guest_profile: str = "windows"
    max_session_minutes: int | None = None
    mode: str = "run"
    # The template's ready-state folder (see blabs_hub.lab.readystate); None: always cold boot.
    ready_dir: str | None = None

    def __post_init__(self):
        for name, allowed in (
            ("mode", MODES),
            ("firmware", FIRMWARES),
            ("disk_bus", DISK_BUSES),
            ("network", NETWORKS),
            ("guest_profile", GUEST_PROFILES),
            ("image_format", IMAGE_FORMATS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if not 1 <= self.cpus <= 64:
            raise ValueError("cpus must be between 1 and 64")
        if not 64 <= self.memory_mib <= 512 * 1024:
            raise ValueError("memory_mib must be between 64 and 524288")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LabSpec":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown lab spec fields: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass(frozen=True)
class LabPaths:
    """The files of one running lab, all inside its scratch folder ``workdir``."""

    workdir: Path

    @property
    def overlay(self) -> Path:
        """The lab's own disk: a qcow2 overlay over the read-only base image."""
        return self.workdir / "disk.qcow2"

    @property
    def spice_socket(self) -> Path:
        return self.workdir / "spice.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.workdir / "qmp.sock"

    @property
    def status_file(self) -> Path:
        """JSON lines written by the launcher: one per stage, read for spawn progress."""
        return self.workdir / "status.jsonl"

    @property
    def serial_log(self) -> Path:
        return self.workdir / "serial.log"

    @property
    def console_events(self) -> Path:
        """JSON lines written by the console: connects, disconnects, last input."""
        return self.workdir / "console.jsonl"

    def check(self) -> None:
        for sock in (self.spice_socket, self.qmp_socket):
            if len(str(sock).encode()) > MAX_SOCKET_PATH:
                raise ValueError(
                    f"lab folder {self.workdir} is too deep for a unix socket path "
                    f"({len(str(sock))} > {MAX_SOCKET_PATH} bytes): use a shorter labs_dir"
                )
