"""Limits of the image store, as traitlets with ``BLABS_*`` defaults (see blabs_hub.config).

The hub passes ``BLABS_*`` variables to the blabs service through the service's
``environment``; the service builds :class:`ImageStore` from them at start.
"""

from traitlets import Integer, List, TraitError, Unicode, default, validate

from ..config import EnvConfigurable, check_range, env_int, env_value

GIB = 1024**3
MIB = 1024**2

# What the inspector may report, and what an admin may allow. "raw" also covers a raw disk
# whose first sector holds a partition table (the inspector calls that "gpt").
KNOWN_FORMATS = ("qcow2", "raw", "vhd", "vhdx")


class ImageStore(EnvConfigurable):
    """What the blabs service accepts as a base image, and how hard it may work on one."""

    max_virtual_size_gb = Integer(
        help="""Largest virtual disk size (GiB) an image may declare. Checked from the
        file's own header before qemu-img reads it, and again from qemu-img's answer.
        Default: ``$BLABS_MAX_IMAGE_VIRTUAL_SIZE_GB`` or 256.""",
    ).tag(config=True)

    @default("max_virtual_size_gb")
    def _default_max_virtual_size_gb(self):
        return env_int("BLABS_MAX_IMAGE_VIRTUAL_SIZE_GB", 256)

    @validate("max_virtual_size_gb")
    def _validate_max_virtual_size_gb(self, proposal):
        return check_range(self, proposal, "BLABS_MAX_IMAGE_VIRTUAL_SIZE_GB", 1, 64 * 1024)

    max_upload_size_gb = Integer(
        help="""Largest file (GiB) an upload may declare. Default:
        ``$BLABS_MAX_UPLOAD_SIZE_GB`` or 256.""",
    ).tag(config=True)

    @default("max_upload_size_gb")
    def _default_max_upload_size_gb(self):
        return env_int("BLABS_MAX_UPLOAD_SIZE_GB", 256)

    @validate("max_upload_size_gb")
    def _validate_max_upload_size_gb(self, proposal):
        return check_range(self, proposal, "BLABS_MAX_UPLOAD_SIZE_GB", 1, 64 * 1024)

    allowed_formats = List(
        Unicode(),
        help="""Formats accepted at upload, by content (never by file name): any of
        qcow2, raw, vhd, vhdx. VHD and VHDX are converted to qcow2 at import.
        Default: ``$BLABS_IMAGE_FORMATS`` (comma-separated) or all four.""",
    ).tag(config=True)

    @default("allowed_formats")
    def _default_allowed_formats(self):
        raw = env_value("BLABS_IMAGE_FORMATS", ",".join(KNOWN_FORMATS))
        return [f.strip().lower() for f in raw.split(",") if f.strip()]

    @validate("allowed_formats")
    def _validate_allowed_formats(self, proposal):
        value = list(proposal["value"])
        unknown = sorted(set(value) - set(KNOWN_FORMATS))
        if unknown or not value:
            raise TraitError(
                f"BLABS_IMAGE_FORMATS={','.join(value)!r}: choose from {', '.join(KNOWN_FORMATS)}"
            )
        return value

    chunk_size_mb = Integer(
        help="""Largest body (MiB) of one upload request. Browsers and the CLI send chunks
        of this size; a dropped connection loses at most one chunk's progress.
        Default: ``$BLABS_UPLOAD_CHUNK_MB`` or 16.""",
    ).tag(config=True)

    @default("chunk_size_mb")
    def _default_chunk_size_mb(self):
        return env_int("BLABS_UPLOAD_CHUNK_MB", 16)

    @validate("chunk_size_mb")
    def _validate_chunk_size_mb(self, proposal):
        return check_range(self, proposal, "BLABS_UPLOAD_CHUNK_MB", 1, 1024)

    qemu_img_cpu_seconds = Integer(
        help="""CPU seconds qemu-img may use to read an image's header (info, check).
        Default: ``$BLABS_QEMU_IMG_CPU_SECONDS`` or 30.""",
    ).tag(config=True)

    @default("qemu_img_cpu_seconds")
    def _default_qemu_img_cpu_seconds(self):
        return env_int("BLABS_QEMU_IMG_CPU_SECONDS", 30)

    @validate("qemu_img_cpu_seconds")
    def _validate_qemu_img_cpu_seconds(self, proposal):
        return check_range(self, proposal, "BLABS_QEMU_IMG_CPU_SECONDS", 1, 3600)

    qemu_img_memory_mb = Integer(
        help="""Address space (MiB) qemu-img may map, as OpenStack does for untrusted
        images. Default: ``$BLABS_QEMU_IMG_MEMORY_MB`` or 1024.""",
    ).tag(config=True)

    @default("qemu_img_memory_mb")
    def _default_qemu_img_memory_mb(self):
        return env_int("BLABS_QEMU_IMG_MEMORY_MB", 1024)

    @validate("qemu_img_memory_mb")
    def _validate_qemu_img_memory_mb(self, proposal):
        return check_range(self, proposal, "BLABS_QEMU_IMG_MEMORY_MB", 128, 64 * 1024)

    qemu_img_timeout_seconds = Integer(
        help="""Wall-clock seconds for qemu-img info/check before it is killed.
        Default: ``$BLABS_QEMU_IMG_TIMEOUT_SECONDS`` or 60.""",
    ).tag(config=True)

    @default("qemu_img_timeout_seconds")
    def _default_qemu_img_timeout_seconds(self):
        return env_int("BLABS_QEMU_IMG_TIMEOUT_SECONDS", 60)

    @validate("qemu_img_timeout_seconds")
    def _validate_qemu_img_timeout_seconds(self, proposal):
        return check_range(self, proposal, "BLABS_QEMU_IMG_TIMEOUT_SECONDS", 1, 3600)

    convert_timeout_minutes = Integer(
        help="""Wall-clock (and CPU) minutes a VHD/VHDX → qcow2 conversion may take; a 40 GB
        image converts in about two minutes on a local disk.
        Default: ``$BLABS_CONVERT_TIMEOUT_MINUTES`` or 240.""",
    ).tag(config=True)

    @default("convert_timeout_minutes")
    def _default_convert_timeout_minutes(self):
        return env_int("BLABS_CONVERT_TIMEOUT_MINUTES", 240)

    @validate("convert_timeout_minutes")
    def _validate_convert_timeout_minutes(self, proposal):
        return check_range(self, proposal, "BLABS_CONVERT_TIMEOUT_MINUTES", 1, 24 * 60)

    stale_upload_hours = Integer(
        help="""Unfinished uploads untouched for this long are removed (file and row).
        Default: ``$BLABS_STALE_UPLOAD_HOURS`` or 48.""",
    ).tag(config=True)

    @default("stale_upload_hours")
    def _default_stale_upload_hours(self):
        return env_int("BLABS_STALE_UPLOAD_HOURS", 48)

    @validate("stale_upload_hours")
    def _validate_stale_upload_hours(self, proposal):
        return check_range(self, proposal, "BLABS_STALE_UPLOAD_HOURS", 1, 24 * 365)

    @property
    def max_virtual_size(self) -> int:
        return self.max_virtual_size_gb * GIB

    @property
    def max_upload_size(self) -> int:
        return self.max_upload_size_gb * GIB

    @property
    def chunk_size(self) -> int:
        return self.chunk_size_mb * MIB

    @property
    def qemu_img_memory(self) -> int:
        return self.qemu_img_memory_mb * MIB
