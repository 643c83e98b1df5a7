"""What the console page shows around the screen: lab name, Stop link, banners.

Served as ``status.json`` by the relay; the page polls it. Built from the launcher's status
file (JSON lines, one per stage) and the env the spawner gives the server — never a token.

A lab with a maximum session length knows its own end: the spawner passes
``BLABS_SESSION_ENDS_AT`` (epoch seconds) and ``BLABS_SESSION_WARNING_MINUTES``, and the
banner counts down from there. The idle culler ends the lab at that time; nothing has to
reach into the lab's folder, so this works the same in a pod as on one machine.
"""

import json
import math
import os
import time
import urllib.parse
from collections.abc import Iterable

SLOW_MODE_TEXT = "Slow mode: no hardware acceleration"
SESSION_WARNING_TEXT = "This lab ends in {left} (its session time limit): save your work now."


def read_stages(lines: Iterable[str]) -> list[dict]:
    """The launcher's status records; torn or foreign lines are skipped (it may be writing)."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def stop_url(hub_base_url: str, server_name: str) -> str:
    """The blabs service's confirm page that stops this lab (it asks before stopping)."""
    base = hub_base_url if hub_base_url.endswith("/") else hub_base_url + "/"
    return f"{base}services/blabs/labs/{urllib.parse.quote(server_name, safe='')}/stop"


def session_warning(ends_at: float | None, warning_minutes: int, now: float) -> str | None:
    """The session-end banner while the end is ``warning_minutes`` away or less, else None."""
    if ends_at is None or warning_minutes <= 0 or ends_at - now > warning_minutes * 60:
        return None
    minutes = max(1, math.ceil((ends_at - now) / 60))
    return SESSION_WARNING_TEXT.format(left="1 minute" if minutes == 1 else f"{minutes} minutes")


def session_deadline(env) -> tuple[float | None, int]:
    """``(ends_at, warning_minutes)`` from the server's env; a garbled value means none."""
    try:
        ends_at = float(env["BLABS_SESSION_ENDS_AT"])
    except (KeyError, ValueError):
        return None, 0
    try:
        return ends_at, int(env.get("BLABS_SESSION_WARNING_MINUTES", "5"))
    except ValueError:
        return ends_at, 0


def console_status(status_lines: Iterable[str], env=os.environ, now: float | None = None) -> dict:
    """The ``status.json`` document.

    ``slow_mode`` comes from the last ``booting`` record (the launcher decides KVM vs TCG
    there); the session banner from the lab's deadline at ``now`` (default: the clock).
    """
    records = read_stages(status_lines)
    booting = [r for r in records if r.get("stage") == "booting"]
    slow_mode = bool(booting and booting[-1].get("slow_mode"))
    banners = []
    if slow_mode:
        banners.append({"level": "info", "text": SLOW_MODE_TEXT})
    warning = session_warning(*session_deadline(env), time.time() if now is None else now)
    if warning:
        banners.append({"level": "warning", "text": warning})
    server_name = env.get("JUPYTERHUB_SERVER_NAME", "")
    return {
        "stage": records[-1].get("stage") if records else None,
        "slow_mode": slow_mode,
        "banners": banners,
        "lab_name": server_name,
        "stop_url": stop_url(env.get("JUPYTERHUB_BASE_URL", "/"), server_name)
        if server_name
        else None,
    }
