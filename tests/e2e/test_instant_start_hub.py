"""Instant start through a real hub: an admin prepares a template over the REST APIs, a student's
lab resumes from the saved state (the shell's memory is there), an edit invalidates it.

Real JupyterHub, blabs service, local spawner, launcher and QEMU with the demo guest (TCG).
"""

import asyncio
import json
import secrets
import time
from pathlib import Path

import pytest
import requests

from blabs_hub.demo.guest import READY_MARKER
from blabs_hub.hub.spawners.progress import stage_event
from tests.harness import lab_dirs, wait_for
from tests.lab.qmp_keys import monitor_args, type_text

pytestmark = pytest.mark.qemu

SLUG = "demo-linux"


@pytest.fixture(scope="module")
def hub(hub_factory, demo_image, tmp_path_factory):
    monitor_dir = tmp_path_factory.mktemp("mon")
    hub = hub_factory.create(
        # A hub admin prepares templates (the test's own admin is a service, not a user).
        extra_config='c.Authenticator.admin_users = {"prof"}\n',
        env={
            "BLABS_ACCEL": "tcg",
            # The test types into one lab at a time through this second QMP monitor.
            "BLABS_QEMU_EXTRA_ARGS": monitor_args(monitor_dir / "keys.sock"),
        },
    )
    hub.keys = monitor_dir / "keys.sock"
    hub.start()
    hub.seed_demo(demo_image)
    return hub


def the_lab_dir(hub, before: set[Path]) -> Path:
    """The folder of the lab started after ``before`` was taken."""
    return wait_for(lambda: next(iter(lab_dirs(hub) - before), None), 30, "no lab folder")


def stages(lab_dir: Path) -> list[dict]:
    path = lab_dir / "status.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def serial(lab_dir: Path) -> str:
    path = lab_dir / "serial.log"
    return path.read_text(errors="replace") if path.exists() else ""


def start_lab(hub, user: str, token: str, options: dict) -> list[str]:
    """Start a lab over the hub's REST API; return its spawn-progress messages."""
    r = hub.api(
        "POST", f"/users/{user}/servers/{SLUG}", token=token, json={"user_options": options}
    )
    assert r.status_code in (201, 202), r.text
    messages = []
    with requests.get(
        f"{hub.url}/hub/api/users/{user}/servers/{SLUG}/progress",
        headers={"Authorization": f"token {token}"},
        stream=True,
        timeout=120,
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                messages.append(event.get("message", ""))
                assert not event.get("failed"), messages
                if event.get("ready"):
                    break
    return messages


def stop_lab(hub, user: str, token: str) -> None:
    r = hub.api("DELETE", f"/users/{user}/servers/{SLUG}", token=token)
    assert r.status_code in (202, 204), r.text
    wait_for(
        lambda: not hub.api("GET", f"/users/{user}", token=token).json()["servers"],
        60,
        f"{user}'s lab did not stop",
    )


def test_admin_prepares_student_resumes_and_an_edit_invalidates(hub):
    admin = hub.create_user("prof")
    student = hub.create_user("ada")
    state = hub.service_api("GET", f"/templates/{SLUG}/ready-state", token=admin).json()
    assert state["instant_start"] is False and "no ready state" in state["reason"]
    # Students may neither prepare nor ask for a save.
    assert hub.service_api("POST", f"/templates/{SLUG}/prepare", token=student).status_code == 403
    r = hub.service_api("POST", f"/templates/{SLUG}/ready-state", token=admin)
    assert r.status_code == 409 and "no preparation lab" in r.json()["message"]

    # The admin's preparation lab: cold boot, a marker typed into the shell, saved.
    where = hub.service_api("POST", f"/templates/{SLUG}/prepare", token=admin).json()
    assert where["url"].endswith(f"/spawn/prof/{SLUG}?opt-template={SLUG}&opt-prepare=1")
    before = lab_dirs(hub)
    start_lab(hub, "prof", admin, where["user_options"])
    lab = the_lab_dir(hub, before)
    wait_for(lambda: READY_MARKER in serial(lab), 60, "the preparation lab reached no shell")
    time.sleep(1)
    marker = f"blabs-{secrets.token_hex(4)}"
    asyncio.run(type_text(hub.keys, f"export M={marker}\n"))
    time.sleep(0.5)
    r = hub.service_api("POST", f"/templates/{SLUG}/ready-state", token=admin)
    assert r.status_code == 202, r.text

    def saved():
        s = hub.service_api("GET", f"/templates/{SLUG}/ready-state", token=admin).json()
        return s if (s.get("preparation") or {}).get("stage") == "state-saved" else None

    state = wait_for(saved, 60, "the ready state was not saved")
    assert state["instant_start"] is True and state["qemu_version"]
    stop_lab(hub, "prof", admin)

    # A student's lab resumes: the progress says so and the shell remembers the marker.
    # (A resume is so quick that the hub's POST returns with the lab ready: the progress
    # stream then holds only "ready"; the stages are read from the lab's status file.)
    before = lab_dirs(hub)
    start_lab(hub, "ada", student, {"template": SLUG})
    lab = the_lab_dir(hub, before)
    names = [s["stage"] for s in stages(lab)]
    assert "state-loaded" in names and "booting" not in names, names
    loading = next(s for s in stages(lab) if s["stage"] == "loading-state")
    assert "Resuming the virtual machine" in stage_event(loading)["message"]
    ready = next(s for s in stages(lab) if s["stage"] == "console-ready")
    assert ready["resumed"] is True and "state_loaded" in ready["timings"]
    assert stage_event(ready)["blabs_stage"]["timings"] == ready["timings"]
    asyncio.run(type_text(hub.keys, "echo got-$M > /dev/ttyS0\n"))
    wait_for(lambda: f"got-{marker}" in serial(lab), 20, "the resumed lab lost the marker")
    stop_lab(hub, "ada", student)

    # The admin gives the template more CPUs: the state no longer fits; labs cold-boot.
    r = hub.service_api("PATCH", f"/templates/{SLUG}", token=admin, json={"cpus": 2})
    assert r.status_code == 200, r.text
    state = hub.service_api("GET", f"/templates/{SLUG}/ready-state", token=admin).json()
    assert state["instant_start"] is False and "cpus 1 → 2" in state["reason"]
    before = lab_dirs(hub)
    start_lab(hub, "ada", student, {"template": SLUG})
    booting = next(s for s in stages(the_lab_dir(hub, before)) if s["stage"] == "booting")
    message = stage_event(booting)["message"]
    assert "no instant start" in message and "cpus 1 → 2" in message, message
    stop_lab(hub, "ada", student)
    left = {p.name: [s["stage"] for s in stages(p)] for p in lab_dirs(hub)}
    wait_for(lambda: not lab_dirs(hub), 30, f"lab folders left behind: {left}")
