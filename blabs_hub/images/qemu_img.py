"""qemu-img, run the only safe way: explicit ``-f``, CPU/memory/time limits, off the event loop.

The argument lists are built by pure functions (:func:`limited`, :func:`info_argv`, ...);
:func:`run` is the I/O: an asyncio subprocess (so the service's event loop keeps serving
while qemu-img works), killed by its PID when it runs past its wall-clock limit. Limits
are applied by util-linux ``prlimit`` when present, else by ``setrlimit`` in the child.
"""

import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("blabs.images")

PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    memory_bytes: int
    timeout_seconds: float


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def message(self) -> str:
        text = self.stderr.decode(errors="replace").strip() or f"exit status {self.returncode}"
        return text.splitlines()[-1][:500]

    def json(self) -> dict | None:
        try:
            return json.loads(self.stdout)
        except ValueError:
            return None


class QemuImgTimeout(RuntimeError):
    pass


def limited(argv: list[str], limits: Limits, prlimit: str | None) -> list[str]:
    """``argv`` under CPU and address-space limits (``prlimit`` prefix, if available)."""
    if prlimit is None:
        return list(argv)
    return [
        prlimit,
        f"--cpu={limits.cpu_seconds}",
        f"--as={limits.memory_bytes}",
        "--",
        *argv,
    ]


def info_argv(path: str, fmt: str) -> list[str]:
    return ["qemu-img", "info", "-f", fmt, "--output=json", path]


def check_argv(path: str, fmt: str) -> list[str]:
    return ["qemu-img", "check", "-f", fmt, "--output=json", path]


def convert_argv(src: str, src_fmt: str, dest: str) -> list[str]:
    """To qcow2, no backing file, compat 1.1; ``-p`` prints progress we parse."""
    return [
        "qemu-img",
        "convert",
        "-p",
        "-f",
        src_fmt,
        "-O",
        "qcow2",
        "-o",
        "compat=1.1",
        src,
        dest,
    ]


def _setrlimits(limits: Limits) -> Callable[[], None]:
    def apply():
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))

    return apply


async def run(
    argv: list[str],
    limits: Limits,
    on_progress: Callable[[float], None] | None = None,
) -> Result:
    """Run a qemu-img command under ``limits``; ``on_progress(fraction)`` for ``-p`` output."""
    prlimit = shutil.which("prlimit")
    full = limited(argv, limits, prlimit)
    proc = await asyncio.create_subprocess_exec(
        *full,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=None if prlimit else _setrlimits(limits),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
    )
    stdout = bytearray()

    async def read_stdout():
        while chunk := await proc.stdout.read(4096):
            stdout.extend(chunk)
            if on_progress:
                found = PROGRESS.findall(chunk)
                if found:
                    on_progress(float(found[-1]) / 100)
            if len(stdout) > 1 << 20:  # progress lines: keep the tail only
                del stdout[: len(stdout) - (1 << 16)]

    async def communicate():
        _, stderr = await asyncio.gather(read_stdout(), proc.stderr.read())
        await proc.wait()
        return stderr

    try:
        stderr = await asyncio.wait_for(communicate(), limits.timeout_seconds)
    except (TimeoutError, asyncio.CancelledError) as e:
        _kill(proc.pid)
        await proc.wait()
        if isinstance(e, asyncio.CancelledError):
            raise
        raise QemuImgTimeout(
            f"qemu-img {argv[1]} took longer than {limits.timeout_seconds:.0f} s and was stopped"
        ) from None
    return Result(proc.returncode, bytes(stdout), stderr)


def _kill(pid: int) -> None:
    """Kill qemu-img (and prlimit's exec'd child: same PID, prlimit execs)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
