"""The launcher's child processes: how they are started, watched and stopped.

Every child (QEMU and its helpers: passt for the network, swtpm for a TPM) gets an
environment reduced to an allowlist, so the hub's token (``JUPYTERHUB_API_TOKEN``) never
reaches a guest's emulator; ``PR_SET_PDEATHSIG``, so it dies with a SIGKILLed launcher; and
its own process group, so a Ctrl-C in a terminal reaches the launcher only, which then
stops them in order instead of racing them.
"""

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import time
from pathlib import Path

from blabs_hub.lab.network import passt_argv
from blabs_hub.lab.qemu import swtpm_argv

# What the children may see of the launcher's environment. TZ matters for Windows'
# local-time clock; nothing else here is needed, and everything else may be a secret.
ENV_ALLOWLIST = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
PR_SET_PDEATHSIG = 1


class LaunchFailed(Exception):
    """The lab cannot run; the message is shown to the student and names the cause."""


def child_environment(environ: dict) -> dict:
    """The environment of every child (pure): the allowlist and ``LC_*`` only."""
    return {k: v for k, v in environ.items() if k in ENV_ALLOWLIST or k.startswith("LC_")}


def die_with_parent(parent_pid: int):
    """preexec_fn: SIGKILL the child when the launcher dies, however it dies."""

    def preexec():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the launcher died before prctl took effect
            os._exit(1)

    return preexec


async def wait_or_kill(proc: asyncio.subprocess.Process, timeout: float) -> None:
    """Give ``proc`` ``timeout`` seconds to exit (it has been asked to), then SIGKILL it."""
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def terminate(proc: asyncio.subprocess.Process | None, timeout: float = 2) -> None:
    """SIGTERM ``proc`` if it still runs, then :func:`wait_or_kill`; None is a no-op."""
    if proc is None:
        return
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    await wait_or_kill(proc, timeout)


class ChildProcessesMixin:
    """Starting and stopping the helpers of :class:`blabs_hub.lab.launcher.Launcher`."""

    async def _spawn(self, argv: list[str], pass_fds=()) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=child_environment(dict(os.environ)),
                cwd=self.paths.workdir,
                preexec_fn=die_with_parent(os.getpid()),
                process_group=0,
                pass_fds=pass_fds,
            )
        except OSError as e:
            raise LaunchFailed(f"cannot run {argv[0]}: {e.strerror}") from None

    async def _start_swtpm(self) -> Path:
        self.files.tpm_dir.mkdir(exist_ok=True)
        self.files.tpm_socket.unlink(missing_ok=True)
        argv = swtpm_argv(self.runtime.swtpm_binary, self.files.tpm_dir, self.files.tpm_socket)
        self.swtpm = await self._spawn(argv)
        self._tasks.append(asyncio.ensure_future(self._drain(self.swtpm, "swtpm")))
        deadline = time.monotonic() + 5
        while not self.files.tpm_socket.exists():
            if self.swtpm.returncode is not None or time.monotonic() > deadline:
                raise LaunchFailed(f"the software TPM did not start: {self._output_tail()}")
            await asyncio.sleep(0.02)
        return self.files.tpm_socket

    async def _start_passt(self) -> socket.socket:
        """passt on one end of a new socket pair; the other end is for the next QEMU."""
        await self._stop_passt()  # the previous QEMU's (a failed resume), if still there
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = passt_argv(self.runtime.passt_binary, theirs.fileno())
            self.passt = await self._spawn(argv, pass_fds=(theirs.fileno(),))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._tasks.append(asyncio.ensure_future(self._drain(self.passt, "passt")))
        return ours

    async def _stop_passt(self) -> None:
        """passt exits when QEMU closes the socket; this is for when QEMU never started."""
        await terminate(self.passt)
        self.passt = None

    def _check_network(self) -> None:
        """A passt that exited with an error (it could not sandbox itself, say) leaves the
        guest without a network: fail the lab and say why rather than run it cut off."""
        if self.passt is not None and self.passt.returncode not in (None, 0):
            raise LaunchFailed(
                f"the guest's network (passt) did not start: {self._output_tail()} "
                "(see BLABS_LAB_NETWORK)"
            )

    async def _drain(self, proc: asyncio.subprocess.Process, name: str) -> None:
        """Keep the last lines of a child's output for the failure message, and log them."""
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            self.output.append(text)
            print(f"{name}: {text}", file=sys.stderr, flush=True)
