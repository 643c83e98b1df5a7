"""The QEMU command line builder: one behaviour per test, no QEMU started."""

import itertools
import re
from pathlib import Path

import pytest

from blabs_hub.lab.network import needs_passt, passt_argv, with_network_fd
from blabs_hub.lab.qemu import (
    HYPERV_FLAGS,
    TCG_CPU_MODEL,
    FirmwareFiles,
    build_qemu_argv,
    network_listeners,
)
from blabs_hub.lab.spec import DISK_BUSES, FIRMWARES, GUEST_PROFILES, NETWORKS, LabPaths, LabSpec

PATHS = LabPaths(Path("/labs/alice-win11"))
UEFI = FirmwareFiles(Path("/ovmf/CODE.fd"), PATHS.workdir / "efivars.fd")
SECURE = FirmwareFiles(Path("/ovmf/CODE.secboot.fd"), PATHS.workdir / "efivars.fd", True)
TPM = PATHS.workdir / "swtpm.sock"


def spec(**changes) -> LabSpec:
    fields = dict(slug="win11", image_path="/images/win11.qcow2", image_format="qcow2")
    return LabSpec(**{**fields, **changes})


def argv_for(s: LabSpec, accel: str = "tcg") -> list[str]:
    firmware = {"bios": None, "uefi": UEFI, "uefi-secure-tpm": SECURE}[s.firmware]
    tpm = TPM if s.firmware == "uefi-secure-tpm" else None
    return build_qemu_argv(s, PATHS, accel=accel, firmware_files=firmware, tpm_socket=tpm)


def values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]


ALL_SPECS = [
    spec(guest_profile=p, firmware=f, disk_bus=d, network=n)
    for p, f, d, n in itertools.product(GUEST_PROFILES, FIRMWARES, DISK_BUSES, NETWORKS)
]


@pytest.mark.parametrize("accel", ["kvm", "tcg"])
def test_spice_and_qmp_are_unix_sockets_never_tcp(accel):
    tcp = re.compile(r"tcp|(?<![a-z])port=|tls-port|hostfwd|guestfwd|websocket|-vnc|-gdb", re.I)
    for s in ALL_SPECS:
        argv = argv_for(s, accel)
        assert [a for a in argv if tcp.search(a)] == []
        assert network_listeners(argv) == []
        assert values(argv, "-spice") == [f"unix=on,addr={PATHS.spice_socket},disable-ticketing=on"]
        assert values(argv, "-qmp") == [f"unix:{PATHS.qmp_socket},server=on,wait=off"]


def test_network_listeners_flags_every_way_to_open_a_port():
    assert network_listeners(["-spice", "port=5900,disable-ticketing=on"])
    assert network_listeners(["-qmp", "tcp:127.0.0.1:4444,server=on"])
    assert network_listeners(["-vnc", ":0"])
    assert network_listeners(["-netdev", "user,id=n,hostfwd=tcp::2222-:22"])
    assert network_listeners(["-vnc", "unix:/labs/x/vnc.sock"]) == []


def test_windows_profile_enables_hyperv_enlightenments_only_under_kvm():
    kvm_cpu = values(argv_for(spec(), "kvm"), "-cpu")[0]
    assert kvm_cpu.split(",") == ["host", *HYPERV_FLAGS]
    assert "hv-" not in values(argv_for(spec(), "tcg"), "-cpu")[0]


def test_generic_profile_has_no_hyperv_enlightenments():
    assert values(argv_for(spec(guest_profile="generic"), "kvm"), "-cpu") == ["host"]


def test_tcg_uses_a_named_cpu_model_never_host_or_max():
    for s in ALL_SPECS:
        cpu = values(argv_for(s, "tcg"), "-cpu")[0]
        assert cpu == TCG_CPU_MODEL
        assert cpu.split(",")[0] not in ("host", "max")


def test_accel_must_be_resolved_before_building():
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        build_qemu_argv(spec(), PATHS, accel="auto")


def test_every_machine_has_no_defaults_no_user_config_no_display_and_the_sandbox():
    for s in ALL_SPECS:
        argv = argv_for(s)
        assert "-nodefaults" in argv and "-no-user-config" in argv
        assert values(argv, "-display") == ["none"]
        assert values(argv, "-sandbox")[0].startswith("on,")
        assert values(argv, "-name")[0].startswith("guest=win11,")
        assert values(argv, "-serial") == [f"file:{PATHS.serial_log}"]
        assert "qxl-vga,id=video0" in values(argv, "-device")


def test_the_only_disk_is_the_overlay_with_its_format_stated():
    for s in ALL_SPECS:
        drives = [d for d in values(argv_for(s), "-drive") if "if=pflash" not in d]
        assert len(drives) == 1
        assert drives[0].startswith(f"file={PATHS.overlay},format=qcow2,")
        assert "/images/win11.qcow2" not in " ".join(argv_for(s))


def test_virtio_bus_uses_virtio_blk_and_virtio_net():
    devices = values(argv_for(spec(disk_bus="virtio")), "-device")
    assert "virtio-blk-pci,drive=disk0,bootindex=0" in devices
    assert "virtio-net-pci,netdev=net0" in devices


def test_sata_bus_uses_ahci_and_e1000e_for_images_without_virtio_drivers():
    devices = values(argv_for(spec(disk_bus="sata")), "-device")
    assert "ahci,id=sata0" in devices
    assert "ide-hd,drive=disk0,bus=sata0.0,bootindex=0" in devices
    assert "e1000e,netdev=net0" in devices
    assert not [d for d in devices if d.startswith("virtio-blk") or d.startswith("virtio-net")]


