"""The start gate: at most N labs *starting* at once, first come first served.

Admission (:mod:`.admission`) decides whether a lab may have a seat; the gate only spaces
out the starts of admitted labs so that a class of 200 clicking at once does not ask the
cluster (image pulls, QEMU boots, the API server) for 200 pods in the same second. A lab
waiting at the gate keeps its seat and sees its place in line on the spawn page; it is
never refused for being in a burst. (JupyterHub's ``concurrent_spawn_limit`` would refuse
with a bare "Too many users trying to log in right now" 429 instead, so it stays off.)

The queue is plain bookkeeping on the hub's one event loop; a slot is freed when the hub's
whole spawn (start + proxy route) ends, however it ends. Its size is the live setting
``max_concurrent_starts``, read with the other limits on every start: a change applies
from the next start on (raising it then lets labs already waiting go too; lowering it lets
the starts under way finish).
"""

import asyncio
from collections import deque


class StartGate:
    """A FIFO of waiters and a set of keys holding a start slot."""

    def __init__(self, limit: int):
        self.limit = limit
        self.starting: set = set()
        self.waiting: deque = deque()  # (key, future)

    def set_limit(self, limit: int) -> None:
        """A new size; waiters that now fit are let through, in order."""
        self.limit = limit
        self._admit_waiters()

    def position(self, key) -> int:
        """1 for the next in line; 0 when ``key`` is not waiting."""
        for i, (k, _f) in enumerate(self.waiting, 1):
            if k == key:
                return i
        return 0

    async def enter(self, key) -> None:
        """Return when ``key`` holds a slot; call :meth:`leave` when its start is over."""
        if len(self.starting) < self.limit and not self.waiting:
            self.starting.add(key)
            return
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((key, future))
        try:
            await future
        except asyncio.CancelledError:
            self.waiting = deque((k, f) for k, f in self.waiting if f is not future)
            if future.done() and not future.cancelled():
                self.leave(key)  # granted and cancelled in the same turn
            raise

    def leave(self, key) -> None:
        self.starting.discard(key)
        self._admit_waiters()

    def _admit_waiters(self) -> None:
        while self.waiting and len(self.starting) < self.limit:
            key, future = self.waiting.popleft()
            if future.done():
                continue
            self.starting.add(key)
            future.set_result(None)


_gate: StartGate | None = None


def hub_gate() -> StartGate:
    """The hub's one gate; its size is set from the settings row before each start."""
    global _gate
    if _gate is None:
        _gate = StartGate(1)
    return _gate


async def queue_progress(spawner):
    """Progress events while a lab waits at the start gate ("yours is number 3 in line")."""
    gate = hub_gate()
    shown = None
    while (place := gate.position(spawner)) or shown is None:
        if place and place != shown:
            where = "next" if place == 1 else f"number {place}"
            yield {"progress": 5, "message": f"Many labs are starting: yours is {where} in line"}
        shown = place
        if not place:
            return
        await asyncio.sleep(0.5)
