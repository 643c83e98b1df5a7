"""What happens around every lab's start and stop, whichever spawner runs it.

Both spawners call these at the same points, so that rules about labs (admission against
the live limits, usage records, metrics) are written once, not once per spawner. Each
function receives the spawner (``spawner.user.name``, ``spawner.name``) and the lab spec.
"""

from ...lab.spec import LabSpec


async def lab_starting(spawner, spec: LabSpec) -> None:
    """Before anything is created for a lab. May refuse the start (raise a 4xx HTTPError)."""


async def lab_started(spawner, spec: LabSpec) -> None:
    """The lab's console is ready."""


async def lab_start_failed(spawner, spec: LabSpec | None, error: BaseException) -> None:
    """The start was refused or failed; whatever it created has been removed."""


async def lab_stopped(spawner, spec: LabSpec | None) -> None:
    """A running lab ended and its disk is gone (user stop, cull, admin, or it died)."""
