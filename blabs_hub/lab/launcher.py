"""The launcher: one process per lab that owns its VM from disk preparation to cleanup.

``python -m blabs_hub.lab.launcher --workdir DIR [--spec FILE]`` (the spec is JSON, from
``--spec`` or ``$BLABS_LAB_SPEC``, which holds JSON or a file path). It reports stages to
``DIR/status.jsonl`` (see :mod:`blabs_hub.lab.status`):

``preparing-disk`` → ``booting`` (with ``accel``, ``slow_mode``, ``accel_reason``,
``qemu_pid``) → ``console-ready`` → ``stopped`` (SIGTERM/SIGINT, or the guest shut itself
down; exit 0) or ``failed`` (missing image, QEMU exited, SPICE never came up, the VM hit an
internal error; exit 1).

Whatever the ending, QEMU (its child) is gone, its helpers (passt, swtpm) are stopped and
the overlay, sockets, firmware vars and TPM state are deleted before the final stage is
written, so "stopped" or "failed" means "nothing left". QEMU gets ``PR_SET_PDEATHSIG`` so
that it dies with a SIGKILLed launcher too (the lab folder is then the spawner's to delete),
and an environment reduced to an allowlist, so the hub's token (``JUPYTERHUB_API_TOKEN``)
never reaches a guest's emulator.
"""

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from qemu.qmp import EventListener, QMPClient, Runstate
from traitlets import TraitError

from blabs_hub.config import BlabsConfigError
from blabs_hub.lab import disk
from blabs_hub.lab.accel import AccelChoice, resolve_accel_async
from blabs_hub.lab.children import ChildProcessesMixin, LaunchFailed, terminate, wait_or_kill
from blabs_hub.lab.config import LabRuntime
from blabs_hub.lab.instant import InstantStartMixin
from blabs_hub.lab.network import needs_passt, with_network_fd
from blabs_hub.lab.qemu import FirmwareFiles, build_qemu_argv
from blabs_hub.lab.spec import LabPaths, LabSpec
from blabs_hub.lab.status import write_stage

# Runstates after which the VM will not make progress by itself.
FATAL_RUNSTATES = ("internal-error", "guest-panicked", "io-error", "shutdown")
STDERR_LINES = 30


@dataclass(frozen=True)
class LabFiles:
    """Files of a lab beyond :class:`LabPaths`: UEFI vars copy and TPM state."""

    paths: LabPaths

    @property
    def efi_vars(self) -> Path:
        return self.paths.workdir / "efivars.fd"

    @property
    def tpm_dir(self) -> Path:
        return self.paths.workdir / "tpm"

    @property
    def tpm_socket(self) -> Path:
        return self.paths.workdir / "swtpm.sock"


def firmware_files_for(spec: LabSpec, ovmf_dir: Path, efi_vars: Path):
    """``(FirmwareFiles, vars template)`` for UEFI specs, ``(None, None)`` for BIOS (pure)."""
    if spec.firmware == "bios":
        return None, None
    ovmf_dir = Path(ovmf_dir)
    if spec.firmware == "uefi-secure-tpm":
        # secboot code + Microsoft keys enrolled: Windows 11 boots with secure boot on.
        code, template, secure = "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd", True
    else:
        code, template, secure = "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", False
    return FirmwareFiles(ovmf_dir / code, efi_vars, secure), ovmf_dir / template


