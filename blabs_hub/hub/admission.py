"""Admission: may this lab start now? One function decides, against the live settings row.

:func:`decide` is pure: the settings, the counts, the user → :class:`Admit` or
:class:`Refuse` with a message in a student's words. :func:`admit` is the thin part inside
the hub process: it reads the settings row, counts the labs the hub already holds in memory
and marks the lab admitted — with no ``await`` between counting and marking, so that in the
hub's single asyncio loop two simultaneous starts can never both take the last seat.

Why JupyterHub's own limits stay off (``active_server_limit``, ``named_server_limit_per_user``
and ``concurrent_spawn_limit`` are left at 0, never written into
``tornado_application.settings``):

- one source of truth: the settings row is what admins edit, and :func:`decide` reads it at
  every start, so a change applies to the next start with nothing to copy or keep in sync;
- their ``0`` means "unlimited", ours means "no new labs": a mapping would need a special
  case, and their answers are bare 429/400s, not sentences a student can act on;
- ``active_server_limit`` counts every pending spawn, including ones about to be refused;
  ``named_server_limit_per_user`` counts *stopped* named servers too, so a student with one
  stopped lab could not start another. Ours counts only running, stopping, and admitted
  starting labs, so named servers may stay in the hub's database after a stop (the culler
  removes the ones it culls).

The burst protection is a start gate instead (:mod:`.startgate`): an admitted lab waits,
first come first served, for one of ``max_concurrent_starts`` start slots; it is never
refused for being in a burst.
"""

from dataclasses import dataclass

from tornado import web

# The attribute on a spawner that marks its current start as admitted: the value is the
# start time JupyterHub stamped on this spawn (``orm_spawner.started``), so a mark left from
# an earlier run of the same named server never counts for a new, not yet admitted, start.
ADMITTED = "_blabs_admitted_for"


@dataclass(frozen=True)
class Counts:
    """Labs that hold a seat right now: on the whole hub, and of the user asking."""

    total: int
    user: int


@dataclass(frozen=True)
class Admit:
    pass


@dataclass(frozen=True)
class Refuse:
    """``kind`` is stable (for metrics and tests); ``message`` is shown to the student."""

    kind: str  # "closed" | "user-closed" | "full" | "user-limit"
    message: str
    status: int


def _labs(n: int) -> str:
    return f"{n} lab" if n == 1 else f"{n} labs"


def decide(max_concurrent_vms: int, per_user_vm_limit: int, counts: Counts) -> Admit | Refuse:
    """Admit or refuse one start. ``counts`` excludes the lab being decided.

    0 in either limit means "no new labs" (labs already running go on), not "unlimited".
    """
    if max_concurrent_vms <= 0:
        return Refuse(
            "closed",
            "New labs are switched off right now (the hub's lab limit is 0); labs already "
            "running go on. Ask your instructor when labs open again.",
            403,
        )
    if per_user_vm_limit <= 0:
        return Refuse(
            "user-closed",
            "Starting labs is switched off right now (the per-person lab limit is 0); labs "
            "already running go on. Ask your instructor when labs open again.",
            403,
        )
    if counts.user >= per_user_vm_limit:
        them = "it" if counts.user == 1 else "one"
        return Refuse(
            "user-limit",
            f"You already have {_labs(counts.user)} running (the limit is "
            f"{per_user_vm_limit} per person): stop {them} to start another.",
            409,
        )
    if counts.total >= max_concurrent_vms:
        return Refuse(
            "full",
            f"All {max_concurrent_vms} lab seats are in use. Try again in a few minutes, "
            "when someone stops their lab.",
            429,
        )
    return Admit()


def holds_seat(spawner) -> bool:
    """Running, stopping, or starting after admission: a lab that uses (or will) a machine."""
    pending = spawner.pending
    if pending == "spawn":
        started = getattr(spawner.orm_spawner, "started", None)
        return started is not None and getattr(spawner, ADMITTED, None) == started
    if pending:  # "stop", "check" or "proxy": the lab exists
        return True
    return spawner.ready


def count_seats(users, user_name: str, exclude) -> Counts:
    """Seats held across ``users`` (JupyterHub's in-memory UserDict values)."""
    total = mine = 0
    for user in users:
        for spawner in list(user.spawners.values()):
            if spawner is exclude or not holds_seat(spawner):
                continue
            total += 1
            if user.name == user_name:
                mine += 1
    return Counts(total=total, user=mine)


def hub_users():
    """The running hub's users (all users with a server are loaded at hub start)."""
    from jupyterhub.app import JupyterHub

    return JupyterHub.instance().users.values()


def admit(spawner, settings, users=None) -> None:
    """Decide for ``spawner``'s start and mark it admitted, or raise the refusal as a 4xx.

    Synchronous on purpose: count and mark happen in one step of the event loop.
    """
    counts = count_seats(hub_users() if users is None else users, spawner.user.name, spawner)
    verdict = decide(settings.max_concurrent_vms, settings.per_user_vm_limit, counts)
    if isinstance(verdict, Refuse):
        spawner.log.info(
            "Lab %s refused (%s): %s seats used, %s of the user's",
            spawner._log_name,
            verdict.kind,
            counts.total,
            counts.user,
        )
        error = web.HTTPError(verdict.status, verdict.message)
        error.blabs_refusal = verdict.kind
        error.jupyterhub_message = verdict.message
        raise error
    setattr(spawner, ADMITTED, getattr(spawner.orm_spawner, "started", None))
