"""Settings of the lab runtime (launcher and QEMU), one ``BLABS_*`` variable each.

The lab side runs in a pod or as a local process started by the spawner, so its settings
travel as environment variables, like the rest of ``blabs_hub.config``.
"""

import os
import shlex
import tempfile
from pathlib import Path

from traitlets import Bool, Float, List, TraitError, Unicode, default, validate

from blabs_hub.config import BlabsConfigError, EnvConfigurable, env_value
from blabs_hub.lab.accel import MODES
from blabs_hub.lab.network import BACKENDS
from blabs_hub.lab.qemu import TCG_CPU_MODEL, network_listeners

REPO_DIR = Path(__file__).resolve().parents[2]


def env_float(name: str, fallback: float) -> float:
    raw = os.environ.get(name, "")
    if not raw.strip():
        return fallback
    try:
        return float(raw.strip())
    except ValueError:
        raise BlabsConfigError(f"{name}={raw!r} is not a number") from None


def default_cache_dir() -> Path:
    """``$BLABS_CACHE_DIR``, or ``.cache`` in the source checkout (gitignored)."""
    return Path(env_value("BLABS_CACHE_DIR", str(REPO_DIR / ".cache"))).absolute()


class LabRuntime(EnvConfigurable):
    """How the launcher runs a lab's VM on this host (every option checked at creation)."""

    accel = Unicode(
        help="""Acceleration: ``kvm`` (hardware), ``tcg`` (software emulation, slow) or
        ``auto``, which boots a tiny test guest under KVM once per host and falls back to TCG
        when it does not run (a ``/dev/kvm`` that exists proves nothing on some hosts).
        Default: ``$BLABS_ACCEL`` or auto.""",
    ).tag(config=True)

    @default("accel")
    def _default_accel(self):
        return env_value("BLABS_ACCEL", "auto").strip().lower()

    @validate("accel")
    def _validate_accel(self, proposal):
        value = proposal["value"]
        if value not in MODES:
            raise TraitError(f"BLABS_ACCEL must be one of {', '.join(MODES)}, got {value!r}")
        return value

    qemu_binary = Unicode(
        help="QEMU system emulator to run. Default: ``$BLABS_QEMU`` or qemu-system-x86_64.",
    ).tag(config=True)

    @default("qemu_binary")
    def _default_qemu_binary(self):
        return env_value("BLABS_QEMU", "qemu-system-x86_64")

    qemu_img_binary = Unicode(
        help="qemu-img, used to create overlays. Default: ``$BLABS_QEMU_IMG`` or qemu-img.",
    ).tag(config=True)

    @default("qemu_img_binary")
    def _default_qemu_img_binary(self):
        return env_value("BLABS_QEMU_IMG", "qemu-img")

    tcg_cpu_model = Unicode(
        help="""CPU model under TCG (``-cpu host``/``max`` crash QEMU where KVM is fake).
        Default: ``$BLABS_TCG_CPU`` or a Skylake model trimmed to what TCG emulates.""",
    ).tag(config=True)

    @default("tcg_cpu_model")
    def _default_tcg_cpu_model(self):
        return env_value("BLABS_TCG_CPU", TCG_CPU_MODEL)

    network_backend = Unicode(
        help="""How a ``network: internet`` template's guest gets out: ``passt`` (default; a
        separate sandboxed NAT process, and the guest cannot reach the host's or pod's
        loopback) or ``slirp`` (QEMU's built-in NAT, which maps the gateway 10.0.2.2 to the
        host's loopback: only for hosts where passt cannot run).
        Default: ``$BLABS_LAB_NETWORK`` or passt.""",
    ).tag(config=True)

    @default("network_backend")
    def _default_network_backend(self):
        return env_value("BLABS_LAB_NETWORK", "passt").strip().lower()

    @validate("network_backend")
    def _validate_network_backend(self, proposal):
        value = proposal["value"]
        if value not in BACKENDS:
            raise TraitError(
                f"BLABS_LAB_NETWORK must be one of {', '.join(BACKENDS)}, got {value!r}"
            )
        return value

    passt_binary = Unicode(
        help="The passt binary (Debian package ``passt``). Default: ``$BLABS_PASST`` or passt.",
    ).tag(config=True)

    @default("passt_binary")
    def _default_passt_binary(self):
        return env_value("BLABS_PASST", "passt")

    @validate("qemu_binary", "qemu_img_binary", "tcg_cpu_model", "swtpm_binary", "passt_binary")
    def _validate_not_empty(self, proposal):
        value = proposal["value"].strip()
        if not value:
            raise TraitError(f"LabRuntime.{proposal['trait'].name} must not be empty")
        return value

    qemu_extra_args = List(
        Unicode(),
        help="""Extra QEMU arguments appended to the built command line (e.g. a VNC socket
        for debugging). Default: ``$BLABS_QEMU_EXTRA_ARGS``, split like a shell would.""",
    ).tag(config=True)

    @default("qemu_extra_args")
    def _default_qemu_extra_args(self):
        raw = env_value("BLABS_QEMU_EXTRA_ARGS", "")
        try:
            return shlex.split(raw)
        except ValueError as e:
            raise BlabsConfigError(f"BLABS_QEMU_EXTRA_ARGS={raw!r} cannot be split: {e}") from None

    @validate("qemu_extra_args")
    def _validate_qemu_extra_args(self, proposal):
        offending = network_listeners(proposal["value"])
        if offending:
            raise TraitError(
                f"BLABS_QEMU_EXTRA_ARGS must not open network ports, got {offending[0]!r}"
            )
        return proposal["value"]

    ovmf_dir = Unicode(
        help="""Folder of the OVMF UEFI firmware (Debian's ``ovmf`` package layout:
        OVMF_CODE_4M.fd, OVMF_CODE_4M.secboot.fd, OVMF_VARS_4M.fd, OVMF_VARS_4M.ms.fd).
        Default: ``$BLABS_OVMF_DIR`` or /usr/share/OVMF.""",
    ).tag(config=True)

    @default("ovmf_dir")
    def _default_ovmf_dir(self):
        return env_value("BLABS_OVMF_DIR", "/usr/share/OVMF")

    swtpm_binary = Unicode(
        help="The software TPM for Windows 11 templates. Default: ``$BLABS_SWTPM`` or swtpm.",
    ).tag(config=True)

    @default("swtpm_binary")
    def _default_swtpm_binary(self):
        return env_value("BLABS_SWTPM", "swtpm")

    console_timeout_seconds = Float(
        help="""Seconds QEMU has to open its SPICE socket before the lab fails.
        Default: ``$BLABS_CONSOLE_TIMEOUT`` or 30.""",
    ).tag(config=True)

    @default("console_timeout_seconds")
    def _default_console_timeout_seconds(self):
        return env_float("BLABS_CONSOLE_TIMEOUT", 30.0)

    stop_timeout_seconds = Float(
        help="""Seconds QEMU has to quit after a QMP ``quit`` before it is killed.
        Default: ``$BLABS_STOP_TIMEOUT`` or 5.""",
    ).tag(config=True)

    @default("stop_timeout_seconds")
    def _default_stop_timeout_seconds(self):
        return env_float("BLABS_STOP_TIMEOUT", 5.0)

    @validate("console_timeout_seconds", "stop_timeout_seconds")
    def _validate_timeout(self, proposal):
        value = proposal["value"]
        if not 0.1 <= value <= 3600:
            name = proposal["trait"].name
            env = "BLABS_CONSOLE_TIMEOUT" if name.startswith("console") else "BLABS_STOP_TIMEOUT"
            raise TraitError(f"{env} / LabRuntime.{name} must be between 0.1 and 3600, got {value}")
        return value

    accel_cache_file = Unicode(
        help="""Where the KVM probe's verdict for this host is kept, so that only the first
        lab pays for the probe. Default: ``$BLABS_ACCEL_CACHE`` or a file in the temp dir.""",
    ).tag(config=True)

    @default("accel_cache_file")
    def _default_accel_cache_file(self):
        fallback = os.path.join(tempfile.gettempdir(), f"blabs-accel-{os.getuid()}.json")
        return env_value("BLABS_ACCEL_CACHE", fallback)

    verify_state_checksum = Bool(
        help="""Check a ready state's sha256 while QEMU loads it, before the guest runs, and
        cold-boot when it does not match (a corrupt state file could otherwise resume into
        a broken guest; QEMU only notices damage to the stream's structure). Costs reading
        the file once more, in parallel with the load. Default: ``$BLABS_VERIFY_STATE``
        (0 or 1) or 1.""",
    ).tag(config=True)

    @default("verify_state_checksum")
    def _default_verify_state_checksum(self):
        raw = env_value("BLABS_VERIFY_STATE", "1").strip().lower()
        if raw not in ("0", "1", "true", "false", "yes", "no"):
            raise BlabsConfigError(f"BLABS_VERIFY_STATE={raw!r} must be 0 or 1")
        return raw in ("1", "true", "yes")
