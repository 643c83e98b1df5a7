"""Pure rules: admission's one decision, seat counting, the start gate, the culler's verdicts."""

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from blabs_hub.culler import disconnected_for, template_slug, verdict
from blabs_hub.hub.admission import ADMITTED, Admit, Counts, Refuse, count_seats, decide
from blabs_hub.hub.startgate import StartGate
from blabs_hub.service.api.settings import below_cull_interval


def test_admits_below_both_limits():
    assert decide(40, 2, Counts(total=39, user=1)) == Admit()


def test_full_hub_refused_in_students_words():
    r = decide(40, 2, Counts(total=40, user=0))
    assert isinstance(r, Refuse) and r.kind == "full" and r.status == 429
    assert r.message.startswith("All 40 lab seats are in use.")


@pytest.mark.parametrize(
    ("limit", "mine", "text"),
    [
        (1, 1, "You already have 1 lab running (the limit is 1 per person): stop it"),
        (2, 2, "You already have 2 labs running (the limit is 2 per person): stop one"),
    ],
)
def test_per_user_limit(limit, mine, text):
    r = decide(100, limit, Counts(total=mine, user=mine))
    assert r.kind == "user-limit" and r.status == 409
    assert r.message.startswith(text.split(" (")[0])
    assert "to start another" in r.message


def test_user_limit_comes_before_full_hub():
    # The student can act on "stop one of yours"; "the hub is full" would be misleading.
    assert decide(2, 2, Counts(total=2, user=2)).kind == "user-limit"


@pytest.mark.parametrize(("hub", "user", "kind"), [(0, 2, "closed"), (10, 0, "user-closed")])
def test_zero_means_no_new_labs_and_says_so(hub, user, kind):
    r = decide(hub, user, Counts(total=0, user=0))
    assert r.kind == kind and r.status == 403
    assert "switched off" in r.message and "running go on" in r.message


def spawner(pending=None, ready=False, admitted=False):
    started = datetime(2026, 11, 1, tzinfo=UTC)
    s = SimpleNamespace(pending=pending, ready=ready, orm_spawner=SimpleNamespace(started=started))
    if admitted:
        setattr(s, ADMITTED, started)
    return s


def test_counts_running_stopping_and_admitted_starts_only():
    me = spawner(pending="spawn")
    users = [
        SimpleNamespace(
            name="ada",
            spawners={
                "a": spawner(ready=True),
                "b": spawner(pending="spawn"),  # not admitted yet: no seat
                "c": me,
                "d": spawner(),  # stopped named server: no seat
            },
        ),
        SimpleNamespace(
            name="bob",
            spawners={"a": spawner(pending="spawn", admitted=True), "b": spawner(pending="stop")},
        ),
    ]
    assert count_seats(users, "ada", me) == Counts(total=3, user=1)


def test_an_old_admission_mark_does_not_count_for_a_new_start():
    s = spawner(pending="spawn", admitted=True)
    s.orm_spawner.started = datetime(2026, 11, 2, tzinfo=UTC)  # a later spawn
    assert count_seats([SimpleNamespace(name="x", spawners={"a": s})], "y", None).total == 0


def test_start_gate_is_first_come_first_served():
    async def scenario():
        gate = StartGate(2)
        order = []

        async def start(key):
            await gate.enter(key)
            order.append(key)

        await start("a")
        await start("b")
        waiters = [asyncio.ensure_future(start(k)) for k in "cde"]
        await asyncio.sleep(0)
        assert [gate.position(k) for k in "cde"] == [1, 2, 3]
        gate.leave("a")
        await asyncio.sleep(0)
        waiters[1].cancel()  # "d" gives up: "e" moves up
        await asyncio.sleep(0)
        assert gate.position("e") == 1
        gate.leave("b")
        await asyncio.gather(waiters[0], waiters[2], return_exceptions=True)
        return order, gate.starting

    order, starting = asyncio.run(scenario())
    assert order == ["a", "b", "c", "e"] and starting == {"c", "e"}


NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def kw(**over):
    base = dict(
        inactive=timedelta(minutes=1),
        inactive_limit=600,
        age=timedelta(minutes=30),
        max_session_minutes=None,
        disconnected=None,
        disconnected_minutes=0,
    )
    return {**base, **over}


