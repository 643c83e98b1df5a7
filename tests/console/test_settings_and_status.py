"""Console configuration, the server-proxy entry, activity throttling and status.json."""

import json
import sys

import pytest
from traitlets import TraitError

from blabs_hub.lab.console import STRIPPED_HEADERS, setup_console
from blabs_hub.lab.console.activity import (
    ActivityThrottle,
    HubActivityTarget,
    activity_body,
    event_line,
)
from blabs_hub.lab.console.settings import ConsoleSettings
from blabs_hub.lab.console.status import SLOW_MODE_TEXT, console_status, session_warning, stop_url


def test_setup_console_is_a_server_proxy_entry(monkeypatch, tmp_path):
    monkeypatch.setenv("BLABS_LAB_WORKDIR", str(tmp_path))
    monkeypatch.setenv("BLABS_ACTIVITY_INTERVAL_SECONDS", "17")
    entry = setup_console()
    assert entry["command"][:3] == [sys.executable, "-m", "blabs_hub.lab.console.relay"]
    assert "{unix_socket}" in entry["command"]
    assert entry["command"][entry["command"].index("--unix-target") + 1] == str(
        tmp_path / "spice.sock"
    )
    assert entry["command"][entry["command"].index("--activity-interval") + 1] == "17"
    assert entry["unix_socket"] is True
    assert entry["update_last_activity"] is False
    assert entry["new_browser_tab"] is False
    assert entry["launcher_entry"] == {"enabled": True, "title": "Lab console"}
    assert entry["timeout"] >= 10
    assert entry["request_headers_override"] == STRIPPED_HEADERS
    # server-proxy accepts it as is
    from jupyter_server_proxy.config import ServerProcess

    process = ServerProcess(name="console", **entry)
    assert process.launcher_entry.title == "Lab console"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"BLABS_LAB_WORKDIR": ""}, "BLABS_LAB_WORKDIR"),
        ({"BLABS_LAB_WORKDIR": "relative/dir"}, "absolute"),
        ({"BLABS_ACTIVITY_INTERVAL_SECONDS": "0"}, "BLABS_ACTIVITY_INTERVAL_SECONDS"),
        ({"BLABS_ACTIVITY_INTERVAL_SECONDS": "soon"}, "not a whole number"),
        ({"BLABS_SPICE_HTML5_DIR": "/nonexistent"}, "spice-html5"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch, tmp_path, env, message):
    monkeypatch.setenv("BLABS_LAB_WORKDIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((TraitError, ValueError), match=message):
        ConsoleSettings()


def test_throttle_reports_first_input_at_once_then_at_most_once_per_interval():
    t = ActivityThrottle(interval=60)
    assert t.due(0) is None and t.wait_time(0) is None
    t.note_input(100)
    assert t.due(100) == 100
    t.sent(100, 100)
    t.note_input(110)
    t.note_input(130)
    assert t.due(131) is None
    assert t.wait_time(131) == pytest.approx(29)
    assert t.due(160) == 130  # the last input of the burst, not the first
    t.sent(160, 130)
    assert t.due(500) is None  # nothing new: no post


def test_activity_body_is_what_the_hub_expects():
    body = json.loads(activity_body("lab-1", 0))
    assert body == {
        "last_activity": "1970-01-01T00:00:00Z",
        "servers": {"lab-1": {"last_activity": "1970-01-01T00:00:00Z"}},
    }


def test_activity_target_from_env():
    env = {"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api/"}
    assert HubActivityTarget.from_env(env) is None  # no user, no activity URL
    target = HubActivityTarget.from_env({**env, "JUPYTERHUB_USER": "a b"})
    assert target.url == "http://127.0.0.1:1/hub/api/users/a%20b/activity"
    assert target.server_name == ""
    assert HubActivityTarget.from_env({**env, "JUPYTERHUB_ACTIVITY_URL": "file:///etc"}) is None


def test_event_line_is_one_json_line():
    line = event_line("connect", 0, channel="main")
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "event": "connect",
        "time": "1970-01-01T00:00:00Z",
        "channel": "main",
    }


def test_status_shows_slow_mode_from_the_last_booting_stage():
    lines = [
        json.dumps({"stage": "preparing disk"}),
        json.dumps({"stage": "booting", "slow_mode": True}),
        '{"stage": "console re',  # torn write
        json.dumps({"stage": "console ready"}),
    ]
    env = {"JUPYTERHUB_SERVER_NAME": "lab-1", "JUPYTERHUB_BASE_URL": "/prefix/"}
    status = console_status(lines, env)
    assert status["slow_mode"] is True
    assert status["stage"] == "console ready"
    assert status["banners"] == [{"level": "info", "text": SLOW_MODE_TEXT}]
    assert status["stop_url"] == "/prefix/services/blabs/labs/lab-1/stop"
    assert "token" not in json.dumps(status).lower()


def test_status_without_launcher_file_or_server_name():
    status = console_status([], {})
    assert status == {
        "stage": None,
        "slow_mode": False,
        "banners": [],
        "lab_name": "",
        "stop_url": None,
    }
    fast = console_status([json.dumps({"stage": "booting", "slow_mode": False})], {})
    assert fast["banners"] == []


SESSION = {"BLABS_SESSION_ENDS_AT": "10000", "BLABS_SESSION_WARNING_MINUTES": "5"}


def test_no_session_banner_before_the_warning_time():
    assert console_status([], SESSION, now=10000 - 5 * 60 - 1)["banners"] == []


def test_the_session_banner_counts_down_to_the_labs_end():
    at_warning = console_status([], SESSION, now=10000 - 5 * 60)["banners"]
    assert at_warning == [
        {
            "level": "warning",
            "text": "This lab ends in 5 minutes (its session time limit): save your work now.",
        }
    ]
    assert session_warning(10000, 5, now=10000 - 61).startswith("This lab ends in 2 minutes")
    assert session_warning(10000, 5, now=10000 - 30).startswith("This lab ends in 1 minute ")
    assert session_warning(10000, 5, now=10005).startswith("This lab ends in 1 minute ")


def test_no_session_banner_without_a_limit_or_with_warnings_off():
    assert console_status([], {}, now=10000)["banners"] == []
    off = {**SESSION, "BLABS_SESSION_WARNING_MINUTES": "0"}
    assert console_status([], off, now=9999)["banners"] == []


def test_a_garbled_session_deadline_shows_no_banner():
    assert console_status([], {"BLABS_SESSION_ENDS_AT": "soon"}, now=0)["banners"] == []


def test_stop_url_quotes_the_name():
    assert stop_url("/", "a/b") == "/services/blabs/labs/a%2Fb/stop"
    assert stop_url("/hub-base", "x") == "/hub-base/services/blabs/labs/x/stop"
