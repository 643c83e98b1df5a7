"""The lab pod, as plain data: pure functions from a lab spec and deployment options.

A lab pod has two containers sharing one scratch volume (an ``emptyDir`` at ``/lab``):

- ``vm``: the lab launcher (``python -m blabs_hub.lab.launcher``), which makes the qcow2
  overlay over the read-only base image and runs QEMU with SPICE and QMP on unix sockets in
  ``/lab``. It gets ``/dev/kvm`` through a device-plugin resource, never through privilege,
  and no hub credential: the guest is the student's, so the container it runs in holds none.
- ``console``: ``jupyterhub-singleuser`` with the console entry of jupyter-server-proxy,
  on port 8888 named ``notebook-port`` (the one port z2jh's NetworkPolicy admits from the
  proxy). It is KubeSpawner's own "notebook" container, renamed.

Nothing here talks to Kubernetes or the hub. :func:`spawner_overrides` returns values for
KubeSpawner's own traits (the way a z2jh profile's ``kubespawner_override`` does), so
KubeSpawner's ``make_pod`` still builds the manifest; :func:`finish_pod` renames its
container. :func:`pod_failure` and :func:`pending_reason` read a pod's status so that a lab
that cannot start says why, in words, before the hub's timeout.
"""

import copy

from traitlets import Integer, TraitError, Unicode, default, validate

from ...config import EnvConfigurable, env_int, env_value
from ...lab.spec import LabSpec

# The scratch folder both containers share: overlay disk, SPICE/QMP sockets, status file.
LAB_WORKDIR = "/lab"
# The pod's own /tmp (an emptyDir: root filesystems are read-only), also HOME.
POD_TMP = "/tmp"  # noqa: S108 (a private volume of the pod, not a shared host /tmp)
CONSOLE_PORT = 8888
# KubeSpawner's make_pod() names its container "notebook"; ours is the console.
KUBESPAWNER_CONTAINER = "notebook"
CONSOLE_CONTAINER = "console"
VM_CONTAINER = "vm"
LABEL_PREFIX = "bretter-labs"
ACCELS = ("auto", "kvm", "tcg")


