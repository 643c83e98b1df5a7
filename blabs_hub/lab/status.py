"""The launcher's stages, as JSON lines in the lab folder, for the spawner's progress bar.

One line per stage change: ``{"stage": ..., "message": ..., "time": <unix time>, ...}``.
Each line is written with a single ``write`` on a file opened for appending, so a reader
sees whole lines, except possibly a last one still being written, which it skips.
"""

import json
import os
import time
from pathlib import Path

from blabs_hub.lab.spec import LabPaths

STAGES = (
    "preparing-disk",
    "disk-ready",
    "loading-state",
    "state-loaded",
    "booting",
    "console-ready",
    "saving-state",
    "save-failed",
    "state-saved",
    "failed",
    "stopped",
)
FINAL_STAGES = ("failed", "stopped")

# Spawn-progress percentages for the hub's progress bar.
STAGE_PROGRESS = {
    "preparing-disk": 20,
    "disk-ready": 30,
    "loading-state": 50,
    "state-loaded": 90,
    "booting": 50,
    "saving-state": 100,
    "save-failed": 100,
    "state-saved": 100,
    "console-ready": 100,
    "failed": 100,
    "stopped": 100,
}


def stage_record(stage: str, message: str, now: float | None = None, **extra) -> dict:
    """One status line as a dict (pure)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    when = time.time() if now is None else now
    return {"stage": stage, "message": message, "time": when, **extra}


def write_stage(paths: LabPaths, stage: str, message: str, **extra) -> dict:
    """Append a stage line to ``paths.status_file`` and return it."""
    record = stage_record(stage, message, **extra)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(paths.status_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return record


def parse_stages(text: str) -> list[dict]:
    """Parse status lines (pure); a torn or garbled line is skipped, not an error."""
    stages = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "stage" in record:
            stages.append(record)
    return stages


def read_stages(paths: LabPaths) -> list[dict]:
    """All stages written so far, oldest first; ``[]`` when the launcher has written none."""
    try:
        text = Path(paths.status_file).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return parse_stages(text)


def last_stage(paths: LabPaths) -> dict | None:
    stages = read_stages(paths)
    return stages[-1] if stages else None