def test_culler_verdicts():
    assert verdict(**kw()) is None
    assert verdict(**kw(inactive=timedelta(minutes=10))) == "idle"
    assert verdict(**kw(max_session_minutes=30)) == "session"
    assert verdict(**kw(max_session_minutes=31)) is None
    assert (
        verdict(**kw(disconnected=timedelta(minutes=5), disconnected_minutes=5)) == "disconnected"
    )
    assert verdict(**kw(disconnected=timedelta(minutes=5), disconnected_minutes=0)) is None


def test_disconnected_counts_open_tabs():
    t = lambda m: (NOW - timedelta(minutes=m)).isoformat()  # noqa: E731
    started = NOW - timedelta(minutes=60)
    assert disconnected_for([], started, NOW) == timedelta(minutes=60)
    two_tabs_one_closed = [
        {"event": "connect", "time": t(50)},
        {"event": "connect", "time": t(40)},
        {"event": "input", "time": t(35)},
        {"event": "disconnect", "time": t(30)},
    ]
    assert disconnected_for(two_tabs_one_closed, started, NOW) is None
    closed = [*two_tabs_one_closed, {"event": "disconnect", "time": t(20)}]
    assert disconnected_for(closed, started, NOW) == timedelta(minutes=20)


def test_template_slug_from_user_options_or_the_server_name():
    assert template_slug({"name": "win11", "user_options": {}}) == "win11"
    assert template_slug({"name": "x", "user_options": {"template": "demo-linux"}}) == "demo-linux"


def test_timeout_below_the_cull_interval_names_the_field():
    assert below_cull_interval({"idle_timeout_minutes": 1}, 60) == []
    assert below_cull_interval({"max_concurrent_vms": 3}, 600) == []
    (error,) = below_cull_interval({"idle_timeout_minutes": 5}, 600)
    assert error["field"] == "idle_timeout_minutes" and "600 s" in error["message"]


def test_raising_the_start_gate_size_lets_waiters_through_in_order():
    async def scenario():
        gate = StartGate(1)
        await gate.enter("a")
        waiters = {k: asyncio.ensure_future(gate.enter(k)) for k in "bcd"}
        await asyncio.sleep(0)
        gate.set_limit(3)
        await asyncio.sleep(0)
        assert [waiters[k].done() for k in "bcd"] == [True, True, False]
        assert gate.position("d") == 1
        gate.set_limit(1)  # lowering lets the starts under way finish
        assert gate.starting == {"a", "b", "c"}
        for k in "abc":
            gate.leave(k)
        await asyncio.sleep(0)
        assert waiters["d"].done() and gate.starting == {"d"}

    asyncio.run(scenario())


def test_queue_progress_shows_the_place_in_line(monkeypatch):
    from blabs_hub.hub import startgate

    gate = StartGate(1)
    monkeypatch.setattr(startgate, "_gate", gate)

    class Spawner:
        config = None

    me = Spawner()

    async def scenario():
        await gate.enter("first")
        other = asyncio.ensure_future(gate.enter("second"))
        mine = asyncio.ensure_future(gate.enter(me))
        await asyncio.sleep(0)
        events = []

        async def watch():
            async for event in startgate.queue_progress(me):
                events.append(event["message"])

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0.1)
        gate.leave("first")
        await asyncio.sleep(0.6)
        gate.leave("second")
        await asyncio.wait_for(asyncio.gather(other, mine, watcher), 3)
        return events

    events = asyncio.run(scenario())
    assert events == [
        "Many labs are starting: yours is number 2 in line",
        "Many labs are starting: yours is next in line",
    ]


def test_a_culled_lab_leaves_its_reason_for_the_usage_report(tmp_path):
    from sqlalchemy import select

    from blabs_hub.catalog import Catalog
    from blabs_hub.catalog.orm import StopIntent
    from blabs_hub.culler import Arbiter, CullerSettings

    catalog = Catalog(f"sqlite:///{tmp_path}/blabs.sqlite")
    catalog.upgrade()
    started = (datetime.now(UTC) - timedelta(minutes=90)).isoformat()
    server = {"full_name": "ada/win11", "name": "win11", "started": started, "state": {}}
    arbiter = Arbiter({"win11": 60}, CullerSettings(), catalog)
    assert arbiter(inactive=timedelta(seconds=5), inactive_limit=600, server=server)
    with catalog.session() as db:
        intent = db.execute(select(StopIntent)).scalar_one()
    assert (intent.user, intent.server_name, intent.reason) == ("ada", "win11", "max-session")