class KubeLab(EnvConfigurable):
    """How labs run as pods: the lab image, KVM, storage, isolation and sizing.

    Every option has a ``BLABS_KUBE_*`` environment default so that the z2jh chart can set
    it with ``hub.extraEnv``, without Python in values files.
    """

    image = Unicode(
        help="""Image of the ``vm`` container (QEMU + the lab launcher). Empty: the same
        image as the console, i.e. ``KubeSpawner.image`` (z2jh's ``singleuser.image``).
        Default: ``$BLABS_KUBE_VM_IMAGE``.""",
    ).tag(config=True)

    @default("image")
    def _default_image(self):
        return env_value("BLABS_KUBE_VM_IMAGE", "")

    kvm_resource = Unicode(
        help="""Extended resource a device plugin offers for ``/dev/kvm`` (KubeVirt's
        ``devices.kubevirt.io/kvm``, or squat's generic-device-plugin name, e.g.
        ``squat.ai/kvm``). Each lab asks for one. Empty: no KVM, labs run under TCG
        (slow; for clusters without nested virtualisation only).
        Default: ``$BLABS_KUBE_KVM_RESOURCE`` or ``devices.kubevirt.io/kvm``.""",
    ).tag(config=True)

    @default("kvm_resource")
    def _default_kvm_resource(self):
        return env_value("BLABS_KUBE_KVM_RESOURCE", "devices.kubevirt.io/kvm")

    @validate("kvm_resource")
    def _validate_kvm_resource(self, proposal):
        value = proposal["value"].strip()
        if value and ("/" not in value or value.startswith(("kubernetes.io/", "requests."))):
            raise TraitError(
                f"BLABS_KUBE_KVM_RESOURCE={value!r} must be a device plugin's extended resource "
                "name like devices.kubevirt.io/kvm (or empty for no KVM)"
            )
        return value

    accel = Unicode(
        help="""Acceleration the launcher uses: ``kvm``, ``tcg`` or ``auto``. Default:
        ``$BLABS_KUBE_ACCEL``, else ``kvm`` when a KVM resource is requested, ``tcg`` if not.
        (A ``/dev/kvm`` that exists is no proof it works: nested, software KVM crashes.)""",
    ).tag(config=True)

    @default("accel")
    def _default_accel(self):
        return env_value("BLABS_KUBE_ACCEL", "kvm" if self.kvm_resource else "tcg")

    @validate("accel")
    def _validate_accel(self, proposal):
        if proposal["value"] not in ACCELS:
            raise TraitError(
                f"BLABS_KUBE_ACCEL={proposal['value']!r} must be one of {', '.join(ACCELS)}"
            )
        return proposal["value"]

    runtime_class = Unicode(
        help="""``runtimeClassName`` of lab pods (e.g. ``kata`` for a VM sandbox, or a
        RuntimeClass that pins labs to KVM nodes). Empty: the cluster default.
        Default: ``$BLABS_KUBE_RUNTIME_CLASS``.""",
    ).tag(config=True)

    @default("runtime_class")
    def _default_runtime_class(self):
        return env_value("BLABS_KUBE_RUNTIME_CLASS", "")

    images_claim = Unicode(
        help="""PersistentVolumeClaim of the image store (ReadWriteMany: the hub writes
        uploads, every lab node reads). Mounted read-only in the ``vm`` container at the
        image store path, so the paths the catalog knows are valid in the pod.
        Default: ``$BLABS_KUBE_IMAGES_CLAIM`` or ``blabs-images``.""",
    ).tag(config=True)

    @default("images_claim")
    def _default_images_claim(self):
        return env_value("BLABS_KUBE_IMAGES_CLAIM", "blabs-images")

    qemu_overhead_mib = Integer(
        help="""Memory added to a template's guest RAM for QEMU itself, video memory,
        firmware and swtpm (QEMU's RSS beyond guest RAM is ~200-300 MiB).
        Default: ``$BLABS_KUBE_QEMU_OVERHEAD_MIB`` or 512.""",
    ).tag(config=True)

    @default("qemu_overhead_mib")
    def _default_qemu_overhead_mib(self):
        return env_int("BLABS_KUBE_QEMU_OVERHEAD_MIB", 512)

    qemu_overhead_millicpu = Integer(
        help="""CPU added to a template's vCPUs for QEMU's I/O and SPICE threads, in
        millicores. Default: ``$BLABS_KUBE_QEMU_OVERHEAD_MILLICPU`` or 250.""",
    ).tag(config=True)

    @default("qemu_overhead_millicpu")
    def _default_qemu_overhead_millicpu(self):
        return env_int("BLABS_KUBE_QEMU_OVERHEAD_MILLICPU", 250)

    cpu_request_percent = Integer(
        help="""Share of a template's vCPUs a lab requests (its limit is always all of
        them): 100 reserves whole cores; lower values overcommit CPU, which suits idle
        desktops. Default: ``$BLABS_KUBE_CPU_REQUEST_PERCENT`` or 100.""",
    ).tag(config=True)

    @default("cpu_request_percent")
    def _default_cpu_request_percent(self):
        return env_int("BLABS_KUBE_CPU_REQUEST_PERCENT", 100)

    scratch_size = Unicode(
        help="""Size limit of a lab's scratch volume (the overlay disk grows into it as
        the guest writes; the pod is evicted beyond it).
        Default: ``$BLABS_KUBE_SCRATCH_SIZE`` or ``40Gi``.""",
    ).tag(config=True)

    @default("scratch_size")
    def _default_scratch_size(self):
        return env_value("BLABS_KUBE_SCRATCH_SIZE", "40Gi")

    uid = Integer(
        help="""User (and group) id both containers run as; the lab image's non-root
        user. Default: ``$BLABS_KUBE_UID`` or 1000.""",
    ).tag(config=True)

    @default("uid")
    def _default_uid(self):
        return env_int("BLABS_KUBE_UID", 1000)

    kvm_gid = Integer(
        help="""Group owning ``/dev/kvm`` on the nodes, added to the pod's groups, for
        nodes where ``/dev/kvm`` is not world read-write (0: none).
        Default: ``$BLABS_KUBE_KVM_GID`` or 0.""",
    ).tag(config=True)

    @default("kvm_gid")
    def _default_kvm_gid(self):
        return env_int("BLABS_KUBE_KVM_GID", 0)

    @validate("uid", "kvm_gid", "qemu_overhead_mib", "qemu_overhead_millicpu")
    def _validate_non_negative(self, proposal):
        name = proposal["trait"].name
        value = proposal["value"]
        if name == "uid" and value == 0:
            raise TraitError("BLABS_KUBE_UID must not be 0: lab containers never run as root")
        if not 0 <= value <= 1_000_000:
            raise TraitError(f"BLABS_KUBE_{name.upper()} must be between 0 and 1000000")
        return value

    @validate("cpu_request_percent")
    def _validate_cpu_request_percent(self, proposal):
        if not 1 <= proposal["value"] <= 100:
            raise TraitError("BLABS_KUBE_CPU_REQUEST_PERCENT must be between 1 and 100")
        return proposal["value"]

    lab_server_config_dir = Unicode(
        help="""Where the lab image keeps the console server's locked-down Jupyter config
        (``blabs_hub/lab/jupyter_config``); becomes ``JUPYTER_CONFIG_DIR`` of the console.
        Default: ``$BLABS_KUBE_LAB_SERVER_CONFIG_DIR`` or ``/etc/blabs/jupyter``.""",
    ).tag(config=True)

    @default("lab_server_config_dir")
    def _default_lab_server_config_dir(self):
        return env_value("BLABS_KUBE_LAB_SERVER_CONFIG_DIR", "/etc/blabs/jupyter")


