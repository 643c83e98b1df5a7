"""Labs as pods through a real hub process, against the fake Kubernetes API.

The hub, its proxy and the blabs service are real; the cluster is ``tests/kube/fakekube.py``
(pods "run" as a stub HTTP server on a loopback address of their own). Every pod the hub
creates is validated by the fake against Kubernetes 1.32 and 1.37, strictly.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.harness import wait_for
from tests.kube.conftest import kube_hub_config, kube_hub_env, seed_catalog
from tests.kube.fakekube import Behavior


def spawn(hub, user: str, server: str, options: dict | None = None) -> requests.Response:
    hub.create_user(user)
    body = {"user_options": options} if options is not None else None
    return hub.api("POST", f"/users/{user}/servers/{server}", json=body)


def server_state(hub, user: str, server: str) -> dict | None:
    r = hub.api("GET", f"/users/{user}")
    assert r.status_code == 200, r.text
    return r.json()["servers"].get(server)


def wait_ready(hub, user: str, server: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = server_state(hub, user, server)
        if state and state["ready"]:
            return state
        time.sleep(0.1)
    raise AssertionError(f"{user}/{server} not ready: {state}\n{hub.log_text()[-3000:]}")


def wait_gone(hub, user: str, server: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_state(hub, user, server) is None:
            return
        time.sleep(0.1)
    raise AssertionError(f"{user}/{server} still there")


def progress_events(hub, user: str, server: str) -> list[dict]:
    """A spawn's progress events, as the spawn page reads them, until it ends."""
    url = f"{hub.url}/hub/api/users/{user}/servers/{server}/progress"
    headers = {"Authorization": f"token {hub.admin_token}"}
    events = []
    with requests.get(url, headers=headers, stream=True, timeout=60) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("ready") or events[-1].get("failed"):
                    break
    return events


def spawn_failure(hub, user: str, server: str) -> str:
    """The message of a failed spawn, as the progress API reports it to the browser."""
    r = spawn(hub, user, server, {"template": server})
    if r.status_code >= 400:
        return r.json()["message"]
    failed = [e["message"] for e in progress_events(hub, user, server) if e.get("failed")]
    assert failed, "spawn did not fail"
    return failed[0]


def lab_pods(fake, user: str) -> dict[str, dict]:
    return {
        key: pod
        for key, pod in fake.pods().items()
        if pod["metadata"]["annotations"].get("hub.jupyter.org/username") == user
    }


def test_start_and_stop_a_lab(kube_hub, fake):
    r = spawn(kube_hub, "ada", "win11", {"template": "win11"})
    assert r.status_code in (201, 202), r.text
    state = wait_ready(kube_hub, "ada", "win11")
    # The template slug doubles as the admin panel's "Profile" column.
    assert state["user_options"] == {"template": "win11", "profile": "win11"}

    (pod,) = lab_pods(fake, "ada").values()
    labels = pod["metadata"]["labels"]
    assert labels["bretter-labs/template"] == "win11"
    assert labels["component"] == "singleuser-server"
    assert [c["name"] for c in pod["spec"]["containers"]] == ["console", "vm"]
    vm = pod["spec"]["containers"][1]
    spec = json.loads(next(e["value"] for e in vm["env"] if e["name"] == "BLABS_LAB_SPEC"))
    assert spec["image_path"] == "/srv/blabs/images/base.qcow2"
    assert spec["firmware"] == "uefi-secure-tpm"
    assert fake.invalid == []
    assert fake.requests[("POST", "pods")] == 1

    r = kube_hub.api("DELETE", "/users/ada/servers/win11")
    assert r.status_code in (202, 204), r.text
    wait_gone_or_stopped(kube_hub, "ada", "win11")
    assert pod["metadata"]["name"] in fake.deleted
    assert lab_pods(fake, "ada") == {}


def console_env(pod: dict) -> dict[str, str]:
    console = next(c for c in pod["spec"]["containers"] if c["name"] == "console")
    return {e["name"]: e.get("value") for e in console["env"]}


