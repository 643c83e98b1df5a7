"""Labs as Kubernetes pods: KubeSpawner with a template picker and a lab pod.

Thin on purpose. Everything a lab pod is made of comes from the pure builders in
:mod:`.pod`, handed to KubeSpawner through its own traits (as a z2jh profile's
``kubespawner_override`` would be); KubeSpawner keeps doing the Kubernetes work (manifest,
create with retries, watch, delete, state across hub restarts). What is added here:

- the template choice (shared with the local spawner, :mod:`.options`): unknown or
  disabled template → 400 with a message;
- the lab pod: ``console`` + ``vm`` containers, scratch emptyDir, read-only image PVC;
- a start that fails fast and says why (image pull error, OOMKilled, crash loop), and a
  timeout that names what the pod waited for, instead of "did not start in N seconds";
- a poll that also watches the ``vm`` container: a VM that exits ends the lab.
"""

import asyncio
import time

from kubespawner import KubeSpawner
from tornado import web
from traitlets import Instance, default

from ...lab.spec import LabSpec
from ..startgate import queue_progress
from . import lifecycle
from .options import LabTemplateMixin
from .pod import (
    CONSOLE_CONTAINER,
    VM_CONTAINER,
    KubeLab,
    finish_pod,
    merge_overrides,
    pending_reason,
    pod_failure,
    spawner_overrides,
)


class LabStartError(RuntimeError):
    """A lab pod that cannot start; the message is for the student and the admin.

    ``jupyterhub_message`` is what JupyterHub's REST API puts in its error body (in 5.x
    and 6.x alike), instead of a bare "Internal Server Error".
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


class BlabsKubeSpawner(LabTemplateMixin, KubeSpawner):
    """Starts one lab (a VM pod) per named server, from an admin-defined template."""

    lab = Instance(KubeLab)
    lab_spec = Instance(LabSpec, allow_none=True)  # the running lab (kept in the hub's state)

    @default("lab")
    def _default_lab(self):
        return KubeLab(parent=self)

    async def load_user_options(self):
        """Site profiles first (KubeSpawner's), then the lab the template describes."""
        shown = (self.user_options or {}).get("profile")
        if shown is not None and not self.profile_list:
            # Our "profile" is the template slug for the admin panel, not a KubeSpawner
            # profile: without a profile_list, KubeSpawner would refuse it as unknown.
            self.user_options = {k: v for k, v in self.user_options.items() if k != "profile"}
            await super().load_user_options()
            self.user_options = {**self.user_options, "profile": shown}
        else:
            await super().load_user_options()
        spec = self.templates.spec_for_request(self.user_options, self.name)
        overrides = spawner_overrides(spec, self.lab, self.image, self.templates.images_dir)
        current = {name: getattr(self, name) for name in overrides}
        for name, value in merge_overrides(current, overrides).items():
            setattr(self, name, value)
        self.log.info("Lab %s: template %s, pod %s", self._log_name, spec.slug, self.pod_name)

    async def get_pod_manifest(self):
        return finish_pod(await super().get_pod_manifest())

    # --- start: fail fast, time out in words ---------------------------------------------

    async def _start(self):
        """KubeSpawner's start, watched: a pod that cannot become ready stops the spawn."""
        try:
            url = await self._start_pod()
        except BaseException as e:
            await lifecycle.lab_start_failed(self, self.starting_spec, e)
            raise
        self.lab_spec = self.starting_spec
        await lifecycle.lab_started(self, self.lab_spec)
        return url

    async def _start_pod(self):
        started = time.monotonic()
        # Give up well before the hub does (at least 2 s, even on a loaded hub), so that the
        # message is ours, not a bare "Timeout".
        deadline = started + max(1, min(self.start_timeout * 0.9, self.start_timeout - 2))
        kube_start = asyncio.ensure_future(super()._start())
        try:
            while not kube_start.done():
                pod = self._my_pod()
                failure = pod_failure(pod)
                if failure or time.monotonic() > deadline:
                    kube_start.cancel()
                    message = failure or (
                        f"it was not ready after {time.monotonic() - started:.0f} s: "
                        f"{pending_reason(pod, self.events)}"
                    )
                    raise LabStartError(f"The lab could not start: {message}")
                await asyncio.wait({kube_start}, timeout=0.5)
            return kube_start.result()
        except web.HTTPError:
            raise  # a refused request: no pod was made
        except BaseException:
            kube_start.cancel()
            await self._delete_pod_quietly()
            raise

    def _my_pod(self) -> dict | None:
        reflector = self.pod_reflector
        if reflector is None:
            return None
        return reflector.pods.get(f"{self.namespace}/{self.pod_name}")

    async def _delete_pod_quietly(self) -> None:
        """Remove a failed lab's pod; a failure to do so is logged, not raised over the cause."""
        try:
            await self.stop(now=True)
        except Exception:
            self.log.exception("Lab %s: could not delete pod %s", self._log_name, self.pod_name)

    async def progress(self):
        async for event in queue_progress(self):
            yield event
        async for event in super().progress():
            yield event

    def get_state(self):
        state = super().get_state()
        if self.lab_spec is not None:
            state["lab_spec"] = self.lab_spec.to_json()
        return state

    def load_state(self, state):
        super().load_state(state)
        if state.get("lab_spec"):
            self.lab_spec = LabSpec.from_json(state["lab_spec"])

    async def stop(self, now=False):
        spec, self.lab_spec = self.lab_spec, None
        await super().stop(now=now)
        if spec is not None:
            await lifecycle.lab_stopped(self, spec)

    # --- poll: the lab ends when either container does -----------------------------------

    async def poll(self):
        status = await super().poll()
        if status is not None:
            return status
        pod = self._my_pod()
        for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated")
            if cs.get("name") in (VM_CONTAINER, CONSOLE_CONTAINER) and terminated:
                self.log.info(
                    "Lab %s: container %s ended (%s)",
                    self._log_name,
                    cs["name"],
                    terminated.get("reason"),
                )
                if self.delete_stopped_pods:
                    await self.stop(now=True)
                return terminated.get("exitCode", 1)
        return None
