"""Input activity → the hub, and console connect/disconnect → the lab's event file.

JupyterHub decides idleness from ``last_activity``. jupyter-server-proxy would bump it on
every frame in either direction (an open tab would never go idle), so the console turns that
off and reports *input* itself, throttled: the first input after a quiet period is reported at
once, later ones at most once per interval, and the last input of a burst is never lost.

:class:`ActivityThrottle` and the formatting helpers are pure; :class:`ActivityReporter` is
the thin thread that does the HTTP and the clock.
"""

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("blabs.console")


def iso(ts: float) -> str:
    """A UTC timestamp the hub's REST API accepts, e.g. ``2026-11-02T10:00:00.123456Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ActivityThrottle:
    """When to report input, as pure arithmetic on timestamps (seconds).

    ``note_input(t)`` records an input; ``due(now)`` returns the input time to report now,
    or None; after reporting, call ``sent(now, reported)``. ``wait_time(now)`` says how long
    a reporter may sleep before something can become due.
    """

    interval: float
    last_sent_at: float | None = None
    latest_input: float | None = None
    reported_input: float | None = None

    def note_input(self, t: float) -> None:
        if self.latest_input is None or t > self.latest_input:
            self.latest_input = t

    @property
    def pending(self) -> bool:
        return self.latest_input is not None and (
            self.reported_input is None or self.latest_input > self.reported_input
        )

    def due(self, now: float) -> float | None:
        if not self.pending:
            return None
        if self.last_sent_at is None or now - self.last_sent_at >= self.interval:
            return self.latest_input
        return None

    def sent(self, now: float, reported: float) -> None:
        self.last_sent_at = now
        self.reported_input = max(reported, self.reported_input or reported)

    def wait_time(self, now: float) -> float | None:
        """Seconds until a pending input becomes due; None = nothing pending (sleep until told)."""
        if not self.pending:
            return None
        if self.last_sent_at is None:
            return 0.0
        return max(0.0, self.last_sent_at + self.interval - now)


@dataclass(frozen=True)
class HubActivityTarget:
    """Where and as whom to report activity; from the env JupyterHub gives a server."""

    url: str
    token: str
    server_name: str

    @classmethod
    def from_env(cls, env=os.environ) -> "HubActivityTarget | None":
        token = env.get("JUPYTERHUB_API_TOKEN", "")
        url = env.get("JUPYTERHUB_ACTIVITY_URL", "")
        if not url and env.get("JUPYTERHUB_API_URL") and env.get("JUPYTERHUB_USER"):
            user = urllib.parse.quote(env["JUPYTERHUB_USER"], safe="")
            url = env["JUPYTERHUB_API_URL"].rstrip("/") + f"/users/{user}/activity"
        if not (token and url) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            return None
        return cls(url=url, token=token, server_name=env.get("JUPYTERHUB_SERVER_NAME", ""))


def activity_body(server_name: str, ts: float) -> bytes:
    """The JSON body of ``POST /users/{name}/activity`` for one server."""
    when = iso(ts)
    return json.dumps(
        {"last_activity": when, "servers": {server_name: {"last_activity": when}}}
    ).encode()


def post_activity(target: HubActivityTarget, ts: float, timeout: float = 10) -> None:
    # The URL comes from the hub's env for this server (http/https checked in from_env).
    request = urllib.request.Request(  # noqa: S310
        target.url,
        data=activity_body(target.server_name, ts),
        method="POST",
        headers={"Authorization": f"token {target.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read()


class ActivityReporter:
    """A background thread that posts throttled input activity; one per inputs connection.

    Runs inside the relay's per-connection process, so the relay's proxy loop never waits
    for the hub. ``close()`` reports a pending last input before returning.
    """

    def __init__(self, target: HubActivityTarget | None, interval: float, on_report=None):
        self.target = target
        self.throttle = ActivityThrottle(interval)
        self.on_report = on_report  # called with the reported input time (event file)
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="blabs-activity", daemon=True)
        self._thread.start()

    def note_input(self, t: float | None = None) -> None:
        with self._cond:
            self.throttle.note_input(time.time() if t is None else t)
            self._cond.notify()

    def close(self, timeout: float = 10) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.time()
                    reported = self.throttle.due(now)
                    if reported is None and self._closed and self.throttle.pending:
                        reported = self.throttle.latest_input  # final flush
                    if reported is not None:
                        self.throttle.sent(now, reported)
                        break
                    if self._closed:
                        return
                    self._cond.wait(self.throttle.wait_time(now))
            self._report(reported)

    def _report(self, ts: float) -> None:
        if self.on_report is not None:
            try:
                self.on_report(ts)
            except OSError as e:
                log.warning("console: could not record input event: %s", e)
        if self.target is None:
            return
        try:
            post_activity(self.target, ts)
        except (urllib.error.URLError, OSError) as e:
            # A hub restart must not break the console; the next input tries again.
            log.warning("console: activity report to the hub failed: %s", e)


def event_line(event: str, ts: float, **fields) -> str:
    """One line of ``LabPaths.console_events``: ``{"event", "time", ...}`` as JSON."""
    return json.dumps({"event": event, "time": iso(ts), **fields}, sort_keys=True) + "\n"


def record_event(path: Path, event: str, ts: float | None = None, **fields) -> None:
    """Append one event line; a single ``write`` with O_APPEND, so processes don't interleave."""
    line = event_line(event, time.time() if ts is None else ts, pid=os.getpid(), **fields)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
