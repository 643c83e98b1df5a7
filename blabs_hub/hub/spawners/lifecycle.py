"""What happens around every lab's start and stop, whichever spawner runs it.

Both spawners call these at the same points, so that rules about labs (admission against
the live limits, usage records, metrics) are written once, not once per spawner. Each
function receives the spawner (``spawner.user.name``, ``spawner.name``) and the lab spec.
"""

from ...lab.spec import LabSpec
from .. import admission, startgate


async def lab_starting(spawner, spec: LabSpec) -> None:
    """Before anything is created for a lab. May refuse the start (raise a 4xx HTTPError).

    Admission against the live settings row (one function decides: :mod:`..admission`),
    then a place in line at the start gate (:mod:`..startgate`); the slot is given back
    when the hub's spawn of this lab ends, however it ends.
    """
    admission.admit(spawner, spawner.templates.catalog.settings())
    gate = startgate.hub_gate(spawner.config)
    await gate.enter(spawner)
    spawn = getattr(spawner, "_spawn_future", None)
    if spawn is None or spawn.done():
        gate.leave(spawner)  # not started through the hub's spawn path: nothing to wait for
    else:
        spawn.add_done_callback(lambda _f: gate.leave(spawner))


async def lab_started(spawner, spec: LabSpec) -> None:
    """The lab's console is ready."""


async def lab_start_failed(spawner, spec: LabSpec | None, error: BaseException) -> None:
    """The start was refused or failed; whatever it created has been removed."""


async def lab_stopped(spawner, spec: LabSpec | None) -> None:
    """A running lab ended and its disk is gone (user stop, cull, admin, or it died)."""
