"""Reading and writing credentials: thin I/O around the pure rules in passwords/lockout.

Request-time functions take the hub's own SQLAlchemy session (``handler.db``), so our
writes share JupyterHub's connection and transactions: on SQLite a second connection from
the same event loop could wait on a lock the loop itself holds. Only the start-up
migration opens its own engine, before the hub serves anything.

argon2 work runs in a thread (``asyncio.to_thread``) so a burst of logins does not stall
the hub's event loop; every database access stays on the loop's thread.
"""

import asyncio
import enum
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from ... import dbutil
from . import lockout, passwords
from .orm import Credential, utcnow

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "blabs_auth_alembic_version"
BOOTSTRAP_ADMIN = "admin"
# What the product brief asks for; temporary: it must be changed at the first login.
BOOTSTRAP_PASSWORD = "admin"  # noqa: S105

log = logging.getLogger("blabs.auth")


class Outcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"  # unknown user, no password yet, wrong password: one answer for all
    LOCKED = "locked"
    MUST_CHANGE = "must_change"


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    credential: Credential | None = None
    locked_until: datetime | None = None


def migrate_and_bootstrap(db_url: str, initial_password: str, hasher: PasswordHasher) -> bool:
    """Create or upgrade our table; on an empty table create the bootstrap admin.

    Returns True when the bootstrap admin was created. "Empty table" (not "no admin row")
    is the test, so deleting the admin account later does not bring it back at restart.
    """
    engine = dbutil.make_engine(db_url)
    try:
        dbutil.upgrade(engine, MIGRATIONS, VERSION_TABLE)
        with Session(engine) as db, db.begin():
            if db.execute(select(Credential.username).limit(1)).first() is not None:
                return False
            db.add(
                Credential(
                    username=BOOTSTRAP_ADMIN,
                    password_hash=passwords.hash_password(hasher, initial_password),
                    must_change_password=True,
                    grant_admin=True,
                    failed_count=0,
                )
            )
            return True
    finally:
        engine.dispose()


def get(db: Session, username: str) -> Credential | None:
    return db.get(Credential, username)


def all_credentials(db: Session) -> dict[str, Credential]:
    return {c.username: c for c in db.execute(select(Credential)).scalars()}


def ensure_row(db: Session, username: str) -> Credential:
    """The account's row, created without a password if missing.

    Such an account cannot sign in until an admin issues a temporary password; it is not
    flagged, so API tokens an admin mints for it (bots, tests) keep working.
    """
    cred = db.get(Credential, username)
    if cred is None:
        cred = Credential(username=username, must_change_password=False, failed_count=0)
        db.add(cred)
        db.commit()
    return cred


async def check_login(
    db: Session,
    username: str,
    password: str,
    *,
    hasher: PasswordHasher,
    policy: lockout.LockoutPolicy,
    max_length: int,
    count_failure: bool = True,
) -> LoginResult:
    """Check ``username``/``password``, update the lockout counters, rehash if needed.

    Every path that can answer INVALID does one argon2 verification, so an unknown name, an
    account without a password, a wrong password and an over-long password take about the
    same time. A locked account is refused before the password is looked at: a correct
    guess during the lock must not be confirmable.
    """
    cred = db.get(Credential, username) if username else None
    now = utcnow()
    if cred is not None:
        until = lockout.locked_until(cred.counters, now)
        if until is not None:
            return LoginResult(Outcome.LOCKED, cred, until)
    stored = cred.password_hash if cred is not None else None
    if len(password) > max_length or not password:
        # Cannot be anyone's password; spend the same time as a real check.
        stored, password = None, password[:max_length]
    ok = await asyncio.to_thread(passwords.verify_password, hasher, stored, password)
    if cred is None:
        return LoginResult(Outcome.INVALID)
    db.refresh(cred)  # counters may have moved while we hashed
    if not ok:
        if count_failure:
            cred.counters = lockout.after_failure(cred.counters, utcnow(), policy)
            db.commit()
        until = lockout.locked_until(cred.counters, utcnow())
        if until is not None:
            return LoginResult(Outcome.LOCKED, cred, until)
        return LoginResult(Outcome.INVALID, cred)
    cred.counters = lockout.after_success(cred.counters)
    if passwords.needs_rehash(hasher, cred.password_hash):
        cred.password_hash = await asyncio.to_thread(passwords.hash_password, hasher, password)
        log.info("Rehashed the password of %r with the current argon2 parameters", username)
    db.commit()
    if cred.must_change_password:
        return LoginResult(Outcome.MUST_CHANGE, cred)
    return LoginResult(Outcome.OK, cred)


async def set_password(
    db: Session, cred: Credential, new: str, *, hasher: PasswordHasher, must_change: bool
) -> None:
    """Store ``new`` for ``cred``; ``must_change`` marks it temporary."""
    cred.password_hash = await asyncio.to_thread(passwords.hash_password, hasher, new)
    cred.must_change_password = must_change
    cred.password_changed_at = utcnow()
    cred.counters = lockout.Counters()
    db.commit()


def unlock(db: Session, cred: Credential) -> None:
    cred.counters = lockout.Counters()
    db.commit()


def delete(db: Session, username: str) -> None:
    cred = db.get(Credential, username)
    if cred is not None:
        db.delete(cred)
        db.commit()
