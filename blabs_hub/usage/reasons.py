"""Why a lab stopped: one pure decision from what the hub side could observe.

A spawner's ``stop()`` is not told who asked for it. What can be known, in order of trust:

1. an *intent* written by whoever is about to stop a lab (the culler writes ``idle`` or
   ``max-session``, the console's stop page writes ``user``), consumed by the hub's
   ``lab_stopped`` hook;
2. the *requester* of the stop: JupyterHub stops a server from a request handler
   (``BaseHandler.stop_single_user``); the handler's authenticated caller is the owner
   (``user``), another user (``admin``), or a service (the culler: ``idle``);
3. JupyterHub noticed the lab's processes were gone (its poll callback): ``failure``;
4. otherwise ``unknown`` — an honest value, e.g. when a future JupyterHub moves things.
"""

from dataclasses import dataclass

REASONS = ("user", "idle", "max-session", "admin", "failure", "unknown")

# The culler's verdicts (blabs_hub/culler.py) as usage reasons.
CULLER_VERDICTS = {"idle": "idle", "disconnected": "idle", "session": "max-session"}


@dataclass(frozen=True)
class Requester:
    """Who asked the hub to stop the lab: ``kind`` is "user" or "service"."""

    kind: str
    name: str


def normalize_intent(reason: str | None) -> str | None:
    """An intent as one of :data:`REASONS` (culler verdicts mapped), or None if unusable."""
    if not reason:
        return None
    reason = CULLER_VERDICTS.get(reason, reason)
    return reason if reason in REASONS else None


def stop_reason(
    *,
    owner: str,
    intent: str | None = None,
    requester: Requester | None = None,
    ended_by_itself: bool = False,
    culler_services: tuple[str, ...] = ("blabs-culler",),
) -> str:
    """The usage reason for one stop (see the module's docstring for the order)."""
    from_intent = normalize_intent(intent)
    if from_intent:
        return from_intent
    if requester is not None:
        if requester.kind == "service":
            return "idle" if requester.name in culler_services else "admin"
        return "user" if requester.name == owner else "admin"
    if ended_by_itself:
        return "failure"
    return "unknown"


def failure_kind(error: BaseException) -> str:
    """A stable label for a failed or refused start (metrics): the admission's refusal
    kind when there is one, else what kind of failure it was."""
    refusal = getattr(error, "blabs_refusal", None)
    if refusal:
        return str(refusal)
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
        return "timeout"
    status = getattr(error, "status_code", None)
    if status is not None and 400 <= status < 500:
        return "bad-request"
    if "cancel" in type(error).__name__.lower():
        return "cancelled"
    return "error"
