"""The catalog's tables: disk images, VM templates and the one live settings row.

These live in their own database (``BLABS_DB_URL``), which may be the hub's own PostgreSQL
database in production: every table name starts with ``blabs_`` so nothing collides with
JupyterHub's tables, and the migration history is kept in ``blabs_alembic_version``.
"""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Image(Base):
    """A base disk image in the image store, read-only for every lab that uses it."""

    __tablename__ = "blabs_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # The file inside the image store; never derived from user input.
    filename: Mapped[str | None] = mapped_column(String(255))
    # Stored format after import (qcow2 or raw), and what was uploaded (vhd, vhdx, ...).
    format: Mapped[str | None] = mapped_column(String(16))
    source_format: Mapped[str | None] = mapped_column(String(16))
    virtual_size: Mapped[int | None] = mapped_column(BigInteger)
    actual_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # uploading → inspecting → converting → ready, or failed (with error).
    status: Mapped[str] = mapped_column(String(16), default="uploading")
    error: Mapped[str | None] = mapped_column(Text)
    uploaded_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # While uploading: the upload's secret-free handle (URL id) and the size the client
    # declared; the bytes received so far are the length of the temp file, nothing else.
    upload_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    declared_size: Mapped[int | None] = mapped_column(BigInteger)
    # Progress of the current stage (converting), 0..1; None when there is nothing to show.
    progress: Mapped[float | None] = mapped_column(Float)

    templates: Mapped[list["Template"]] = relationship(back_populates="image")


class Template(Base):
    """An admin-defined lab: which image to boot, and the machine around it."""

    __tablename__ = "blabs_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(30), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    image_id: Mapped[int] = mapped_column(ForeignKey("blabs_images.id"))
    cpus: Mapped[int] = mapped_column(Integer, default=2)
    memory_mib: Mapped[int] = mapped_column(Integer, default=4096)
    # bios | uefi | uefi-secure-tpm
    firmware: Mapped[str] = mapped_column(String(24), default="bios")
    # virtio | sata
    disk_bus: Mapped[str] = mapped_column(String(16), default="sata")
    # internet | none
    network: Mapped[str] = mapped_column(String(16), default="internet")
    # windows | generic
    guest_profile: Mapped[str] = mapped_column(String(16), default="windows")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    max_session_minutes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    image: Mapped[Image] = relationship(back_populates="templates")


class Settings(Base):
    """The live limits, one row (id 1), seeded from :class:`blabs_hub.config.SettingsDefaults`."""

    __tablename__ = "blabs_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    max_concurrent_vms: Mapped[int] = mapped_column(Integer)
    per_user_vm_limit: Mapped[int] = mapped_column(Integer)
    idle_timeout_minutes: Mapped[int] = mapped_column(Integer)
    max_concurrent_starts: Mapped[int] = mapped_column(Integer, server_default="20")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    updated_by: Mapped[str | None] = mapped_column(String(255))


class UsageSession(Base):
    """One lab session, written by the hub side (``hub/spawners/lifecycle.py``).

    A row is opened when a start is attempted and closed when the lab stops or its start
    fails. ``minutes`` is kept on the row (not only derived) so reports are a plain read.
    """

    __tablename__ = "blabs_usage_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(30))
    template: Mapped[str] = mapped_column(String(30), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    minutes: Mapped[float | None] = mapped_column(Float)
    # user | idle | max-session | admin | failure | unknown (see blabs_hub/usage/reasons.py)
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    spawn_seconds: Mapped[float | None] = mapped_column(Float)


class StopIntent(Base):
    """Why someone is about to stop a lab, recorded by whoever asks before they ask.

    The spawner's ``stop()`` does not learn who asked for it; the culler and the stop page
    write a row here first, and the hub's ``lab_stopped`` hook consumes it.
    """

    __tablename__ = "blabs_stop_intents"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    server_name: Mapped[str] = mapped_column(String(30), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