class Launcher(InstantStartMixin, ChildProcessesMixin):
    """Runs one lab; :meth:`run` returns the process exit status."""

    def __init__(self, spec: LabSpec, paths: LabPaths, runtime: LabRuntime):
        self.spec = spec
        self.paths = paths
        self.files = LabFiles(paths)
        self.runtime = runtime
        self.stop_requested = asyncio.Event()
        self.qemu: asyncio.subprocess.Process | None = None
        self.swtpm: asyncio.subprocess.Process | None = None
        self.passt: asyncio.subprocess.Process | None = None
        self.qmp = None
        self.output = collections.deque(maxlen=STDERR_LINES)
        self.shutdown_reason: str | None = None
        self._tasks: list[asyncio.Task] = []
        # Instant start (blabs_hub.lab.instant): seconds since start of each stage, why a
        # ready state was not used, the machine's argv, and the admin's "save" request.
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.cold_reason: str | None = None
        self.argv: list[str] = []
        self.save_requested = asyncio.Event()

    # --- the whole life of a lab -------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
        self._install_save_triggers()
        try:
            stage, message = await self._run_lab()
        except LaunchFailed as e:
            stage, message = "failed", str(e)
        except Exception as e:  # a launcher bug must still clean up and say so
            stage, message = "failed", f"launcher error: {type(e).__name__}: {e}"
        await self._cleanup()
        final = write_stage(self.paths, stage, message)
        if not message.startswith("Ready state saved"):  # keep "state-saved" as last word
            self._report_preparation(final)
        print(f"blabs-launcher: {stage}: {message}", file=sys.stderr, flush=True)
        return 0 if stage == "stopped" else 1

    async def _run_lab(self) -> tuple[str, str]:
        self.started = started = time.monotonic()
        write_stage(self.paths, "preparing-disk", "Preparing the lab's disk")
        choice = await resolve_accel_async(
            self.runtime.accel,
            qemu_binary=self.runtime.qemu_binary,
            cache_file=Path(self.runtime.accel_cache_file),
        )
        self.argv = await self._prepare_machine(choice)
        resumed = False
        if self.spec.mode == "run" and self.spec.ready_dir:
            resumed = await self._try_resume(self.argv)
            if self.stop_requested.is_set():
                return "stopped", "Lab stopped before it started"
        if not resumed:
            ended = await self._cold_boot(choice)
            if ended:
                return ended
        ended = await self._wait_for_console()
        if ended:
            return ended
        self._mark("console_ready")
        ready = write_stage(
            self.paths,
            "console-ready",
            "The console is ready" + (" (resumed from the saved state)" if resumed else ""),
            qemu_pid=self.qemu.pid,
            seconds=round(time.monotonic() - started, 3),
            resumed=resumed,
            cold_reason=self.cold_reason,
            timings=self.timings,
            started_at=time.time() - (time.monotonic() - started),
        )
        self._report_preparation(ready)
        return await self._watch()

    async def _cold_boot(self, choice: AccelChoice) -> tuple[str, str] | None:
        """Boot from the base image: the overlay over it, then QEMU."""
        base = Path(self.spec.image_path)
        try:
            await asyncio.to_thread(
                disk.create_overlay,
                base,
                self.spec.image_format,
                self.paths.overlay,
                qemu_img=self.runtime.qemu_img_binary,
            )
        except disk.DiskError as e:
            raise LaunchFailed(str(e)) from None
        self._mark("disk_ready")
        if self.stop_requested.is_set():
            return "stopped", "Lab stopped before it booted"
        await self._start_qemu(self.argv)
        message = "Booting the VM"
        if self.cold_reason:
            message += f" (no instant start: {self.cold_reason})"
        if choice.slow_mode:
            message += f" in slow mode (software emulation): {choice.reason}"
        write_stage(
            self.paths,
            "booting",
            message,
            accel=choice.accel,
            slow_mode=choice.slow_mode,
            accel_reason=choice.reason,
            qemu_pid=self.qemu.pid,
            cold_reason=self.cold_reason,
        )
        return None

    # --- steps ---------------------------------------------------------------------------

    async def _prepare_machine(self, choice: AccelChoice) -> list[str]:
        firmware, vars_template = firmware_files_for(
            self.spec, Path(self.runtime.ovmf_dir), self.files.efi_vars
        )
        if firmware is not None:
            for needed in (firmware.code, vars_template):
                if not os.access(needed, os.R_OK):
                    raise LaunchFailed(f"UEFI firmware file {needed} is missing or unreadable")
            shutil.copyfile(vars_template, firmware.vars)
        tpm_socket = None
        if self.spec.firmware == "uefi-secure-tpm":
            tpm_socket = await self._start_swtpm()
        argv = build_qemu_argv(
            self.spec,
            self.paths,
            accel=choice.accel,
            qemu_binary=self.runtime.qemu_binary,
            firmware_files=firmware,
            tpm_socket=tpm_socket,
            tcg_cpu_model=self.runtime.tcg_cpu_model,
            network_backend=self.runtime.network_backend,
        )
        if needs_passt(argv) and not shutil.which(self.runtime.passt_binary):
            raise LaunchFailed(
                f"{self.runtime.passt_binary} is not installed, and this template has a "
                "network (install Debian's passt package, or see BLABS_LAB_NETWORK)"
            )
        return argv + list(self.runtime.qemu_extra_args)

    async def _start_qemu(self, argv: list[str], pass_fds=()) -> None:
        for sock in (self.paths.spice_socket, self.paths.qmp_socket):
            sock.unlink(missing_ok=True)
        network = await self._start_passt() if needs_passt(argv) else None
        try:
            if network is not None:
                argv = with_network_fd(argv, network.fileno())
                pass_fds = (*pass_fds, network.fileno())
            print("blabs-launcher: starting " + " ".join(argv), file=sys.stderr, flush=True)
            self.qemu = await self._spawn(argv, pass_fds)
        finally:
            if network is not None:  # QEMU holds its own copy; passt sees QEMU's exit
                network.close()
        self._tasks.append(asyncio.ensure_future(self._drain(self.qemu, "qemu")))

    async def _wait_for_console(self) -> tuple[str, str] | None:
        """Wait for the SPICE socket to accept; the ending instead if the lab ended first."""
        timeout = self.runtime.console_timeout_seconds
        deadline = time.monotonic() + timeout
        while True:
            if self.stop_requested.is_set():
                return "stopped", "Lab stopped while booting"
            if self.qemu.returncode is not None:
                raise LaunchFailed(await self._exit_cause())
            self._check_network()
            if await _accepts(self.paths.spice_socket):
                await self._wait_machine_created()
                self._check_network()
                return None
            if time.monotonic() > deadline:
                raise LaunchFailed(
                    f"the VM's console (SPICE socket) did not appear within {timeout:g} s"
                )
            await asyncio.sleep(0.02)

    async def _wait_machine_created(self) -> None:
        """SPICE listens before QEMU has created every device (the serial log file, for one);
        QMP answers from the main loop, after all of them: then the lab is really there."""
        if self.qmp is not None:
            return
        try:
            self.qmp = await self._connect_qmp()
            await asyncio.wait_for(self.qmp.execute("query-status"), 10)
        except Exception:  # noqa: BLE001 - say why in the lab's words
            if self.qemu.returncode is not None:
                raise LaunchFailed(await self._exit_cause()) from None
            raise LaunchFailed("QEMU's control socket (QMP) did not answer") from None

    async def _watch(self) -> tuple[str, str]:
        """Run until a stop is requested, QEMU exits, or QMP reports a dead VM."""
        exited = asyncio.ensure_future(self.qemu.wait())
        stop = asyncio.ensure_future(self.stop_requested.wait())
        events = asyncio.ensure_future(self._watch_qmp())
        save = asyncio.ensure_future(self.save_requested.wait())
        waiting = {exited, stop, events, save}
        try:
            while True:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if save in done and stop not in done:
                    self.save_requested.clear()
                    for _ in range(100):  # QMP may still be connecting right after boot
                        if self.qmp is not None or self.qemu.returncode is not None:
                            break
                        await asyncio.sleep(0.1)
                    if self.qmp is not None:
                        ended = await self._save_ready_state()
                        if ended:
                            return ended
                    save = asyncio.ensure_future(self.save_requested.wait())
                    waiting.add(save)
                    continue
                if stop in done:
                    return "stopped", "Lab stopped"
                if exited in done:
                    if self.shutdown_reason == "guest-shutdown":
                        return "stopped", "The VM was shut down from inside"
                    raise LaunchFailed(await self._exit_cause())
                if events in done and events.result():
                    raise LaunchFailed(events.result())
                # QMP went away without a verdict: QEMU's exit will tell.
        finally:
            for task in (exited, stop, events, save):
                task.cancel()

    async def _watch_qmp(self) -> str | None:
        """A failure message when the VM stops for good; None when QMP disconnects."""
        try:
            if self.qmp is None:  # a resume already holds the (single-client) monitor
                self.qmp = await self._connect_qmp()
            listener = EventListener()
            with self.qmp.listen(listener):
                status = (await self.qmp.execute("query-status"))["status"]
                if status in FATAL_RUNSTATES:
                    return await self._runstate_cause(status)
                async for event in listener:
                    name = event["event"]
                    if name == "SHUTDOWN":
                        self.shutdown_reason = event.get("data", {}).get("reason")
                    elif name in ("STOP", "GUEST_PANICKED"):
                        status = (await self.qmp.execute("query-status"))["status"]
                        if status in FATAL_RUNSTATES:
                            return await self._runstate_cause(status)
        except Exception as e:  # noqa: BLE001 - QMP is advisory; the process exit is not
            print(f"blabs-launcher: QMP watch ended: {e!r}", file=sys.stderr, flush=True)
        return None

    async def _connect_qmp(self, timeout: float = 10) -> QMPClient:
        """Connect to QMP; its socket may appear a little after SPICE's."""
        deadline = time.monotonic() + timeout
        while True:
            client = QMPClient(f"blabs-{self.spec.slug}")
            try:
                await asyncio.wait_for(client.connect(str(self.paths.qmp_socket)), 2)
                return client
            except Exception:
                if time.monotonic() > deadline or self.qemu.returncode is not None:
                    raise
            await asyncio.sleep(0.05)

    async def _exit_cause(self) -> str:
        """Why QEMU exited, from its status and the last lines it printed."""
        rc = await self.qemu.wait()
        for task in self._tasks:  # let the drain tasks read the last output
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 1)
        if rc < 0:
            cause = f"QEMU was killed by signal {signal.Signals(-rc).name}"
        else:
            cause = f"QEMU exited with status {rc}"
        tail = self._output_tail()
        return f"{cause}: {tail}" if tail else cause

    async def _runstate_cause(self, status: str) -> str:
        """A dead VM's status, with QEMU's own error line (e.g. "KVM internal error")."""
        await asyncio.sleep(0.2)  # QEMU prints the error as it stops; let the drain read it
        errors = [line.strip() for line in self.output if "error" in line.lower()]
        return f"the VM stopped: QEMU status {status}" + (f": {errors[0]}" if errors else "")

    def _output_tail(self, lines: int = 3) -> str:
        return " | ".join(line.strip() for line in list(self.output)[-lines:] if line.strip())

    # --- cleanup ---------------------------------------------------------------------------

    async def _cleanup(self) -> None:
        """Stop QEMU (QMP quit, then SIGKILL), passt and swtpm; delete every file of the lab."""
        if self.qemu is not None and self.qemu.returncode is None:
            if self.qmp is not None and self.qmp.runstate == Runstate.RUNNING:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.qmp.execute("quit"), 2)
                await wait_or_kill(self.qemu, self.runtime.stop_timeout_seconds)
            else:
                await terminate(self.qemu, self.runtime.stop_timeout_seconds)
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.qmp.disconnect(), 2)
        await self._stop_passt()
        await terminate(self.swtpm)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        disk.remove_overlay(self.paths.overlay)
        for path in (
            self.paths.spice_socket,
            self.paths.qmp_socket,
            self.files.tpm_socket,
            self.files.efi_vars,
        ):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.files.tpm_dir, ignore_errors=True)


