"""The pure parts of people-facing features: stop reasons, usage report rules, the chart,
course bundle checks, launch decisions, home-page seats, spawn stage durations."""

import csv
import io
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from blabs_hub.catalog import bundles
from blabs_hub.hub.admission import Counts
from blabs_hub.hub.home import seats_for
from blabs_hub.hub.metrics import stage_durations
from blabs_hub.service.people.links import launch_problem, launch_target, snippets
from blabs_hub.service.people.usage import parse_filters
from blabs_hub.usage import chart, report
from blabs_hub.usage.reasons import Requester, failure_kind, stop_reason

T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
SHA = "a" * 64


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# --- stop reasons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({"intent": "session"}, "max-session"),
        ({"intent": "idle", "requester": Requester("user", "ada")}, "idle"),
        ({"intent": "disconnected"}, "idle"),
        ({"requester": Requester("user", "ada")}, "user"),
        ({"requester": Requester("user", "root")}, "admin"),
        ({"requester": Requester("service", "blabs-culler")}, "idle"),
        ({"requester": Requester("service", "other")}, "admin"),
        ({"ended_by_itself": True}, "failure"),
        ({}, "unknown"),
        ({"intent": "nonsense"}, "unknown"),
    ],
)
def test_stop_reason(kw, expected):
    assert stop_reason(owner="ada", **kw) == expected


def test_failure_kind():
    refused = RuntimeError("x")
    refused.blabs_refusal = "full"
    assert failure_kind(refused) == "full"
    assert failure_kind(TimeoutError()) == "timeout"
    assert failure_kind(SimpleNamespace(status_code=400)) == "bad-request"
    assert failure_kind(RuntimeError("boom")) == "error"


# --- usage report -------------------------------------------------------------------------


def session(user, template, start, stop, reason="user"):
    stopped = at(stop) if stop is not None else None
    minutes = report.session_minutes(at(start), stopped) if stopped else None
    return {
        "user": user,
        "template": template,
        "started_at": at(start),
        "stopped_at": stopped,
        "minutes": minutes,
        "reason": reason if stopped else None,
    }


def test_minutes_and_live_sessions():
    assert report.session_minutes(at(0), at(1.5)) == 90.0
    assert report.session_minutes(at(1), at(0)) == 0.0
    live = report.with_live_minutes([session("a", "t", 1, None)], now=at(1.25))
    assert live[0]["minutes"] == 15.0 and live[0]["reason"] == "running"


def test_filters_keep_overlapping_sessions():
    rows = [
        session("a", "t1", 1, 2),
        session("b", "t2", 23, 25, "idle"),
        session("a", "t2", 30, 31),
    ]
    assert len(report.filter_sessions(rows, user="a")) == 2
    assert [r["user"] for r in report.filter_sessions(rows, reason="idle")] == ["b"]
    day = report.filter_sessions(rows, since=at(24), until=at(48))
    assert [r["user"] for r in day] == ["b", "a"]
    assert report.totals(rows)["minutes"] == 60 + 120 + 60


