"""A small real guest for demos and tests, built from two Debian packages.

The Debian kernel and a static busybox become a ~10 MB bootable qcow2 disk: a FAT file
system with syslinux on it (no partition table, no loop mount, no root), the kernel, and an
initramfs whose ``/init`` mounts the usual file systems and runs a shell on the VGA console
(tty1, what SPICE shows), so keys typed in the browser reach it. Everything is user-space
tooling: ``apt-get download``, ``dpkg-deb``, ``cpio``, ``mkfs.vfat``, ``syslinux``,
``mcopy``, ``qemu-img``. Under TCG it reaches the shell in a few seconds.

The Debian kernel builds its virtio drivers as modules: the eight that a virtio-net card
needs are copied into the initramfs and loaded at boot, and busybox's ``udhcpc`` configures
``eth0`` when the lab has a network. ``netcheck PORT``, typed at the shell, writes to the
serial port the guest's address and gateway and whether the gateway answers on ``PORT``:
how tests prove that a guest cannot reach the lab host's loopback.

The kernel command line puts the kernel console on ``ttyS0`` and ``tty0``: QEMU's
``-serial file:`` log then shows the boot, and ``echo X > /dev/ttyS0`` typed at the shell
lands in that log, which is how tests prove input reached the guest.

``ensure_demo_image(cache_dir)`` is idempotent and safe against concurrent builds (a file
lock, and the image appears under its final name only when complete).
"""

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

IMAGE_NAME = "demo-linux.qcow2"
IMAGE_FORMAT = "qcow2"
DISK_MIB = 48
# The first line the demo guest writes to its serial port when its shell is about to start.
READY_MARKER = "blabs-demo: shell ready"
KERNEL_CMDLINE = "console=ttyS0 console=tty0 vga=0x318 quiet"
# Load order matters (each needs the ones before it); paths under lib/modules/<version>/kernel.
NET_MODULES = (
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
)

UDHCPC_SCRIPT = """#!/bin/sh
# busybox udhcpc calls this with bound/renew/deconfig and the lease in the environment
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done ;;
esac
"""

NETCHECK_SCRIPT = """#!/bin/sh
# netcheck PORT: this guest's address and gateway, and whether the gateway answers on PORT
# (an HTTP GET), written to the serial port where the lab's log keeps it.
port="${1:-80}"
for i in 1 2 3 4 5 6 7 8 9 10; do
  gw=$(ip route | awk '/^default/ {print $3; exit}')
  [ -n "$gw" ] && break
  sleep 1
done
addr=$(ip -4 addr show dev eth0 2>/dev/null | awk '/inet / {print $2; exit}')
echo "netcheck: address ${addr:-none} gateway ${gw:-none}" > /dev/ttyS0
# (busybox 1.35's static wget crashes on -T: busybox timeout bounds it instead)
if [ -n "$gw" ] && body=$(timeout 5 wget -q -O - "http://$gw:$port/" 2>/dev/null); then
  echo "netcheck: gateway port $port answered: $body" > /dev/ttyS0
else
  echo "netcheck: gateway port $port unreachable" > /dev/ttyS0
fi
"""

INIT_SCRIPT = f"""#!/bin/busybox sh
# Bretter Labs demo guest: everything runs from this initramfs.
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin /root
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
hostname blabs-demo
export HOME=/root PS1='demo# '
for module in /lib/modules/*.ko; do insmod "$module" 2>/dev/null; done
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 1 > /dev/null 2>&1 &
fi
echo "{READY_MARKER}" > /dev/ttyS0
while true; do
  clear > /dev/tty1
  printf '\\n  Bretter Labs demo guest (Debian kernel + busybox)\\n\\n' > /dev/tty1
  setsid cttyhack sh -l < /dev/tty1 > /dev/tty1 2>&1
  sleep 1
done
"""

SYSLINUX_CFG = f"""DEFAULT demo
PROMPT 0
TIMEOUT 0
LABEL demo
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND {KERNEL_CMDLINE}
"""


# What the image is built from: a cached image built from other scripts is rebuilt.
BUILD_ID = hashlib.sha256(
    "\0".join((INIT_SCRIPT, UDHCPC_SCRIPT, NETCHECK_SCRIPT, SYSLINUX_CFG, *NET_MODULES)).encode()
).hexdigest()[:16]


def build_id_file(image: Path) -> Path:
    return image.with_name(image.name + ".build-id")


class DemoBuildError(RuntimeError):
    """The demo image cannot be built; the message names the step."""


def _run(argv: list[str], cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            argv, cwd=cwd, capture_output=True, check=False, timeout=600, **kwargs
        )
    except FileNotFoundError:
        raise DemoBuildError(f"{argv[0]} is not installed") from None
    if result.returncode != 0:
        err = result.stderr.decode(errors="replace").strip() if result.stderr else ""
        raise DemoBuildError(f"{' '.join(argv[:3])} failed: {err[-500:]}")
    return result