async def _accepts(sock: Path) -> bool:
    """True when something accepts connections on unix socket ``sock``."""
    if not sock.exists():
        return False
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(sock)), 1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


# --- command line ------------------------------------------------------------------------


def load_spec(spec_file: str | None, environ: dict) -> LabSpec:
    """The spec from ``--spec FILE``, else ``$BLABS_LAB_SPEC`` (JSON text or a file path)."""
    if spec_file:
        return LabSpec.from_json(Path(spec_file).read_text())
    raw = environ.get("BLABS_LAB_SPEC", "").strip()
    if not raw:
        raise ValueError("no lab spec: pass --spec FILE or set BLABS_LAB_SPEC")
    if raw.startswith("{"):
        return LabSpec.from_json(raw)
    return LabSpec.from_json(Path(raw).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blabs_hub.lab.launcher", description="Run one lab's VM."
    )
    parser.add_argument("--workdir", required=True, help="the lab's scratch folder")
    parser.add_argument("--spec", help="lab spec JSON file (default: $BLABS_LAB_SPEC)")
    args = parser.parse_args(argv)
    paths = LabPaths(Path(args.workdir).absolute())
    try:
        paths.workdir.mkdir(parents=True, exist_ok=True)
        paths.check()
        spec = load_spec(args.spec, dict(os.environ))
        runtime = LabRuntime()
    except (OSError, ValueError, BlabsConfigError, TraitError) as e:
        message = f"cannot start the lab: {e}"
        with contextlib.suppress(OSError):
            write_stage(paths, "failed", message)
        print(f"blabs-launcher: {message}", file=sys.stderr)
        return 2
    return asyncio.run(Launcher(spec, paths, runtime).run())


if __name__ == "__main__":
    sys.exit(main())
