"""From a complete upload to a bootable base image: vet, convert if needed, re-inspect.

Nothing here trusts the uploader: the format comes from :func:`inspect.inspect_file`, every
qemu-img call names it with ``-f`` and runs under the store's limits, and a converted file
is vetted again as if it had been uploaded. Slow Python work (reading headers) runs in an
executor, qemu-img in a subprocess: the caller's event loop never blocks.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from . import qemu_img
from .config import GIB, ImageStore
from .inspect import (
    QEMU_NAMES,
    STORED_AS,
    Verdict,
    check_verdict,
    image_verdict,
    inspect_file,
    qemu_info_verdict,
)


class ImageRejected(Exception):
    """The file is not an image we accept; ``message`` says why, to the uploader."""

    def __init__(self, message: str, field: str | None = "file", **details):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> "ImageRejected":
        return cls(verdict.message, verdict.field, **verdict.details)


@dataclass(frozen=True)
class Vetted:
    """An accepted file: its format (our name) and qemu-img's virtual size."""

    format: str
    virtual_size: int

    @property
    def qemu_format(self) -> str:
        return QEMU_NAMES[self.format]

    @property
    def stored_format(self) -> str:
        return STORED_AS[self.format]

    @property
    def needs_conversion(self) -> bool:
        return self.stored_format != self.format


def header_limits(store: ImageStore) -> qemu_img.Limits:
    return qemu_img.Limits(
        store.qemu_img_cpu_seconds, store.qemu_img_memory, store.qemu_img_timeout_seconds
    )


def convert_limits(store: ImageStore) -> qemu_img.Limits:
    seconds = store.convert_timeout_minutes * 60
    # qemu-img convert maps a few buffers per coroutine and thread: give it 2 GiB at least.
    return qemu_img.Limits(seconds, max(store.qemu_img_memory, 2 * GIB), seconds)


async def vet(
    path: str, store: ImageStore, executor: Executor | None, allowed: list[str] | None = None
) -> Vetted:
    """Inspect, then ask qemu-img (explicit format, limits); raise :class:`ImageRejected`."""
    loop = asyncio.get_running_loop()
    inspection = await loop.run_in_executor(executor, inspect_file, path)
    verdict = image_verdict(inspection, allowed or store.allowed_formats, store.max_virtual_size)
    if not verdict.ok:
        raise ImageRejected.from_verdict(verdict)
    limits = header_limits(store)
    try:
        info = await qemu_img.run(qemu_img.info_argv(path, verdict.qemu_format), limits)
    except qemu_img.QemuImgTimeout as e:
        raise ImageRejected(str(e)) from None
    if info.returncode != 0:
        raise ImageRejected(f"qemu-img cannot read this file as {verdict.format}: {info.message}")
    checked = qemu_info_verdict(info.json() or {}, verdict.qemu_format, store.max_virtual_size)
    if not checked.ok:
        raise ImageRejected.from_verdict(checked)
    if verdict.format == "qcow2":
        try:
            result = await qemu_img.run(qemu_img.check_argv(path, "qcow2"), limits)
        except qemu_img.QemuImgTimeout as e:
            raise ImageRejected(str(e)) from None
        ok = check_verdict(result.returncode, result.json())
        if not ok.ok:
            raise ImageRejected.from_verdict(ok)
    return Vetted(verdict.format, checked.virtual_size)


async def convert(
    src: str,
    vetted: Vetted,
    dest: str,
    store: ImageStore,
    executor: Executor | None,
    on_progress: Callable[[float], None] | None = None,
) -> Vetted:
    """Convert a vetted VHD/VHDX to qcow2 at ``dest`` and vet the result as an upload."""
    try:
        result = await qemu_img.run(
            qemu_img.convert_argv(src, vetted.qemu_format, dest),
            convert_limits(store),
            on_progress,
        )
    except qemu_img.QemuImgTimeout as e:
        raise ImageRejected(str(e)) from None
    if result.returncode != 0:
        raise ImageRejected(f"converting {vetted.format} to qcow2 failed: {result.message}")
    out = await vet(dest, store, executor, allowed=["qcow2"])
    if out.virtual_size != vetted.virtual_size:
        raise ImageRejected(
            f"the converted image is {out.virtual_size} bytes, the upload {vetted.virtual_size}"
        )
    return out
