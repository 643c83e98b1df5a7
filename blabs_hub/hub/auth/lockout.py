"""Login lockout decisions: pure functions over one account's counters and the time.

The counters live in the credentials row (``failed_count``, ``first_failed_at``,
``locked_until``), so a lockout survives a hub restart and holds across hub replicas
sharing a database. The policy is a fixed window: ``threshold`` failures within
``window`` of the first one lock the account for ``duration``. A success, an expired
window or an admin's unlock clears the counters.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    window: timedelta = timedelta(minutes=15)
    duration: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Counters:
    """The lockout state of one account, as stored."""

    failed_count: int = 0
    first_failed_at: datetime | None = None
    locked_until: datetime | None = None


def as_utc(value: datetime | None) -> datetime | None:
    """Databases hand back naive datetimes (SQLite always); ours are all UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def locked_until(counters: Counters, now: datetime) -> datetime | None:
    """When the account's lock lifts, or None if it may try to log in now."""
    until = as_utc(counters.locked_until)
    if until is not None and until > now:
        return until
    return None


def after_failure(counters: Counters, now: datetime, policy: LockoutPolicy) -> Counters:
    """The counters after one more failed login at ``now``; sets ``locked_until`` when
    this failure reaches the threshold."""
    first = as_utc(counters.first_failed_at)
    expired_lock = as_utc(counters.locked_until) is not None and locked_until(counters, now) is None
    if first is None or now - first > policy.window or expired_lock:
        counters = Counters(failed_count=0, first_failed_at=now, locked_until=None)
        first = now
    count = counters.failed_count + 1
    lock = now + policy.duration if count >= policy.threshold else None
    return replace(counters, failed_count=count, first_failed_at=first, locked_until=lock)


def after_success(_counters: Counters) -> Counters:
    return Counters()


def lock_message(until: datetime) -> str:
    """What a locked-out user reads: when to try again, in UTC (the hub has no user zone)."""
    return (
        "Too many failed logins: this account is locked until "
        f"{until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC. Try again then, or ask an admin "
        "to unlock it."
    )