def test_internet_is_a_passt_socket_by_default_filled_in_when_qemu_starts():
    argv = argv_for(spec(network="internet"))
    assert values(argv, "-netdev") == ["stream,id=net0,addr.type=fd,addr.str={network_fd}"]
    assert needs_passt(argv)
    started = with_network_fd(argv, 7)
    assert values(started, "-netdev") == ["stream,id=net0,addr.type=fd,addr.str=7"]
    assert not needs_passt(started)


def test_slirp_is_qemus_own_user_mode_networking():
    s = spec(network="internet")
    argv = build_qemu_argv(s, PATHS, accel="tcg", network_backend="slirp")
    assert values(argv, "-netdev") == ["user,id=net0"]
    assert not needs_passt(argv)


def test_an_unknown_network_backend_is_refused():
    with pytest.raises(ValueError, match="passt, slirp"):
        build_qemu_argv(spec(network="internet"), PATHS, accel="tcg", network_backend="tap")


def test_passt_serves_one_inherited_socket_without_forwarding_or_gateway_mapping():
    argv = passt_argv("/usr/bin/passt", 9)
    assert argv[0] == "/usr/bin/passt"
    assert "--no-map-gw" in argv and "--foreground" in argv
    assert values(argv, "--fd") == ["9"]
    assert values(argv, "--tcp-ports") == ["none"] and values(argv, "--udp-ports") == ["none"]


def test_network_none_has_no_network_card_at_all():
    argv = argv_for(spec(network="none"))
    assert "-netdev" not in argv and "-nic" not in argv
    assert not [d for d in values(argv, "-device") if "net" in d.split(",")[0]]


def test_windows_profile_has_tablet_agent_port_spice_audio_and_local_clock():
    argv = argv_for(spec(guest_profile="windows"))
    devices = values(argv, "-device")
    assert "usb-tablet,bus=usb.0" in devices
    assert "virtserialport,bus=vser0.0,chardev=vdagent,name=com.redhat.spice.0" in devices
    assert "spicevmc,id=vdagent,name=vdagent" in values(argv, "-chardev")
    assert values(argv, "-audiodev") == ["spice,id=audio0"]
    assert "hda-duplex,audiodev=audio0,bus=sound0.0" in devices
    assert values(argv, "-rtc") == ["base=localtime,driftfix=slew"]


def test_generic_profile_has_tablet_and_agent_but_no_audio():
    argv = argv_for(spec(guest_profile="generic"))
    assert "usb-tablet,bus=usb.0" in values(argv, "-device")
    assert "-audiodev" not in argv
    assert values(argv, "-rtc") == ["base=utc"]


def test_cpus_are_cores_of_one_socket_because_client_windows_uses_two_sockets_at_most():
    argv = argv_for(spec(cpus=8, memory_mib=8192))
    assert values(argv, "-smp") == ["cpus=8,sockets=1,cores=8,threads=1"]
    assert values(argv, "-m") == ["8192"]


def test_bios_firmware_adds_no_pflash_and_no_tpm():
    argv = argv_for(spec(firmware="bios"))
    assert not [d for d in values(argv, "-drive") if "pflash" in d]
    assert "-tpmdev" not in argv


def test_uefi_boots_ovmf_with_the_labs_own_vars_copy():
    drives = values(argv_for(spec(firmware="uefi")), "-drive")
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.fd" in drives
    assert f"if=pflash,format=raw,unit=1,file={PATHS.workdir}/efivars.fd" in drives
    assert "-tpmdev" not in argv_for(spec(firmware="uefi"))


def test_uefi_without_firmware_files_is_refused():
    with pytest.raises(ValueError, match="OVMF"):
        build_qemu_argv(spec(firmware="uefi"), PATHS, accel="tcg")


def test_secure_boot_tpm_uses_smm_protected_vars_and_a_swtpm_socket():
    argv = argv_for(spec(firmware="uefi-secure-tpm"))
    assert values(argv, "-machine") == ["q35,smm=on"]
    assert "driver=cfi.pflash01,property=secure,value=on" in values(argv, "-global")
    assert values(argv, "-chardev")[0] == f"socket,id=chrtpm,path={TPM}"
    assert values(argv, "-tpmdev") == ["emulator,id=tpm0,chardev=chrtpm"]
    assert "tpm-crb,tpmdev=tpm0" in values(argv, "-device")


def test_secure_boot_tpm_without_a_tpm_socket_is_refused():
    with pytest.raises(ValueError, match="swtpm"):
        build_qemu_argv(spec(firmware="uefi-secure-tpm"), PATHS, accel="tcg", firmware_files=SECURE)


def test_commas_in_paths_and_names_are_escaped_for_qemus_option_parser():
    paths = LabPaths(Path("/labs/a,b"))
    argv = build_qemu_argv(spec(slug="x,y"), paths, accel="tcg")
    assert values(argv, "-spice")[0].startswith("unix=on,addr=/labs/a,,b/spice.sock,")
    assert values(argv, "-drive")[0].startswith("file=/labs/a,,b/disk.qcow2,format=qcow2")
    assert values(argv, "-name")[0].startswith("guest=x,,y,")


def test_qemu_binary_is_configurable():
    assert build_qemu_argv(spec(), PATHS, accel="tcg", qemu_binary="/opt/q")[0] == "/opt/q"
