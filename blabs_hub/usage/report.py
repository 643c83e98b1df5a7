"""Usage report rules, pure: minutes, filters, CSV rows, concurrency over a day.

Sessions are dicts as :func:`blabs_hub.usage.record.load_sessions` returns them
(``user``, ``template``, ``started_at``, ``stopped_at``, ``minutes``, ``reason``, ...), with
timezone-aware datetimes.
"""

import csv
import io
from datetime import datetime, timedelta

CSV_COLUMNS = ("user", "template", "started_at", "stopped_at", "minutes", "reason")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def session_minutes(started: datetime, stopped: datetime) -> float:
    """Whole lab time in minutes, to a tenth (never negative)."""
    return round(max(0.0, (stopped - started).total_seconds() / 60), 1)


def with_live_minutes(sessions: list[dict], now: datetime) -> list[dict]:
    """Open sessions get their minutes so far and the reason ``running``."""
    out = []
    for s in sessions:
        if s.get("stopped_at") is None:
            s = {**s, "minutes": session_minutes(s["started_at"], now), "reason": "running"}
        out.append(s)
    return out


def filter_sessions(
    sessions: list[dict],
    user: str = "",
    template: str = "",
    reason: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict]:
    """Sessions matching every given filter; the time window keeps overlapping sessions."""
    out = []
    for s in sessions:
        if user and s["user"] != user:
            continue
        if template and s["template"] != template:
            continue
        if reason and s.get("reason") != reason:
            continue
        if until is not None and s["started_at"] >= until:
            continue
        if since is not None and s.get("stopped_at") is not None and s["stopped_at"] < since:
            continue
        out.append(s)
    return out


def totals(sessions: list[dict]) -> dict:
    """Sessions and minutes overall and per template, for the report's summary line."""
    per_template: dict[str, float] = {}
    for s in sessions:
        per_template[s["template"]] = per_template.get(s["template"], 0) + (s["minutes"] or 0)
    return {
        "sessions": len(sessions),
        "minutes": round(sum(per_template.values()), 1),
        "per_template": {k: round(v, 1) for k, v in sorted(per_template.items())},
    }


def csv_cell(value) -> str:
    """One cell as text a spreadsheet shows as text: formula starts get a leading quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def table_rows(sessions: list[dict]) -> list[list[str]]:
    """The report's rows as the page's table and the CSV both show them."""
    return [[csv_cell(s.get(c)) for c in CSV_COLUMNS] for s in sessions]


def to_csv(sessions: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(table_rows(sessions))
    return out.getvalue()


def concurrency(
    sessions: list[dict], start: datetime, end: datetime, now: datetime
) -> list[tuple[datetime, int]]:
    """Labs running over ``[start, end)`` as steps: ``(time, count from then on)``.

    The first point is at ``start`` (labs already running then); open sessions run until
    ``now``. Failed starts (zero minutes) do not count.
    """
    changes: dict[datetime, int] = {}
    level = 0
    for s in sessions:
        began = s["started_at"]
        ended = s.get("stopped_at") or now
        if ended <= began or ended <= start or began >= end:
            continue
        if began <= start:
            level += 1
        else:
            changes[began] = changes.get(began, 0) + 1
        if ended < end:
            changes[ended] = changes.get(ended, 0) - 1
    points = [(start, level)]
    for when in sorted(changes):
        level += changes[when]
        if points[-1][0] == when:
            points[-1] = (when, level)
        else:
            points.append((when, level))
    return points


def peak(points: list[tuple[datetime, int]]) -> int:
    return max((n for _, n in points), default=0)


def day_window(day: datetime) -> tuple[datetime, datetime]:
    """Midnight to midnight of ``day`` (in ``day``'s timezone)."""
    start = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)
