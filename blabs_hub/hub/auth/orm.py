"""The authenticator's one table, ``blabs_credentials``, in the hub's own database.

One row per local account. JupyterHub's ``users`` table stays the source of truth for who
exists and who is admin; this table only holds what JupyterHub has no place for: the
password hash, the forced-change flag and the lockout counters. Its migration history is
kept in ``blabs_auth_alembic_version`` so it never mixes with JupyterHub's own.
"""

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .lockout import Counters


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Credential(Base):
    """A local account's password state."""

    __tablename__ = "blabs_credentials"

    # JupyterHub's normalized username (no foreign key: users may be created here first,
    # e.g. the bootstrap admin, and JupyterHub creates its row at the first login).
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    # argon2id PHC string; NULL while the account has no password yet (added in the admin
    # panel, waiting for an admin to issue a temporary password).
    password_hash: Mapped[str | None] = mapped_column(Text)
    # Set for temporary passwords (bootstrap, admin-issued): no session, no token use
    # until the owner has chosen their own password.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    # The bootstrap admin becomes a hub admin at its first successful login, then this is
    # cleared so that demoting it later in the admin panel sticks.
    grant_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def counters(self) -> Counters:
        return Counters(self.failed_count or 0, self.first_failed_at, self.locked_until)

    @counters.setter
    def counters(self, value: Counters) -> None:
        self.failed_count = value.failed_count
        self.first_failed_at = value.first_failed_at
        self.locked_until = value.locked_until