@pytest.mark.parametrize("evil", ['=HYPERLINK("x")', "+1+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_escapes_formula_starts(evil):
    rows = [{**session("ok", "t", 0, 1), "user": evil}]
    parsed = list(csv.reader(io.StringIO(report.to_csv(rows))))
    assert parsed[0] == list(report.CSV_COLUMNS)
    assert parsed[1][0] == "'" + evil
    assert parsed[1] == report.table_rows(rows)[0]


def test_csv_leaves_numbers_and_plain_text_alone():
    assert report.csv_cell(-1.5) == "-1.5"
    assert report.csv_cell("ada") == "ada"
    assert report.csv_cell(None) == ""


def test_concurrency_steps_over_a_day():
    rows = [
        session("a", "t", -1, 2),  # running at midnight
        session("b", "t", 1, 3),
        session("c", "t", 1, 1),  # a failed start: zero length, not counted
        session("d", "t", 23, None),  # still running
    ]
    points = report.concurrency(rows, at(0), at(24), now=at(23.5))
    # the running lab counts until now; nothing is known after that
    assert points == [(at(0), 1), (at(1), 2), (at(2), 1), (at(3), 0), (at(23), 1), (at(23.5), 0)]
    assert report.peak(points) == 2


def test_chart_geometry_and_svg():
    points = [(at(0), 0), (at(6), 2), (at(12), 0)]
    g = chart.geometry(points, at(0), at(24), limit=3)
    assert g.top == 4  # room for the limit line
    assert g.path.startswith("M40") and g.path.count("V") == 2
    assert g.x_ticks[0][1] == "00:00" and g.x_ticks[-1][1] == "00:00"
    svg = chart.render_svg(points, at(0), at(24), "Labs <today>", limit=3)
    assert "Labs &lt;today&gt;" in svg and "limit-line" in svg and "Peak 2" in svg


# --- bundles --------------------------------------------------------------------------------


def template_row(slug="win", **extra):
    return {
        "slug": slug,
        "title": "Windows",
        "description": "",
        "cpus": 2,
        "memory_mib": 4096,
        "firmware": "bios",
        "disk_bus": "sata",
        "network": "none",
        "guest_profile": "windows",
        "enabled": True,
        "max_session_minutes": None,
        "image": "win.qcow2",
        "image_sha256": SHA,
        "image_id": 7,
        "created_at": "secret-free",
        **extra,
    }


def test_export_has_no_ids_or_secrets_and_parses_back():
    doc = bundles.export_bundle([template_row()], "2026-11-29T00:00:00+00:00")
    text = bundles.dump_bundle(doc)
    assert "image_id" not in text and "created_at" not in text
    parsed, errors = bundles.parse_bundle(text)
    assert errors == [] and bundles.check_bundle(parsed) == []
    assert parsed["templates"][0]["image"] == {"name": "win.qcow2", "sha256": SHA}


def fields(doc) -> list[str]:
    return [e["field"] for e in bundles.check_bundle(doc)]


def good_doc(*templates):
    items = templates or (template_row(),)
    return bundles.export_bundle(list(items), "now")


def test_bundle_errors_name_the_path():
    doc = good_doc(template_row("a"), template_row("b"))
    doc["colour"] = "blue"
    doc["templates"][1]["cpus"] = "4"
    doc["templates"][1]["image"]["sha256"] = "nope"
    doc["templates"][0]["wheels"] = 4
    assert fields(doc) == [
        "colour",
        "templates[0].wheels",
        "templates[1].image.sha256",
        "templates[1].cpus",
    ]


def test_duplicate_slugs_and_bad_shapes():
    assert fields(good_doc(template_row("a"), template_row("a"))) == ["templates[1].slug"]
    assert fields({"kind": "blabs-bundle", "version": 1, "templates": "x"}) == ["templates"]
    assert fields({"kind": "blabs-bundle", "version": 1, "templates": [3]}) == ["templates[0]"]
    assert bundles.parse_bundle("a: [")[1][0]["message"].startswith("the bundle is not valid YAML")
    assert bundles.parse_bundle("- 1")[1]


def test_images_resolve_by_sha_and_missing_ones_are_listed():
    doc = good_doc(template_row("a"), template_row("b", image="other", image_sha256="b" * 64))
    images = [
        {"id": 1, "name": "renamed", "sha256": SHA, "status": "ready"},
        {"id": 2, "name": "other", "sha256": "b" * 64, "status": "uploading"},
    ]
    found, missing = bundles.resolve_images(doc["templates"], images)
    assert found == {"a": 1}
    assert missing == [{"name": "other", "sha256": "b" * 64, "templates": ["b"]}]


def test_plan_refuses_existing_slugs_unless_replace():
    doc = good_doc(template_row("a"), template_row("b"))
    plan, errors = bundles.plan_import(doc["templates"], {"a": 1, "b": 1}, {"b"}, False)
    assert [e["field"] for e in errors] == ["templates[1].slug"] and errors[0]["conflict"]
    plan, errors = bundles.plan_import(doc["templates"], {"a": 1, "b": 1}, {"b"}, True)
    assert errors == [] and [(a, r["slug"]) for a, r in plan] == [("create", "a"), ("update", "b")]
    assert plan[0][1]["image_id"] == 1


# --- launch links, home page seats, filters, stages -----------------------------------------


def test_launch_problems_and_targets():
    ready = SimpleNamespace(title="W", enabled=True, image=SimpleNamespace(status="ready"))
    assert "no lab called “x”" in launch_problem("x", None)
    assert "switched off" in launch_problem(
        "w", SimpleNamespace(**{**vars(ready), "enabled": False})
    )
    assert launch_problem("w", ready) is None
    assert launch_target("/hub/", "/", "ada", "w", {"ready": True}) == "/user/ada/w/console/"
    assert (
        launch_target("/hub/", "/", "ada", "w", {"pending": "spawn"}) == "/hub/spawn-pending/ada/w"
    )
    assert launch_target("/hub/", "/", "ada", "w", None) == "/hub/spawn/ada/w?template=w"
    s = snippets("https://h/l", "https://h/b.svg", 'A "lab"')
    assert s["markdown"] == '[![Start lab: A "lab"](https://h/b.svg)](https://h/l)'
    assert "&quot;lab&quot;" in s["html"]


def test_seats_for_home_page():
    settings = SimpleNamespace(max_concurrent_vms=5, per_user_vm_limit=2)
    seats = seats_for(settings, Counts(total=4, user=1))
    assert (seats.in_use, seats.limit, seats.free, seats.my_remaining) == (4, 5, 1, 1)
    assert seats_for(settings, Counts(total=5, user=0)).my_remaining == 0


def test_usage_filters_parse_and_name_bad_fields():
    out, errors = parse_filters({"since": "2026-11-29", "until": "2026-11-29", "reason": "idle"})
    assert errors == [] and out["until"] - out["since"] == timedelta(days=1)
    _out, errors = parse_filters({"since": "yesterday", "reason": "bored"})
    assert [e["field"] for e in errors] == ["reason", "since"]


def test_stage_durations():
    stages = [
        {"stage": "preparing-disk", "time": 10.0},
        {"stage": "disk-ready", "time": 10.5},
        {"stage": "booting", "time": 10.5},
        {"stage": "console-ready", "time": 13.0},
    ]
    assert stage_durations(stages) == {"preparing-disk": 0.5, "disk-ready": 0.0, "booting": 2.5}
