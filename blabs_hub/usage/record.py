"""Writing usage sessions and stop intents to the catalog database (thin I/O).

The hub's lifecycle hooks call :func:`open_session`, :func:`close_session` and
:func:`record_failure`; whoever stops a lab on purpose may first call
:func:`record_stop_intent` (the culler, the stop page). Every function takes a
:class:`blabs_hub.catalog.Catalog` and is synchronous: callers in an event loop run it in a
thread (:func:`asyncio.to_thread`), as a SQLite write may wait on a lock.
"""

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from ..catalog.orm import StopIntent, UsageSession
from .report import session_minutes

# An intent older than this is stale (its stop never came) and is ignored.
INTENT_TTL = timedelta(minutes=10)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def open_session(
    catalog, user: str, server_name: str, template: str, spawn_seconds: float | None = None
) -> int:
    """A running lab: a new open session row (closing any left open for the same lab)."""
    now = _now()
    with catalog.session() as db, db.begin():
        _close_open(db, user, server_name, now, "unknown", "superseded by a new start")
        row = UsageSession(
            user=user,
            server_name=server_name,
            template=template,
            started_at=now,
            spawn_seconds=spawn_seconds,
        )
        db.add(row)
        db.flush()
        return row.id


def _close_open(db, user, server_name, now, reason, detail=None) -> UsageSession | None:
    rows = db.execute(
        select(UsageSession).where(
            UsageSession.user == user,
            UsageSession.server_name == server_name,
            UsageSession.stopped_at.is_(None),
        )
    ).scalars()
    last = None
    for row in rows:
        row.stopped_at = now
        row.minutes = session_minutes(_aware(row.started_at), now)
        row.reason = reason
        row.detail = detail
        last = row
    return last


def take_stop_intent(db, user: str, server_name: str, now: datetime) -> str | None:
    """The recorded intent for this lab, if fresh; removed either way (used once)."""
    intent = db.get(StopIntent, (user, server_name))
    if intent is None:
        return None
    db.delete(intent)
    if now - _aware(intent.created_at) > INTENT_TTL:
        return None
    return intent.reason


def close_session(catalog, user: str, server_name: str, decide_reason) -> str | None:
    """Close the lab's open session. ``decide_reason(intent)`` → the reason to store.

    Returns the reason, or None if the lab had no open session (already recorded)."""
    now = _now()
    with catalog.session() as db, db.begin():
        intent = take_stop_intent(db, user, server_name, now)
        reason = decide_reason(intent)
        closed = _close_open(db, user, server_name, now, reason)
        return reason if closed is not None else None


def record_failure(
    catalog, user: str, server_name: str, template: str, detail: str, started_at=None
) -> None:
    """A start that failed: a closed session of zero minutes with reason ``failure``."""
    now = _now()
    with catalog.session() as db, db.begin():
        db.add(
            UsageSession(
                user=user,
                server_name=server_name,
                template=template,
                started_at=_aware(started_at) if started_at else now,
                stopped_at=now,
                minutes=0.0,
                reason="failure",
                detail=detail[:2000],
            )
        )


def record_stop_intent(catalog, user: str, server_name: str, reason: str) -> None:
    """Say why a lab is about to be stopped (call it just before asking the hub to)."""
    with catalog.session() as db, db.begin():
        db.execute(
            delete(StopIntent).where(StopIntent.user == user, StopIntent.server_name == server_name)
        )
        db.add(StopIntent(user=user, server_name=server_name, reason=reason, created_at=_now()))


def load_sessions(catalog, since: datetime | None = None, until: datetime | None = None):
    """Session rows as plain dicts (newest first), started before ``until`` and not ended
    before ``since`` — every session that overlaps the window."""
    query = select(UsageSession).order_by(UsageSession.started_at.desc(), UsageSession.id.desc())
    if until is not None:
        query = query.where(UsageSession.started_at < until)
    with catalog.session() as db:
        rows = list(db.execute(query).scalars())
    out = []
    for r in rows:
        stopped = _aware(r.stopped_at) if r.stopped_at else None
        if since is not None and stopped is not None and stopped < since:
            continue
        out.append(
            {
                "id": r.id,
                "user": r.user,
                "server_name": r.server_name,
                "template": r.template,
                "started_at": _aware(r.started_at),
                "stopped_at": stopped,
                "minutes": r.minutes,
                "reason": r.reason,
                "detail": r.detail,
                "spawn_seconds": r.spawn_seconds,
            }
        )
    return out
