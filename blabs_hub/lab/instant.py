"""Instant start, the launcher's half: save a preparation lab as ready state, resume from it.

Kept beside :mod:`blabs_hub.lab.launcher` as a mixin of its :class:`Launcher` (it needs the
launcher's QEMU process, QMP client and stage writer); the decisions are pure functions in
:mod:`blabs_hub.lab.readystate` and :mod:`blabs_hub.lab.qemu`.

Save (``mode == "prepare"``, on SIGUSR1 or a ``save-request`` file in the lab folder): pause,
migrate RAM and device state into ``state.bin`` over a file descriptor handed to QEMU through
QMP (``getfd``), copy the overlay (consistent: migration flushes and inactivates the disks) as
the read-only ``layer.qcow2``, write ``meta.json`` last, then swap the folder into place. Any
failure (e.g. disk full) removes the half-written folder and continues the VM: nothing is lost,
the admin can free space and save again. On success the preparation lab ends.

Resume (``mode == "run"`` with a usable state): the overlay goes on the frozen layer, QEMU
starts paused with ``-incoming fd:N``; the state's sha256 is checked while QEMU loads it; then
``cont``. Any failure (metadata says unusable, QEMU refuses the stream, checksum mismatch)
kills that QEMU, deletes its overlay, and the lab cold-boots from the base image, with the
reason in the stage messages and the launcher log.

What the guest sees after a resume: its system clock continues from the moment of the save
(it is behind by the age of the state) until something resyncs it — QEMU cannot set a guest's
system clock without a guest agent. The emulated CMOS RTC follows the host clock
(``-rtc clock=host``, QEMU's default), so a guest that reads the RTC, or syncs over the
network (Windows' time service, NTP), gets the right time. The launcher bounces the network
link (``set_link`` off, on) right after resuming, so the guest sees a cable reconnect and
renews its DHCP lease (passt hands out the host's or pod's own address, which can differ
from the preparing lab's; slirp always 10.0.2.15) — Windows re-runs network detection and
time sync on that; TCP connections open at save time are gone.
"""

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

from blabs_hub.lab import disk
from blabs_hub.lab.network import NETDEV_ID
from blabs_hub.lab.qemu import build_resume_argv
from blabs_hub.lab.readystate import (
    ReadyPaths,
    check_ready_state,
    file_size,
    qemu_version,
    read_meta,
    save_request_file,
    sha256_file,
    state_metadata,
    write_meta,
    write_save_status,
)
from blabs_hub.lab.status import write_stage

SAVE_REQUEST_FILE = "save-request"
STATE_FD_NAME = "blabs-state"


class ResumeFailed(Exception):
    """The saved state cannot be used for this lab; the message is the logged reason."""


class SaveFailed(Exception):
    """The ready state could not be saved; the VM continues."""


def log(message: str) -> None:
    print(f"blabs-launcher: {message}", file=sys.stderr, flush=True)