def test_a_session_limit_reaches_the_labs_console_as_its_end_time(kube_hub, fake):
    before = time.time()
    for server in ("win10", "linux"):
        r = spawn(kube_hub, "eve", server, {"template": server})
        assert r.status_code in (201, 202), r.text
        wait_ready(kube_hub, "eve", server)
    pods = {
        p["metadata"]["labels"]["bretter-labs/template"]: p for p in lab_pods(fake, "eve").values()
    }
    limited = console_env(pods["win10"])
    ends_at = float(limited["BLABS_SESSION_ENDS_AT"])  # whole seconds
    assert before - 1 + 90 * 60 <= ends_at <= time.time() + 1 + 90 * 60
    assert limited["BLABS_SESSION_WARNING_MINUTES"] == "5"
    assert "BLABS_SESSION_ENDS_AT" not in console_env(pods["linux"])
    for server in ("win10", "linux"):
        kube_hub.api("DELETE", f"/users/eve/servers/{server}")
        wait_gone_or_stopped(kube_hub, "eve", server)


def wait_pending(hub, user: str, server: str) -> None:
    def starting():
        state = server_state(hub, user, server)
        return state and state["pending"] == "spawn"

    wait_for(starting, 10, f"{user}/{server} is not starting")


@pytest.fixture
def queue_hub(hub_factory, kubeconfig):
    """A hub whose labs may take 10 s to start (they give up after 8), 10 labs per person."""
    hub = hub_factory.create(
        kube_hub_config(start_timeout=10),
        env=kube_hub_env(kubeconfig, BLABS_PER_USER_VM_LIMIT="10"),
    )
    hub.data_dir.mkdir(parents=True, exist_ok=True)
    seed_catalog(hub.catalog_url)
    hub.start()
    yield hub
    hub.stop()


def test_the_start_gate_is_live_and_time_in_line_is_not_start_time(queue_hub, fake):
    r = queue_hub.service_api("PATCH", "/settings", json={"max_concurrent_starts": 1})
    assert r.status_code == 200 and r.json()["max_concurrent_starts"] == 1, r.text
    # One start at a time, each pod Ready 2 s after it is made; the start timeout is 10 s.
    # The sixth lab in line waits at least 5 x 2 s, then starts in ~2-6 s: it must not
    # time out, since only its own start counts against the timeout.
    fake.behave(Behavior(pattern="jupyter-gus*", running_after=2))
    queue_hub.create_user("gus")
    servers = [f"lab{i}" for i in range(1, 7)]
    started = time.monotonic()
    with ThreadPoolExecutor(len(servers)) as pool:
        spawns = []
        for server in servers:
            spawns.append(pool.submit(spawn, queue_hub, "gus", server, {"template": "linux"}))
            time.sleep(0.1)
        wait_pending(queue_hub, "gus", "lab6")
        messages = [e.get("message", "") for e in progress_events(queue_hub, "gus", "lab6")]
        assert "Many labs are starting: yours is number 3 in line" in messages
        codes = [f.result().status_code for f in spawns]
        assert set(codes) <= {201, 202}, [f.result().text for f in spawns]
    for server in servers:
        wait_ready(queue_hub, "gus", server)
    assert time.monotonic() - started > 10, "the last lab must have waited past the timeout"