# --- the containers ----------------------------------------------------------------------


def container_security(uid: int) -> dict:
    """Non-root, nothing to escalate to, no capabilities, read-only root: what both share.

    This passes Pod Security "restricted". QEMU with user-mode networking needs no
    capability, and ``/dev/kvm`` arrives through the device plugin's cgroup rule.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(lab: KubeLab) -> dict:
    """Pod-level security: a group that owns the shared emptyDirs, RuntimeDefault seccomp."""
    psc = {
        "runAsNonRoot": True,
        "fsGroup": lab.uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if lab.kvm_gid:
        psc["supplementalGroups"] = [lab.kvm_gid]
    return psc


def vm_resources(spec: LabSpec, lab: KubeLab) -> dict:
    """Requests and limits of the ``vm`` container: the template's machine plus QEMU.

    Memory request equals its limit (a guest touches all of its RAM sooner or later; an
    overcommitted node would OOM-kill labs at random). CPU may be overcommitted.
    """
    memory = f"{spec.memory_mib + lab.qemu_overhead_mib}Mi"
    cpu_limit = spec.cpus * 1000 + lab.qemu_overhead_millicpu
    cpu_request = spec.cpus * 10 * lab.cpu_request_percent + lab.qemu_overhead_millicpu
    requests = {"cpu": f"{cpu_request}m", "memory": memory}
    limits = {"cpu": f"{cpu_limit}m", "memory": memory}
    if lab.kvm_resource:
        # Extended resources cannot be overcommitted: request == limit.
        requests[lab.kvm_resource] = "1"
        limits[lab.kvm_resource] = "1"
    return {"requests": requests, "limits": limits}


def vm_container(spec: LabSpec, lab: KubeLab, image: str, images_dir: str) -> dict:
    """The ``vm`` container: the lab launcher running QEMU, ready once SPICE listens."""
    return {
        "name": VM_CONTAINER,
        "image": lab.image or image,
        "command": ["python", "-m", "blabs_hub.lab.launcher", "--workdir", LAB_WORKDIR],
        "env": [
            {"name": "BLABS_LAB_SPEC", "value": spec.to_json()},
            {"name": "BLABS_ACCEL", "value": lab.accel},
            {"name": "HOME", "value": POD_TMP},
        ],
        "resources": vm_resources(spec, lab),
        "securityContext": container_security(lab.uid),
        "volumeMounts": [
            {"name": "lab", "mountPath": LAB_WORKDIR},
            {"name": "tmp", "mountPath": POD_TMP},
            {"name": "images", "mountPath": images_dir, "readOnly": True},
        ],
        # The pod is Ready (and the spawn done) only once QEMU's SPICE socket exists.
        "readinessProbe": {
            "exec": {"command": ["test", "-S", f"{LAB_WORKDIR}/spice.sock"]},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def lab_volumes(lab: KubeLab) -> list[dict]:
    """Scratch (overlay + sockets), a writable /tmp, and the image store, read-only."""
    return [
        {"name": "lab", "emptyDir": {"sizeLimit": lab.scratch_size}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        {
            "name": "images",
            "persistentVolumeClaim": {"claimName": lab.images_claim, "readOnly": True},
        },
    ]


def lab_labels(spec: LabSpec) -> dict[str, str]:
    """Labels for metrics, NetworkPolicies and ``kubectl get pods -l``."""
    return {
        f"{LABEL_PREFIX}/role": "lab",
        f"{LABEL_PREFIX}/template": spec.slug,
        f"{LABEL_PREFIX}/firmware": spec.firmware,
    }


def spawner_overrides(spec: LabSpec, lab: KubeLab, image: str, images_dir: str) -> dict:
    """KubeSpawner trait values that turn its pod into a lab pod.

    Dict and list values are *added* to what the site configured (see
    :func:`merge_overrides`); scalar values replace it.
    """
    return {
        "uid": lab.uid,
        "gid": lab.uid,
        "fs_gid": lab.uid,
        "allow_privilege_escalation": False,
        "privileged": False,
        "container_security_context": container_security(lab.uid),
        "pod_security_context": pod_security(lab),
        "automount_service_account_token": False,
        "working_dir": POD_TMP,
        "environment": {
            "BLABS_LAB_WORKDIR": LAB_WORKDIR,
            "JUPYTER_CONFIG_DIR": lab.lab_server_config_dir,
            "JUPYTER_CONFIG_PATH": lab.lab_server_config_dir,
            "HOME": POD_TMP,
        },
        "volumes": lab_volumes(lab),
        "volume_mounts": [
            {"name": "lab", "mountPath": LAB_WORKDIR},
            {"name": "tmp", "mountPath": POD_TMP},
        ],
        # KubeSpawner expands {username}-style fields in extra containers: the lab spec
        # is JSON, so its braces are doubled to stay literal.
        "extra_containers": [literal(vm_container(spec, lab, image, images_dir))],
        "extra_labels": lab_labels(spec),
        "extra_pod_config": {
            "enableServiceLinks": False,
            **({"runtimeClassName": lab.runtime_class} if lab.runtime_class else {}),
        },
    }


def literal(obj):
    """``obj`` with every ``{`` and ``}`` in its strings doubled (``str.format``-escaped)."""
    if isinstance(obj, dict):
        return {k: literal(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [literal(v) for v in obj]
    if isinstance(obj, str):
        return obj.replace("{", "{{").replace("}", "}}")
    return obj


def merge_overrides(current: dict, overrides: dict) -> dict:
    """New trait values: site dicts updated by ours, site lists followed by ours.

    Volume-like lists are keyed by ``name`` (KubeSpawner accepts ``{name: item}`` dicts too),
    so ours win over a site's item of the same name instead of duplicating it.
    """
    merged = {}
    for name, value in overrides.items():
        have = current.get(name)
        if isinstance(value, dict) and isinstance(have, dict):
            merged[name] = {**copy.deepcopy(have), **value}
        elif isinstance(value, list) and isinstance(have, (list, dict)) and have:
            items = list(have.values()) if isinstance(have, dict) else list(have)
            ours = {item.get("name") for item in value if isinstance(item, dict)}
            kept = [i for i in items if not (isinstance(i, dict) and i.get("name") in ours)]
            merged[name] = copy.deepcopy(kept) + value
        else:
            merged[name] = value
    return merged


def finish_pod(pod):
    """Rename KubeSpawner's container to ``console`` (a ``V1Pod``, changed in place)."""
    for container in pod.spec.containers:
        if container.name == KUBESPAWNER_CONTAINER:
            container.name = CONSOLE_CONTAINER
    return pod