class InstantStartMixin:
    """Save and resume for :class:`blabs_hub.lab.launcher.Launcher`."""

    # --- resume --------------------------------------------------------------------------

    async def _try_resume(self, argv: list[str]) -> bool:
        """Resume from the template's ready state; False (reason logged) to cold-boot instead."""
        ready = ReadyPaths(Path(self.spec.ready_dir))
        try:
            version = await asyncio.to_thread(qemu_version, self.runtime.qemu_binary)
            verdict = check_ready_state(
                read_meta(ready),
                self.spec,
                qemu_version=version,
                argv=argv,
                workdir=self.paths.workdir,
                state_size=file_size(ready.state),
                layer_exists=ready.layer.is_file(),
            )
            if not verdict.usable:
                raise ResumeFailed(verdict.reason)
            await self._resume(ready, argv)
            return True
        except ResumeFailed as e:
            self.cold_reason = str(e)
        except Exception as e:  # noqa: BLE001 - whatever went wrong, a cold boot still works
            self.cold_reason = f"{type(e).__name__}: {e}"
        log(f"no instant start, cold boot: {self.cold_reason}")
        await self._discard_qemu()
        disk.remove_overlay(self.paths.overlay)
        return False

    async def _resume(self, ready: ReadyPaths, argv: list[str]) -> None:
        try:
            await asyncio.to_thread(
                disk.create_overlay,
                ready.layer,
                "qcow2",
                self.paths.overlay,
                qemu_img=self.runtime.qemu_img_binary,
            )
        except disk.DiskError as e:
            raise ResumeFailed(str(e)) from None
        self._mark("disk_ready")
        write_stage(self.paths, "disk-ready", "The lab's disk is ready (on the saved layer)")
        if read_meta(ready).get("efivars") and self.files.efi_vars.exists():
            shutil.copyfile(ready.efivars, self.files.efi_vars)
        fd = os.open(ready.state, os.O_RDONLY | os.O_CLOEXEC)
        try:
            await self._start_qemu(build_resume_argv(argv, fd), pass_fds=(fd,))
        finally:
            os.close(fd)
        write_stage(
            self.paths,
            "loading-state",
            "Resuming the VM from its saved state",
            qemu_pid=self.qemu.pid,
        )
        checksum = None
        if self.runtime.verify_state_checksum:
            checksum = asyncio.ensure_future(asyncio.to_thread(sha256_file, ready.state))
        try:
            await self._wait_incoming()
            if checksum is not None and await checksum != read_meta(ready).get("state_sha256"):
                raise ResumeFailed("the state file's checksum does not match: it is corrupt")
        finally:
            if checksum is not None and not checksum.done():
                checksum.cancel()
        await self.qmp.execute("cont")
        await self._bounce_network()
        self._mark("state_loaded")
        write_stage(
            self.paths,
            "state-loaded",
            "The VM resumed from its saved state",
            qemu_pid=self.qemu.pid,
        )

    async def _wait_incoming(self) -> None:
        """Wait until QEMU has loaded the incoming state (runstate leaves ``inmigrate``)."""
        deadline = time.monotonic() + self.runtime.console_timeout_seconds
        try:
            self.qmp = await self._connect_qmp()
        except Exception:  # noqa: BLE001 - QEMU exits at once on a stream it cannot parse
            if self.qemu.returncode is None:
                raise
            cause = await self._exit_cause()
            raise ResumeFailed(f"QEMU could not load the saved state: {cause}") from None
        while True:
            try:
                status = (await self.qmp.execute("query-status"))["status"]
            except Exception:  # noqa: BLE001 - QEMU exits when the stream is bad
                status = None
            if status is None or self.qemu.returncode is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.qemu.wait(), 5)
                if self.qemu.returncode is None:
                    raise ResumeFailed("QEMU stopped answering while loading the saved state")
                cause = await self._exit_cause()
                raise ResumeFailed(f"QEMU could not load the saved state: {cause}")
            if status == "paused":
                return
            if status != "inmigrate":
                raise ResumeFailed(f"QEMU is {status!r} after loading the saved state")
            if time.monotonic() > deadline:
                raise ResumeFailed("loading the saved state took too long")
            await asyncio.sleep(0.02)

    async def _bounce_network(self) -> None:
        """Link down and up: the guest renews DHCP and notices it is on a network again."""
        if self.spec.network == "none":
            return
        with contextlib.suppress(Exception):
            await self.qmp.execute("set_link", {"name": NETDEV_ID, "up": False})
            await asyncio.sleep(0.1)
            await self.qmp.execute("set_link", {"name": NETDEV_ID, "up": True})

    async def _discard_qemu(self) -> None:
        """Kill a QEMU that will not be used (failed resume) and forget it."""
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.qmp.disconnect(), 2)
            self.qmp = None
        if self.qemu is not None:
            if self.qemu.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.qemu.kill()
            await self.qemu.wait()
            self.qemu = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        self.output.clear()

    def _mark(self, name: str) -> None:
        self.timings[name] = round(time.monotonic() - self.started, 3)

    # --- save ----------------------------------------------------------------------------

    def _install_save_triggers(self) -> None:
        if self.spec.mode != "prepare":
            return
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self.save_requested.set)
        if self.spec.ready_dir:  # a request left from an earlier preparation is not for us
            save_request_file(self.spec.ready_dir).unlink(missing_ok=True)
        self._tasks.append(asyncio.ensure_future(self._poll_save_request()))

    async def _poll_save_request(self) -> None:
        """A ``save-request`` file asks for a save: in the lab folder (kubectl exec), or beside
        the ready state (the blabs service's "Save as ready state")."""
        requests = [self.paths.workdir / SAVE_REQUEST_FILE]
        if self.spec.ready_dir:
            requests.append(save_request_file(self.spec.ready_dir))
        while True:
            for request in requests:
                if request.exists():
                    request.unlink(missing_ok=True)
                    self.save_requested.set()
            await asyncio.sleep(0.2)

    def _report_preparation(self, record: dict) -> None:
        """Tell the service how the preparation lab is doing (beside the ready state)."""
        if self.spec.mode == "prepare" and self.spec.ready_dir:
            with contextlib.suppress(OSError):
                write_save_status(self.spec.ready_dir, record)

    async def _save_ready_state(self) -> tuple[str, str] | None:
        """Save; the ending of the lab on success, None (VM running again) on failure."""
        if not self.spec.ready_dir:
            write_stage(self.paths, "save-failed", "this lab has no ready-state folder")
            return None
        self._report_preparation(
            write_stage(self.paths, "saving-state", "Saving the VM as the template's ready state")
        )
        target = Path(self.spec.ready_dir)
        tmp = target.parent / f".{target.name}.saving-{secrets.token_hex(4)}"
        begun = time.monotonic()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            meta = await self._write_ready_state(ReadyPaths(tmp))
            old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
            if target.exists():
                os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        except (SaveFailed, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            message = str(e) if isinstance(e, SaveFailed) else f"{e.strerror}: {e.filename}"
            with contextlib.suppress(Exception):
                await self.qmp.execute("cont")
            log(f"saving the ready state failed, the VM continues: {message}")
            record = write_stage(
                self.paths,
                "save-failed",
                f"The ready state was not saved ({message}); the VM continues, nothing was "
                "changed: free space or fix the cause and save again",
            )
            self._report_preparation(record)
            return None
        record = write_stage(
            self.paths,
            "state-saved",
            "Ready state saved: labs of this template now start from it",
            seconds=round(time.monotonic() - begun, 3),
            state_size=meta["state_size"],
            ready_dir=str(target),
        )
        self._report_preparation(record)
        return "stopped", "Ready state saved; the preparation lab has ended"

    async def _write_ready_state(self, ready: ReadyPaths) -> dict:
        await self.qmp.execute("stop")
        fd = os.open(ready.state, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            self.qmp.send_fd_scm(fd)
            await self.qmp.execute("getfd", {"fdname": STATE_FD_NAME})
        finally:
            os.close(fd)
        await self.qmp.execute("migrate", {"uri": f"fd:{STATE_FD_NAME}"})
        while True:
            info = await self.qmp.execute("query-migrate")
            status = info.get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled"):
                cause = info.get("error-desc", status)
                raise SaveFailed(f"QEMU could not write the state: {cause}")
            await asyncio.sleep(0.05)
        # The disks were flushed and inactivated at the end of migration: the overlay is
        # consistent and belongs to exactly this memory state.
        await asyncio.to_thread(shutil.copyfile, self.paths.overlay, ready.layer)
        os.chmod(ready.layer, 0o444)
        has_efivars = self.files.efi_vars.exists()
        if has_efivars:
            await asyncio.to_thread(shutil.copyfile, self.files.efi_vars, ready.efivars)
        version = await asyncio.to_thread(qemu_version, self.runtime.qemu_binary)
        meta = state_metadata(
            self.spec,
            qemu_version=version,
            argv=self.argv,
            workdir=self.paths.workdir,
            state_size=ready.state.stat().st_size,
            state_sha256=await asyncio.to_thread(sha256_file, ready.state),
            saved_at=time.time(),
            has_efivars=has_efivars,
        )
        write_meta(ready, meta)
        return meta
