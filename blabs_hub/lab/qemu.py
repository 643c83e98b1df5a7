"""The QEMU command line of a lab, as a pure function of its spec and host facts.

Everything the VM can touch is decided here, so it is tested without starting QEMU: the
console and the control channel are unix sockets in the lab's folder (never a TCP port, so
nothing on the host or in the pod network can reach them), no default devices, no user
config files, and the seccomp sandbox on. The launcher does the I/O around it.

Profiles:

- ``windows``: q35, a USB tablet (an absolute pointer, so the browser's mouse lines up),
  the SPICE agent port, HD audio to SPICE, local-time RTC, S3/S4 off (a sleeping guest
  looks dead in a browser tab), one socket with N cores (client Windows uses at most two
  sockets) and, only under KVM, the Hyper-V enlightenments Windows relies on for timers and
  IPIs. Under TCG those flags do not apply; a named CPU model is used instead.
- ``generic``: the same machine without Hyper-V flags, audio or Windows clock quirks.

Networks: ``internet`` is user-mode NAT without NET_ADMIN or a bridge: passt beside QEMU
by default, QEMU's own slirp if the host asks for it (see :mod:`blabs_hub.lab.network`).
``none`` means no network card at all rather than ``restrict=on``: with no card there is
no DHCP/DNS stack to reason about, and the guest plainly shows "no network".
"""

from dataclasses import dataclass
from pathlib import Path

from blabs_hub.lab.network import NETDEV_ID, netdev_value
from blabs_hub.lab.spec import LabPaths, LabSpec

HYPERV_FLAGS = (
    "hv-relaxed",
    "hv-vapic",
    "hv-spinlocks=0x1fff",
    "hv-vpindex",
    "hv-runtime",
    "hv-time",
    "hv-synic",
    "hv-stimer",
    "hv-frequencies",
    "hv-tlbflush",
    "hv-ipi",
)

# A named model for TCG: `-cpu host`/`max` crash QEMU on hosts with a software /dev/kvm,
# and the default qemu64 lacks SSE4.2/POPCNT that current Windows requires. The features
# removed are those QEMU 7.2's TCG cannot emulate; QEMU would drop them anyway, with one
# warning line each on every start.
TCG_CPU_MODEL = (
    "Skylake-Client-v4,-pcid,-x2apic,-tsc-deadline,-invpcid,-rdseed,-spec-ctrl,"
    "-3dnowprefetch,-xsavec,-xsaves"
)
KVM_CPU_MODEL = "host"

ACCELS = ("kvm", "tcg")


@dataclass(frozen=True)
class FirmwareFiles:
    """UEFI firmware for one lab: the read-only code and the lab's own writable vars copy."""

    code: Path
    vars: Path
    secure_boot: bool = False


_TCP_MARKERS = ("tcp:", "port=", "hostfwd", "guestfwd", "websocket", "udp:", "telnet:")
_LISTENING_OPTIONS = ("-vnc", "-gdb", "-incoming")


def network_listeners(argv: list[str]) -> list[str]:
    """Arguments that would make QEMU listen on (or connect to) a network port.

    The console and QMP must only ever be unix sockets in the lab folder: a guest reaches
    the pod's or host's network through user-mode NAT, and nothing else should be there.
    """
    found = []
    for i, arg in enumerate(argv):
        low = arg.lower()
        if any(marker in low for marker in _TCP_MARKERS) or arg == "-s":  # -S is "paused"
            found.append(arg)
        elif low in _LISTENING_OPTIONS:
            value = argv[i + 1] if i + 1 < len(argv) else ""
            if not value.startswith(("unix:", "fd:")) and value not in ("none", "defer"):
                found.append(f"{arg} {value}")
    return found


def opt(value: str | Path) -> str:
    """Escape a value placed inside a QEMU ``key=value,...`` option (commas are doubled)."""
    return str(value).replace(",", ",,")


def cpu_argument(spec: LabSpec, accel: str, tcg_cpu_model: str = TCG_CPU_MODEL) -> str:
    """The ``-cpu`` value: host CPU (+ Hyper-V flags for Windows) under KVM, a model under TCG."""
    if accel == "tcg":
        return tcg_cpu_model
    if spec.guest_profile == "windows":
        return ",".join((KVM_CPU_MODEL, *HYPERV_FLAGS))
    return KVM_CPU_MODEL


def disk_arguments(spec: LabSpec, overlay: Path) -> list[str]:
    """The lab disk: always the overlay, with its format stated, on virtio-blk or SATA."""
    drive = f"file={opt(overlay)},format=qcow2,if=none,id=disk0,cache=writeback,discard=unmap"
    if spec.disk_bus == "virtio":
        return ["-drive", drive, "-device", "virtio-blk-pci,drive=disk0,bootindex=0"]
    return [
        "-drive",
        drive,
        "-device",
        "ahci,id=sata0",
        "-device",
        "ide-hd,drive=disk0,bus=sata0.0,bootindex=0",
    ]


def network_arguments(spec: LabSpec, backend: str = "passt") -> list[str]:
    """User-mode NAT with virtio-net or e1000e; no card at all for ``network == "none"``."""
    if spec.network == "none":
        return []
    model = "virtio-net-pci" if spec.disk_bus == "virtio" else "e1000e"
    return ["-netdev", netdev_value(backend), "-device", f"{model},netdev={NETDEV_ID}"]