# --- reading a pod's status ----------------------------------------------------------------

# Waiting reasons that do not fix themselves while a student waits.
FATAL_WAITING = {
    "ErrImagePull": "its image could not be pulled",
    "ImagePullBackOff": "its image could not be pulled",
    "InvalidImageName": "its image name is invalid",
    "CreateContainerConfigError": "its container configuration is invalid",
    "CreateContainerError": "its container could not be created",
    "RunContainerError": "its container could not be run",
    "CrashLoopBackOff": "it keeps crashing",
}


def pod_failure(pod: dict | None) -> str | None:
    """Why a starting lab pod will never become ready, or None while it still may.

    ``pod`` is the API's JSON (what KubeSpawner's reflector holds).
    """
    if not pod:
        return None
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        reason = status.get("reason") or "Failed"
        return f"the lab pod failed ({reason}: {status.get('message') or 'no message'})"
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        name = cs.get("name", "?")
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        terminated = state.get("terminated") or last
        if terminated.get("reason") == "OOMKilled":
            return (
                f"the {name!r} container ran out of memory (OOMKilled): the template needs "
                "less RAM or the deployment more QEMU overhead (BLABS_KUBE_QEMU_OVERHEAD_MIB)"
            )
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FATAL_WAITING:
            detail = waiting.get("message") or last.get("message") or ""
            detail = f": {detail}" if detail else ""
            return (
                f"the {name!r} container cannot start, {FATAL_WAITING[reason]} ({reason}{detail})"
            )
        if state.get("terminated"):
            code = state["terminated"].get("exitCode")
            why = state["terminated"].get("message") or state["terminated"].get("reason") or ""
            return f"the {name!r} container exited with code {code} {why}".rstrip()
    return None


def pending_reason(pod: dict | None, events: list[dict]) -> str:
    """What a pod that is not ready yet is waiting for, for a timeout message."""
    if not pod:
        return "the pod was never created"
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"it could not be scheduled: {cond.get('message') or cond.get('reason')}"
    warnings = [e for e in events if e.get("type") == "Warning"]
    if warnings:
        return f"{warnings[-1].get('reason')}: {warnings[-1].get('message')}"
    for cs in status.get("containerStatuses") or []:
        if not cs.get("ready"):
            return f"its {cs.get('name')!r} container is not ready"
    return f"it is {status.get('phase') or 'Pending'}"
