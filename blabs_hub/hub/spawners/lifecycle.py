"""What happens around every lab's start and stop, whichever spawner runs it.

Both spawners call these at the same points, so that rules about labs (admission against
the live limits, usage records, metrics) are written once, not once per spawner. Each
function receives the spawner (``spawner.user.name``, ``spawner.name``) and the lab spec.
"""

import asyncio
import time
from pathlib import Path

from ...lab.spec import LabPaths, LabSpec
from ...lab.status import read_stages
from ...usage import record
from ...usage.reasons import failure_kind, stop_reason
from .. import admission, metrics, startgate
from ..stoppedby import stop_context


async def lab_starting(spawner, spec: LabSpec) -> None:
    """Before anything is created for a lab. May refuse the start (raise a 4xx HTTPError).

    Called from the spawners' pre-spawn hook (:class:`.options.LabTemplateMixin`), so the
    wait in line is not counted against JupyterHub's ``start_timeout``.

    Admission against the live settings row (one function decides: :mod:`..admission`),
    then a place in line at the start gate (:mod:`..startgate`); the slot is given back
    when the hub's spawn of this lab ends, however it ends.
    """
    settings = spawner.templates.catalog.settings()
    admission.admit(spawner, settings)
    gate = startgate.hub_gate()
    gate.set_limit(settings.max_concurrent_starts)
    await gate.enter(spawner)
    spawn = getattr(spawner, "_spawn_future", None)
    if spawn is None or spawn.done():
        gate.leave(spawner)  # not started through the hub's spawn path: nothing to wait for
    else:
        spawn.add_done_callback(lambda _f: gate.leave(spawner))


async def lab_started(spawner, spec: LabSpec) -> None:
    """The lab's console is ready: count it, time its stages, open its usage session.

    Bookkeeping never fails a start: a database or metrics error is logged, not raised.
    """
    started = getattr(getattr(spawner, "orm_spawner", None), "started", None)
    spawn_seconds = None
    if started is not None:
        spawn_seconds = max(0.0, time.time() - _timestamp(started))
    try:
        metrics.LAB_STARTS.labels(spec.slug).inc()
        if spawn_seconds is not None:
            metrics.SPAWN_DURATION.labels("total").observe(spawn_seconds)
        lab_dir = getattr(spawner, "lab_dir", "")  # local labs: the launcher's stage times
        if lab_dir:
            for stage, seconds in metrics.stage_durations(
                read_stages(LabPaths(Path(lab_dir)))
            ).items():
                metrics.SPAWN_DURATION.labels(stage).observe(seconds)
        await asyncio.to_thread(
            record.open_session,
            spawner.templates.catalog,
            spawner.user.name,
            spawner.name,
            spec.slug,
            spawn_seconds,
        )
    except Exception:
        spawner.log.exception("Lab %s: could not record its start", spawner._log_name)


async def lab_start_failed(spawner, spec: LabSpec | None, error: BaseException) -> None:
    """The start was refused or failed; whatever it created has been removed.

    Every one is counted by kind; a lab that was admitted and then failed is also a usage
    session (zero minutes, reason ``failure``). Refusals are not sessions: nothing ran.
    """
    slug = spec.slug if spec is not None else spawner.name
    kind = failure_kind(error)
    try:
        metrics.LAB_START_FAILURES.labels(slug, kind).inc()
        if spec is not None and not getattr(error, "blabs_refusal", None):
            started = getattr(getattr(spawner, "orm_spawner", None), "started", None)
            await asyncio.to_thread(
                record.record_failure,
                spawner.templates.catalog,
                spawner.user.name,
                spawner.name,
                slug,
                f"{kind}: {error}",
                started,
            )
    except Exception:
        spawner.log.exception("Lab %s: could not record its failed start", spawner._log_name)


async def lab_stopped(spawner, spec: LabSpec | None) -> None:
    """A running lab ended and its disk is gone (user stop, cull, admin, or it died).

    The reason comes from a recorded intent, else from who asked the hub to stop it, else
    from the hub noticing it died (see :mod:`blabs_hub.usage.reasons`).
    """
    # The local spawner's poll() reaps a lab half of which ended (``_reaping``), also from
    # inside the hub's own stop (its base stop() polls): then the hub's stop records it, with
    # the requester known. Reaped outside a stop, the lab ended by itself.
    reaping = getattr(spawner, "_reaping", False)
    if reaping and getattr(spawner, "_stop_pending", False):
        return
    requester, ended = stop_context()  # read the current task before leaving it
    ended = ended or reaping
    owner = spawner.user.name
    slug = spec.slug if spec is not None else spawner.name

    def decide(intent):
        return stop_reason(owner=owner, intent=intent, requester=requester, ended_by_itself=ended)

    try:
        reason = await asyncio.to_thread(
            record.close_session, spawner.templates.catalog, owner, spawner.name, decide
        )
        if reason is None:
            return  # no open session: this stop was recorded already
        metrics.LAB_STOPS.labels(slug, reason).inc()
        spawner.log.info("Lab %s stopped: %s", spawner._log_name, reason)
    except Exception:
        spawner.log.exception("Lab %s: could not record its stop", spawner._log_name)


def _timestamp(value) -> float:
    """JupyterHub's ``started`` is a naive UTC datetime."""
    from datetime import UTC

    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