def firmware_arguments(
    spec: LabSpec, firmware_files: FirmwareFiles | None, tpm_socket: Path | None
) -> list[str]:
    """OVMF pflash drives (+ SMM for secure boot) and the swtpm TPM, only when asked for."""
    if spec.firmware == "bios":
        return []
    if firmware_files is None:
        raise ValueError(f"firmware {spec.firmware!r} needs OVMF firmware files")
    args = []
    if firmware_files.secure_boot:
        # Secure boot needs the vars store protected by SMM, or the guest could rewrite keys.
        args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    args += [
        "-drive",
        f"if=pflash,format=raw,unit=0,readonly=on,file={opt(firmware_files.code)}",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={opt(firmware_files.vars)}",
    ]
    if spec.firmware == "uefi-secure-tpm":
        if tpm_socket is None:
            raise ValueError("firmware 'uefi-secure-tpm' needs a swtpm socket")
        args += [
            "-chardev",
            f"socket,id=chrtpm,path={opt(tpm_socket)}",
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0",
        ]
    return args


def build_qemu_argv(
    spec: LabSpec,
    paths: LabPaths,
    *,
    accel: str,
    qemu_binary: str = "qemu-system-x86_64",
    firmware_files: FirmwareFiles | None = None,
    tpm_socket: Path | None = None,
    tcg_cpu_model: str = TCG_CPU_MODEL,
    network_backend: str = "passt",
) -> list[str]:
    """The full argv of the lab's QEMU; ``accel`` is the resolved "kvm" or "tcg"."""
    if accel not in ACCELS:
        raise ValueError(f"accel must be one of {', '.join(ACCELS)} (resolve 'auto' first)")
    windows = spec.guest_profile == "windows"
    secure = firmware_files is not None and firmware_files.secure_boot
    machine = "q35,smm=on" if secure else "q35"
    argv = [
        qemu_binary,
        "-name",
        f"guest={opt(spec.slug)},process=blabs-lab",
        "-no-user-config",
        "-nodefaults",
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-machine",
        machine,
        "-accel",
        accel,
        "-cpu",
        cpu_argument(spec, accel, tcg_cpu_model),
        "-smp",
        f"cpus={spec.cpus},sockets=1,cores={spec.cpus},threads=1",
        "-m",
        str(spec.memory_mib),
        "-rtc",
        "base=localtime,driftfix=slew" if windows else "base=utc",
    ]
    if windows:
        argv += [
            "-global",
            "ICH9-LPC.disable_s3=1",
            "-global",
            "ICH9-LPC.disable_s4=1",
        ]
        if accel == "kvm":
            argv += ["-global", "kvm-pit.lost_tick_policy=delay"]
    argv += firmware_arguments(spec, firmware_files, tpm_socket)
    argv += [
        "-display",
        "none",
        "-device",
        "qxl-vga,id=video0",
        "-spice",
        f"unix=on,addr={opt(paths.spice_socket)},disable-ticketing=on",
        "-qmp",
        f"unix:{opt(paths.qmp_socket)},server=on,wait=off",
        "-serial",
        f"file:{paths.serial_log}",
        "-device",
        "qemu-xhci,id=usb",
        "-device",
        "usb-tablet,bus=usb.0",
        "-device",
        "virtio-serial-pci,id=vser0",
        "-chardev",
        "spicevmc,id=vdagent,name=vdagent",
        "-device",
        "virtserialport,bus=vser0.0,chardev=vdagent,name=com.redhat.spice.0",
    ]
    if windows:
        argv += [
            "-audiodev",
            "spice,id=audio0",
            "-device",
            "ich9-intel-hda,id=sound0",
            "-device",
            "hda-duplex,audiodev=audio0,bus=sound0.0",
        ]
    argv += disk_arguments(spec, paths.overlay)
    argv += network_arguments(spec, network_backend)
    return argv


def incoming_arguments(state_fd: int) -> list[str]:
    """Resume from a saved state read from an inherited file descriptor, paused (``-S``).

    ``fd:`` because QEMU 7.2 has no ``file:`` migration URI and the seccomp sandbox
    (``spawn=deny``) forbids ``exec:``; paused so the launcher can check the state's checksum
    before the guest runs.
    """
    if state_fd < 3:
        raise ValueError("the state must be passed on a file descriptor >= 3")
    return ["-S", "-incoming", f"fd:{state_fd}"]


def build_resume_argv(argv: list[str], state_fd: int) -> list[str]:
    """A lab's argv with the saved state as incoming migration; the machine is unchanged."""
    return [*argv, *incoming_arguments(state_fd)]


def swtpm_argv(swtpm: str, state_dir: Path, socket_path: Path) -> list[str]:
    """The software TPM 2.0 of a Windows 11 lab; it exits when QEMU disconnects."""
    return [
        swtpm,
        "socket",
        "--tpm2",
        "--tpmstate",
        f"dir={opt(state_dir)}",
        "--ctrl",
        f"type=unixio,path={opt(socket_path)}",
        "--terminate",
    ]
