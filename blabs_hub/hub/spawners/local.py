"""Labs as local processes: the embedded default for one machine, demos and tests.

A lab is two processes, both children of the hub and both recorded in the hub's database:
the lab launcher (overlay disk + QEMU, from ``blabs_hub.lab.launcher``) and
``jupyterhub-singleuser`` with the console under jupyter-server-proxy. They run the very
code a lab pod runs on Kubernetes. After a hub restart the spawner finds them again by PID
(``JupyterHub.cleanup_servers = False``), or reports them gone.
"""

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Float, Instance, Integer, Unicode, default

from ...config import BlabsPaths
from ...lab.spec import LabPaths, LabSpec
from ...lab.status import read_stages
from ..startgate import queue_progress
from . import lifecycle
from .options import LabTemplateMixin, requested_prepare
from .progress import stage_event

LAB_SERVER_CONFIG = Path(__file__).resolve().parents[2] / "lab" / "jupyter_config"


def launcher_environment(spec: LabSpec, base: dict[str, str]) -> dict[str, str]:
    """The launcher's environment: the lab spec and runtime options, and no hub secrets.

    The hub token must never reach a guest, so nothing named ``JUPYTERHUB_*`` is passed on.
    """
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")
    env = {k: base[k] for k in keep if k in base}
    env.update({k: v for k, v in base.items() if k.startswith("BLABS_")})
    env["BLABS_LAB_SPEC"] = spec.to_json()
    return env


