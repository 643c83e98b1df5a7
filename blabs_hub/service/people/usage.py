"""Usage reports for admins and instructors (``custom:blabs:reports``): a page with a
table, filters and a chart of concurrent labs over a day; the same rows as JSON and CSV.

The sessions are recorded by the hub side (``hub/spawners/lifecycle.py``); this module only
reads them. Filters are parsed by a pure function; the page, the JSON and the CSV all go
through :func:`report`, so the CSV always matches the table.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from tornado import web

from ...usage import chart, record
from ...usage import report as rules
from ...usage.reasons import REASONS
from ..base import ApiError, APIHandler, BaseHandler

REPORTS = "custom:blabs:reports"
FILTERS = ("user", "template", "reason", "since", "until", "day")


def parse_filters(args: dict[str, str]) -> tuple[dict, list[dict]]:
    """Query arguments → filter values, and errors naming the field (pure).

    ``since``/``until`` are dates (``YYYY-MM-DD``, UTC, ``until`` inclusive); ``day`` is the
    chart's day (default: today).
    """
    out: dict = {"user": "", "template": "", "reason": "", "since": None, "until": None}
    errors = []
    for key in ("user", "template"):
        out[key] = (args.get(key) or "").strip()
    reason = (args.get("reason") or "").strip()
    if reason and reason not in (*REASONS, "running"):
        errors.append({"field": "reason", "message": f"reason must be one of {', '.join(REASONS)}"})
    out["reason"] = reason
    for key, shift in (("since", 0), ("until", 1), ("day", 0)):
        value = (args.get(key) or "").strip()
        if not value:
            continue
        try:
            date = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            errors.append({"field": key, "message": f"{key} must be a date like 2026-11-29"})
            continue
        out[key] = date + timedelta(days=shift)
    return out, errors


def report(catalog, filters: dict, now: datetime) -> list[dict]:
    sessions = record.load_sessions(catalog, filters["since"], filters["until"])
    sessions = rules.with_live_minutes(sessions, now)
    return rules.filter_sessions(
        sessions,
        user=filters["user"],
        template=filters["template"],
        reason=filters["reason"],
        since=filters["since"],
        until=filters["until"],
    )


def _args(handler) -> dict[str, str]:
    return {k: handler.get_argument(k, "") for k in FILTERS}


def _json_row(s: dict) -> dict:
    return {
        "user": s["user"],
        "template": s["template"],
        "started_at": s["started_at"].isoformat(timespec="seconds"),
        "stopped_at": s["stopped_at"].isoformat(timespec="seconds") if s["stopped_at"] else None,
        "minutes": s["minutes"],
        "reason": s["reason"],
    }


class UsageAPI(APIHandler):
    """``GET /api/usage``: sessions as JSON, or ``?format=csv`` as the page's table in CSV
    (spreadsheet-safe), with the filters of the page."""

    def get(self):
        self.require_scope(REPORTS)
        filters, errors = parse_filters(_args(self))
        fmt = self.get_argument("format", "json")
        if fmt not in ("json", "csv"):
            errors.append({"field": "format", "message": "format must be json or csv"})
        if errors:
            raise ApiError(400, errors[0]["message"], field=errors[0]["field"], errors=errors)
        sessions = report(self.catalog, filters, datetime.now(UTC))
        if fmt == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", 'attachment; filename="blabs-usage.csv"')
            self.finish(rules.to_csv(sessions))
            return
        self.write_json(
            {"sessions": [_json_row(s) for s in sessions], "totals": rules.totals(sessions)}
        )


class UsagePage(BaseHandler):
    """``GET /usage``: filters, the chart of one day, the table, a CSV link."""

    @web.authenticated
    def get(self):
        self.require_scope(REPORTS)
        args = _args(self)
        filters, errors = parse_filters(args)
        if errors:
            raise web.HTTPError(400, errors[0]["message"].replace("%", "%%"))
        now = datetime.now(UTC)
        sessions = report(self.catalog, filters, now)
        day = filters.get("day") or now
        start, end = rules.day_window(day)
        day_sessions = report(self.catalog, {**filters, "since": start, "until": end}, now)
        points = rules.concurrency(day_sessions, start, end, now)
        try:
            limit = self.catalog.settings().max_concurrent_vms
        except Exception:
            limit = None
        svg = chart.render_svg(
            points, start, end, f"Labs running at once on {start:%Y-%m-%d} (UTC)", limit
        )
        query = urlencode({"format": "csv", **{k: v for k, v in args.items() if v and k != "day"}})
        self.render_template(
            "blabs-usage.html",
            columns=rules.CSV_COLUMNS,
            rows=rules.table_rows(sessions),
            totals=rules.totals(sessions),
            args=args,
            reasons=REASONS,
            chart_svg=svg,
            peak=rules.peak(points),
            day=f"{start:%Y-%m-%d}",
            csv_url=f"{self.service_prefix}api/usage?{query}",
        )


def usage_routes(at) -> list:
    return [
        (at("api/usage"), UsageAPI),
        (at("usage"), UsagePage),
    ]
