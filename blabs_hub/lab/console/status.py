"""What the console page shows around the screen: lab name, Stop link, banners.

Served as ``status.json`` by the relay; the page polls it. Built from the launcher's status
file (JSON lines, one per stage) and the env JupyterHub gives the server — never a token.
"""

import json
import os
import urllib.parse
from collections.abc import Iterable

SLOW_MODE_TEXT = "Slow mode: no hardware acceleration"


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


def console_status(status_lines: Iterable[str], env=os.environ) -> dict:
    """The ``status.json`` document.

    ``slow_mode`` comes from the last ``booting`` record (the launcher decides KVM vs TCG
    there). A record's optional ``banner`` text (e.g. "session ends in 5 minutes") is shown
    while it is the latest record that has one.
    """
    records = read_stages(status_lines)
    booting = [r for r in records if r.get("stage") == "booting"]
    slow_mode = bool(booting and booting[-1].get("slow_mode"))
    banners = []
    if slow_mode:
        banners.append({"level": "info", "text": SLOW_MODE_TEXT})
    with_banner = [r for r in records if isinstance(r.get("banner"), str) and r["banner"]]
    if with_banner:
        banners.append({"level": "warning", "text": with_banner[-1]["banner"]})
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
