"""Starting and watching labs through a real hub's REST API, for the limits tests."""

import time

TEMPLATE = "demo-linux"


def seeded_hub(hub_factory, demo_image, env: dict | None = None):
    hub = hub_factory.start(
        env={"BLABS_ACCEL": "tcg", "BLABS_ACTIVITY_INTERVAL_SECONDS": "1", **(env or {})}
    )
    hub.seed_demo(demo_image)
    return hub


def set_limits(hub, **values) -> dict:
    r = hub.service_api("PATCH", "/settings", json=values)
    assert r.status_code == 200, r.text
    return r.json()


def start(hub, token: str, user: str, server: str):
    """POST the start; returns the response (201/202 started, 4xx refused)."""
    return hub.api(
        "POST",
        f"/users/{user}/servers/{server}",
        token=token,
        json={"user_options": {"template": TEMPLATE}},
    )


def server_model(hub, user: str, server: str) -> dict | None:
    return hub.api("GET", f"/users/{user}").json().get("servers", {}).get(server)


def wait_ready(hub, user: str, server: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = server_model(hub, user, server)
        if model and model.get("ready"):
            return model
        time.sleep(0.25)
    raise AssertionError(f"{user}/{server} not ready after {timeout} s")


def start_ready(hub, token: str, user: str, server: str) -> dict:
    r = start(hub, token, user, server)
    assert r.status_code in (201, 202), r.text
    return wait_ready(hub, user, server)


def stop(hub, user: str, server: str, remove: bool = False) -> None:
    r = hub.api("DELETE", f"/users/{user}/servers/{server}", json={"remove": remove})
    assert r.status_code in (202, 204), r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server_model(hub, user, server) is None:
            return
        time.sleep(0.25)
    raise AssertionError(f"{user}/{server} did not stop")