def wait_gone_or_stopped(hub, user, server, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = server_state(hub, user, server)
        if state is None or not (state["ready"] or state["pending"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"{user}/{server} did not stop")


def test_one_named_server_per_template_each_its_own_pod(kube_hub, fake):
    # The server name alone picks the template (the /hub/spawn/<user>/<slug> links).
    for server in ("win10", "linux"):
        r = spawn(kube_hub, "bob", server)
        assert r.status_code in (201, 202), r.text
    for server in ("win10", "linux"):
        wait_ready(kube_hub, "bob", server)
    pods = lab_pods(fake, "bob")
    templates = sorted(p["metadata"]["labels"]["bretter-labs/template"] for p in pods.values())
    assert templates == ["linux", "win10"]
    linux = next(
        p for p in pods.values() if p["metadata"]["labels"]["bretter-labs/template"] == "linux"
    )
    vm = linux["spec"]["containers"][1]
    assert vm["resources"]["limits"]["memory"] == "1536Mi"  # 1024 guest + 512 QEMU overhead
    assert fake.invalid == []
    for server in ("win10", "linux"):
        kube_hub.api("DELETE", f"/users/bob/servers/{server}", json={"remove": True})
    for server in ("win10", "linux"):
        wait_gone(kube_hub, "bob", server)
    assert lab_pods(fake, "bob") == {}


@pytest.mark.parametrize(
    ("server", "options", "words"),
    [
        ("nosuch", {"template": "nosuch"}, "there is no lab template called 'nosuch'"),
        ("offline", {"template": "offline"}, "is disabled"),
        ("notready", {"template": "notready"}, "not ready yet"),
        ("win10", {"template": ["a", "b"]}, "choose a lab template"),
    ],
)
def test_bad_template_is_a_400_with_a_message_and_no_pod(kube_hub, fake, server, options, words):
    r = spawn(kube_hub, "cleo", server, options)
    assert r.status_code == 400, r.text
    assert words in r.json()["message"]
    assert fake.requests[("POST", "pods")] == 0


def test_hub_restart_reconnects_to_running_labs(kube_hub, fake):
    spawn(kube_hub, "dora", "win10", {"template": "win10"})
    wait_ready(kube_hub, "dora", "win10")
    (pod_key,) = lab_pods(fake, "dora")
    kube_hub.restart()
    state = wait_ready(kube_hub, "dora", "win10", timeout=5)
    assert state["ready"]
    assert fake.deleted == [], "the restarted hub stopped a running lab"
    assert pod_key in fake.pods()
    r = kube_hub.api("DELETE", "/users/dora/servers/win10", json={"remove": True})
    assert r.status_code in (202, 204)
    wait_gone(kube_hub, "dora", "win10")
    assert pod_key not in fake.pods()


@pytest.mark.parametrize(
    ("failure", "words", "within"),
    [
        ("image-pull", "image could not be pulled (ErrImagePull", 4),
        ("oom", "ran out of memory (OOMKilled)", 4),
        ("pending", "could not be scheduled: 0/3 nodes are available", 8),
    ],
)
def test_a_lab_pod_that_cannot_start_fails_the_spawn_in_words(
    kube_hub, fake, failure, words, within
):
    user = f"fail-{failure}"
    fake.behave(Behavior(pattern=f"jupyter-{user}*", failure=failure))
    started = time.monotonic()
    message = spawn_failure(kube_hub, user, "win10")
    took = time.monotonic() - started
    assert "The lab could not start" in message and words in message, message
    assert took < within, f"{failure}: took {took:.1f} s"
    deadline = time.monotonic() + 5
    while lab_pods(fake, user) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lab_pods(fake, user) == {}, "the failed lab's pod was left behind"


def test_a_vm_that_exits_ends_the_lab(kube_hub, fake):
    """The hub's poll sees the vm container terminate (guest shut down) and stops the lab."""
    spawn(kube_hub, "erin", "win10", {"template": "win10"})
    wait_ready(kube_hub, "erin", "win10")
    (key,) = lab_pods(fake, "erin")

    async def vm_exits():
        def change(p):
            for cs in p["status"]["containerStatuses"]:
                if cs["name"] == "vm":
                    cs["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}

        await fake._update(key, change)

    fake.call(vm_exits)
    wait_gone_or_stopped(kube_hub, "erin", "win10", timeout=10)  # Spawner.poll_interval = 1
    deadline = time.monotonic() + 5
    while key in fake.pods() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert key not in fake.pods(), "the pod of a lab whose VM exited was left behind"