def pid_is_launcher(pid: int) -> bool:
    """True if ``pid`` is still our launcher (not a recycled PID of something else)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"blabs_hub.lab.launcher" in f.read()
    except OSError:
        return False


class BlabsLocalSpawner(LabTemplateMixin, LocalProcessSpawner):
    """Starts a lab (VM launcher + console server) as local processes for one template.

    The lab server runs as the hub's own user: users need no system accounts, and the
    server is locked down to the console (no kernels, terminals, file writes or arbitrary
    proxying; see ``blabs_hub/lab/jupyter_config``).
    """

    labs_dir = Unicode(
        help="""Folder that holds one scratch folder per running lab (overlay disk, sockets,
        logs). Default: ``BlabsPaths.labs_dir``. Keep it short: unix socket paths are
        limited to 107 bytes.""",
    ).tag(config=True)

    @default("labs_dir")
    def _default_labs_dir(self):
        return BlabsPaths(config=self.config).labs_dir

    launcher_stop_timeout = Float(
        20,
        help="Seconds a stopping launcher gets to shut QEMU down before it is killed.",
    ).tag(config=True)

    # The lab beside the server process, kept in the hub's database (get_state).
    lab_dir = Unicode("")
    launcher_pid = Integer(0)
    lab_spec = Instance(LabSpec, allow_none=True)

    @default("cmd")
    def _default_cmd(self):
        # The lab server comes from the hub's own environment, whatever PATH says.
        beside = Path(sys.executable).parent / "jupyterhub-singleuser"
        return [str(beside)] if beside.exists() else ["jupyterhub-singleuser"]

    def options_from_form(self, formdata):
        options = super().options_from_form(formdata)
        if requested_prepare(formdata):  # an admin preparing an instant-start state
            options["prepare"] = True
        return options

    # --- processes run as the hub's user, with the lab server locked down ----------------

    def make_preexec_fn(self, name):
        home = Path(self.lab_dir) / "home"

        def preexec():
            os.chdir(home)

        return preexec

    def user_env(self, env):
        env["USER"] = self.user.name
        env["HOME"] = str(Path(self.lab_dir) / "home")
        return env

    def get_env(self):
        env = super().get_env()
        env["BLABS_LAB_WORKDIR"] = self.lab_dir
        env["JUPYTER_CONFIG_DIR"] = str(LAB_SERVER_CONFIG)
        env["JUPYTER_CONFIG_PATH"] = str(LAB_SERVER_CONFIG)
        return env

    # --- state ---------------------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self.lab_dir:
            state["lab_dir"] = self.lab_dir
            state["launcher_pid"] = self.launcher_pid
        if self.lab_spec is not None:
            state["lab_spec"] = self.lab_spec.to_json()
        return state

    def load_state(self, state):
        super().load_state(state)
        self.lab_dir = state.get("lab_dir", "")
        self.launcher_pid = state.get("launcher_pid", 0)
        if state.get("lab_spec"):
            self.lab_spec = LabSpec.from_json(state["lab_spec"])

    # clear_state() leaves lab_dir and launcher_pid alone on purpose: the base class clears
    # state as soon as the server process is gone, and stop() still needs them afterwards.

    # --- lifecycle -----------------------------------------------------------------------

    may_prepare = True

    async def start(self):
        spec = self.starting_spec  # chosen and admitted in run_pre_spawn_hook
        await self._remove_lab()  # a lab left over from an unclean stop
        try:
            paths = self._new_lab_dir()
            self.launcher_pid = self._start_launcher(spec, paths)
            url = await super().start()
            await self._wait_console_ready(paths)
        except BaseException as e:
            await self._stop_processes(now=True)
            await lifecycle.lab_start_failed(self, spec, e)
            raise
        self.lab_spec = spec
        await lifecycle.lab_started(self, spec)
        return url

    def _new_lab_dir(self) -> LabPaths:
        Path(self.labs_dir).mkdir(parents=True, exist_ok=True)
        lab_dir = Path(self.labs_dir) / secrets.token_hex(4)
        paths = LabPaths(lab_dir)
        paths.check()
        lab_dir.mkdir(mode=0o700)
        (lab_dir / "home").mkdir()
        self.lab_dir = str(lab_dir)
        return paths

    def _start_launcher(self, spec: LabSpec, paths: LabPaths) -> int:
        argv = [sys.executable, "-m", "blabs_hub.lab.launcher", "--workdir", str(paths.workdir)]
        with open(paths.workdir / "launcher.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                env=launcher_environment(spec, dict(os.environ)),
                cwd=paths.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._launcher_proc = proc
        self.log.info("Lab %s: launcher pid %d in %s", self._log_name, proc.pid, paths.workdir)
        return proc.pid

    async def _wait_console_ready(self, paths: LabPaths) -> None:
        """Wait for the launcher's "console-ready" stage; fail with its words otherwise."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            stages = read_stages(paths)
            last = stages[-1] if stages else {}
            if last.get("stage") == "console-ready":
                return
            if last.get("stage") in ("failed", "stopped"):
                raise RuntimeError(f"The lab could not start: {last.get('message', 'no reason')}")
            if not self._launcher_alive():
                raise RuntimeError(
                    "The lab could not start: its launcher exited without a reason "
                    f"(see {paths.workdir / 'launcher.log'})"
                )
            await asyncio.sleep(0.1)
        raise TimeoutError(f"The lab's console was not ready within {self.start_timeout} s")

    def _launcher_alive(self) -> bool:
        proc = getattr(self, "_launcher_proc", None)
        if proc is not None and proc.pid == self.launcher_pid:
            return proc.poll() is None
        return bool(self.launcher_pid) and pid_is_launcher(self.launcher_pid)

    async def progress(self):
        """The launcher's stages, as they happen, for the hub's spawn-progress bar."""
        async for event in queue_progress(self):  # waiting for a start slot
            yield event
        seen = 0
        while True:
            if self.lab_dir:
                stages = read_stages(LabPaths(Path(self.lab_dir)))
                for stage in stages[seen:]:
                    yield stage_event(stage)
                seen = len(stages)
            await asyncio.sleep(0.2)

    async def poll(self):
        status = await super().poll()
        if status is None and not self._launcher_alive():
            # The VM ended by itself: shut down from inside, or a preparation lab that saved
            # its ready state. The console server must go too.
            self.log.warning("Lab %s: the VM launcher is gone", self._log_name)
            status = 1
        if status is not None and self.lab_dir and not getattr(self, "_reaping", False):
            # JupyterHub calls stop() only for servers that still poll as running, so a lab
            # half of which ended would leave its other process and folder behind. (The base
            # class's stop() polls again: hence the guard.)
            self._reaping = True
            try:
                await self.stop(now=True)
            finally:
                self._reaping = False
        return status

    async def stop(self, now=False):
        was_running = bool(self.lab_dir)
        await self._stop_processes(now=now)
        if was_running:
            await lifecycle.lab_stopped(self, self.lab_spec)
        self.lab_spec = None

    async def _stop_processes(self, now=False):
        await super().stop(now=now)
        await self._remove_lab()

    async def _remove_lab(self) -> None:
        """Stop the launcher (it shuts QEMU down and removes the overlay), then the folder."""
        if self.launcher_pid and self._launcher_alive():
            await self._stop_launcher()
        if self.lab_dir:
            shutil.rmtree(self.lab_dir, ignore_errors=True)
        self.lab_dir = ""
        self.launcher_pid = 0
        self._launcher_proc = None

    async def _stop_launcher(self) -> None:
        pid = self.launcher_pid
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.launcher_stop_timeout
        while time.monotonic() < deadline and self._launcher_alive():
            await asyncio.sleep(0.1)
        if self._launcher_alive():
            self.log.warning("Lab %s: launcher %d did not stop; killing it", self._log_name, pid)
            os.killpg(pid, signal.SIGKILL)
