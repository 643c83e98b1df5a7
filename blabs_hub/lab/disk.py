"""A lab's own disk: a qcow2 overlay over the template's read-only base image.

Creating an overlay takes milliseconds whatever the base size, and every write the student
makes stays in the overlay, which is deleted when the lab ends. Formats are always stated
(``-f qcow2 -F <base format>``): never let qemu-img guess the format of a user's image — a
raw image that looks like qcow2 could name a backing file on the host.
"""

import os
import subprocess
from pathlib import Path

from blabs_hub.lab.spec import IMAGE_FORMATS


class DiskError(RuntimeError):
    """The lab's disk cannot be prepared; the message names the file and the cause."""


def overlay_argv(
    base: Path, base_format: str, overlay: Path, qemu_img: str = "qemu-img"
) -> list[str]:
    """The ``qemu-img create`` command of an overlay (pure; the base path made absolute)."""
    if base_format not in IMAGE_FORMATS:
        raise ValueError(f"base image format must be one of {', '.join(IMAGE_FORMATS)}")
    return [
        qemu_img,
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        base_format,
        "-b",
        str(Path(base).absolute()),
        str(overlay),
    ]


def check_base_image(base: Path) -> None:
    """Fail with a message naming ``base`` unless it is a readable regular file."""
    base = Path(base)
    if not base.exists():
        raise DiskError(f"base image {base} does not exist")
    if not base.is_file():
        raise DiskError(f"base image {base} is not a regular file")
    if not os.access(base, os.R_OK):
        raise DiskError(f"base image {base} is not readable")
    try:
        with open(base, "rb") as f:
            f.read(1)
    except OSError as e:
        raise DiskError(f"base image {base} cannot be read: {e.strerror}") from None


def create_overlay(
    base: Path, base_format: str, overlay: Path, *, qemu_img: str = "qemu-img"
) -> Path:
    """Create ``overlay`` backed by ``base``; replaces a stale overlay from a previous run."""
    check_base_image(base)
    overlay = Path(overlay)
    remove_overlay(overlay)
    result = subprocess.run(
        overlay_argv(base, base_format, overlay, qemu_img),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        remove_overlay(overlay)
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
        raise DiskError(f"cannot create the overlay over {base}: {detail or result.returncode}")
    return overlay


def remove_overlay(overlay: Path) -> None:
    """Delete the overlay if it exists (the student's changes go with it, by design)."""
    Path(overlay).unlink(missing_ok=True)
