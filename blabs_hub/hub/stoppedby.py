"""Who made the hub stop a lab, found from the asyncio task doing the stop.

JupyterHub (5.x and 6.x) stops a server in one of two ways:

- a request (the REST API, the admin panel, the home page) calls
  ``BaseHandler.stop_single_user``, which runs ``stop()`` — a closure over the handler —
  as its own task: the task's coroutine is ``stop_single_user.<locals>.stop`` and its
  frame holds ``self``, the handler, whose ``current_user`` is the caller;
- the hub's poll noticed the server's processes are gone and a ``user_stopped`` callback
  stops it.

Nothing is patched: this only reads the running task. If a future JupyterHub changes the
shape, both functions answer "don't know" and the reason falls back to ``unknown``.
"""

import asyncio

from ..usage.reasons import Requester


def _coroutine_chain(task) -> list:
    chain = []
    coro = task.get_coro() if task is not None else None
    while coro is not None and len(chain) < 50:
        chain.append(coro)
        coro = getattr(coro, "cr_await", None)
    return chain


def stop_context() -> tuple[Requester | None, bool]:
    """``(requester, ended_by_itself)`` for the stop running in the current task."""
    try:
        chain = _coroutine_chain(asyncio.current_task())
    except RuntimeError:
        return None, False
    for coro in chain:
        qualname = getattr(coro, "__qualname__", "")
        if qualname.endswith("stop_single_user.<locals>.stop"):
            frame = getattr(coro, "cr_frame", None)
            handler = frame.f_locals.get("self") if frame is not None else None
            caller = getattr(handler, "current_user", None)
            name = getattr(caller, "name", None)
            if name:
                return Requester(getattr(caller, "kind", "user") or "user", name), False
            return None, False
        if qualname.endswith("user_stopped"):
            return None, True
    return None, False