def kernel_package() -> str:
    """The versioned kernel package behind Debian's ``linux-image-amd64`` meta package."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"]).stdout.decode()
    for line in out.splitlines():
        name = line.split(":", 1)[-1].strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    raise DemoBuildError("apt-cache names no kernel for linux-image-amd64 (run apt-get update)")


def download_packages(packages: list[str], dest: Path) -> dict[str, Path]:
    """``apt-get download`` (no install, no root needed) into ``dest``; name → .deb path."""
    argv = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:  # as root apt drops to _apt, which cannot write a private tmp dir
        argv += ["-o", "APT::Sandbox::User=root"]
    _run(argv + packages, cwd=dest)
    debs = {}
    for name in packages:
        found = sorted(dest.glob(f"{name}_*.deb"))
        if not found:
            raise DemoBuildError(f"apt-get download produced no .deb for {name}")
        debs[name] = found[-1]
    return debs


def extract_from_deb(deb: Path, wanted: dict[str, Path]) -> dict[str, Path]:
    """Extract the members of ``deb`` whose paths end with each key of ``wanted`` (to its
    value) in one pass, as dpkg-deb -x would but only those files: the kernel package holds
    ~400 MB of modules we do not need. Stops reading once all are found."""
    found: dict[str, Path] = {}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.lstrip("./")
                key = next((k for k in wanted if k not in found and name.endswith(k)), None)
                if key is None:
                    continue
                wanted[key].write_bytes(tar.extractfile(member).read())
                wanted[key].chmod(0o755)
                found[key] = wanted[key]
                if len(found) == len(wanted):
                    return found
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    missing = ", ".join(sorted(set(wanted) - set(found)))
    raise DemoBuildError(f"{deb.name} has no {missing}")


def build_initramfs(busybox: Path, modules: list[Path], out: Path, workdir: Path) -> Path:
    """A gzip'd newc cpio with busybox, the network modules (numbered in load order) and
    our scripts; owned by root whoever builds it."""
    root = workdir / "initramfs"
    for folder in ("bin", "etc", "lib/modules"):
        (root / folder).mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for number, module in enumerate(modules, start=1):
        shutil.copy2(module, root / "lib" / "modules" / f"{number}-{module.name}")
    for name, text in (
        ("init", INIT_SCRIPT),
        ("etc/udhcpc.script", UDHCPC_SCRIPT),
        ("bin/netcheck", NETCHECK_SCRIPT),
    ):
        (root / name).write_text(text)
        (root / name).chmod(0o755)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = ("\n".join(["."] + names) + "\n").encode()
    archive = _run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=root, input=listing)
    out.write_bytes(gzip.compress(archive.stdout, compresslevel=6, mtime=0))
    return out


def build_boot_disk(kernel: Path, initramfs: Path, raw: Path) -> Path:
    """A superfloppy FAT disk that SeaBIOS boots: syslinux in its boot sector."""
    with open(raw, "wb") as f:
        f.truncate(DISK_MIB * 1024 * 1024)
    _run(["mkfs.vfat", "-n", "BLABSDEMO", str(raw)])
    _run(["syslinux", "--install", str(raw)])
    cfg = raw.parent / "syslinux.cfg"
    cfg.write_text(SYSLINUX_CFG)
    for src, name in ((kernel, "vmlinuz"), (initramfs, "initrd.gz"), (cfg, "syslinux.cfg")):
        _run(["mcopy", "-o", "-i", str(raw), str(src), f"::/{name}"])
    return raw


def image_is_valid(image: Path) -> bool:
    """A finished demo image of this build: qcow2, the expected size, no backing file."""
    if not image.is_file():
        return False
    try:
        if build_id_file(image).read_text().strip() != BUILD_ID:
            return False
    except OSError:
        return False
    try:
        out = subprocess.run(
            ["qemu-img", "info", "-f", IMAGE_FORMAT, "--output=json", str(image)],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        info = json.loads(out)
    except (subprocess.SubprocessError, ValueError, OSError):
        return False
    return (
        info.get("format") == IMAGE_FORMAT
        and info.get("virtual-size") == DISK_MIB * 1024 * 1024
        and "backing-filename" not in info
    )


def build_demo_image(out: Path) -> Path:
    """Build the image at ``out`` (written under a temporary name, then renamed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-build-", dir=out.parent) as tmp:
        work = Path(tmp)
        kernel_pkg = kernel_package()
        debs = download_packages([kernel_pkg, "busybox-static"], work)
        version = kernel_pkg.removeprefix("linux-image-")
        kernel_files = {f"boot/vmlinuz-{version}": work / "vmlinuz"}
        kernel_files |= {f"/{m}": work / Path(m).name for m in NET_MODULES}
        extract_from_deb(debs[kernel_pkg], kernel_files)
        busybox = work / "busybox"
        extract_from_deb(debs["busybox-static"], {"bin/busybox": busybox})
        modules = [work / Path(m).name for m in NET_MODULES]
        initramfs = build_initramfs(busybox, modules, work / "initrd.gz", work)
        kernel = work / "vmlinuz"
        raw = build_boot_disk(kernel, initramfs, work / "disk.img")
        partial = work / IMAGE_NAME
        _run(["qemu-img", "convert", "-f", "raw", "-O", IMAGE_FORMAT, str(raw), str(partial)])
        os.replace(partial, out)
        build_id_file(out).write_text(BUILD_ID + "\n")
    return out


def ensure_demo_image(cache_dir: Path) -> Path:
    """The demo image in ``cache_dir``, built once; concurrent callers wait for one build."""
    cache_dir = Path(cache_dir)
    image = cache_dir / IMAGE_NAME
    if image_is_valid(image):
        return image
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{IMAGE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not image_is_valid(image):
                with contextlib.suppress(FileNotFoundError):
                    image.unlink()
                build_demo_image(image)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return image


def main(argv: list[str] | None = None) -> int:
    from blabs_hub.lab.config import default_cache_dir

    parser = argparse.ArgumentParser(
        prog="python -m blabs_hub.demo.guest",
        description=f"Build (once) the demo guest disk {IMAGE_NAME} from Debian packages.",
    )
    parser.add_argument(
        "outdir", nargs="?", help="where to put it (default: $BLABS_CACHE_DIR or <repo>/.cache)"
    )
    args = parser.parse_args(argv)
    outdir = Path(args.outdir) if args.outdir else default_cache_dir()
    try:
        image = ensure_demo_image(outdir)
    except DemoBuildError as e:
        print(f"blabs demo guest: {e}", file=sys.stderr)
        return 1
    print(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
