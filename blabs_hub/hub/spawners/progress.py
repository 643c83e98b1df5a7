"""The lab runtime's stages as events for JupyterHub's spawn-progress bar."""

from ...lab.status import STAGE_PROGRESS

STAGE_TITLES = {
    "preparing-disk": "Preparing the lab's disk",
    "disk-ready": "The lab's disk is ready",
    "loading-state": "Resuming the virtual machine from its saved state",
    "state-loaded": "The virtual machine resumed",
    "booting": "Starting the virtual machine",
    "console-ready": "Console ready",
    "failed": "The lab could not start",
    "stopped": "The lab stopped",
}


def stage_event(stage: dict) -> dict:
    """One launcher stage (a line of ``status.jsonl``) as a JupyterHub progress event."""
    name = stage.get("stage", "")
    title = STAGE_TITLES.get(name, name.replace("-", " ").capitalize())
    message = stage.get("message") or ""
    text = f"{title}: {message}" if message and message != title else title
    if stage.get("slow_mode"):
        text += " (slow mode: no hardware acceleration on this host)"
    event = {"progress": STAGE_PROGRESS.get(name, 50), "message": text}
    # Stage times for the spawn-duration metrics (issue 8): unix time of this stage, and on
    # console-ready the seconds since launcher start of each step and whether it resumed.
    event["blabs_stage"] = {
        key: stage[key] for key in ("stage", "time", "timings", "resumed") if key in stage
    }
    if name == "failed":
        event["failed"] = True
    return event
