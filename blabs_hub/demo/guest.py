"""A small real guest for demos and tests, built from two Debian packages.

The Debian kernel and a static busybox become a ~10 MB bootable qcow2 disk: a FAT file
system with syslinux on it (no partition table, no loop mount, no root), the kernel, and an
initramfs whose ``/init`` mounts the usual file systems and runs a shell on the VGA console
(tty1, what SPICE shows), so keys typed in the browser reach it. Everything is user-space
tooling: ``apt-get download``, ``dpkg-deb``, ``cpio``, ``mkfs.vfat``, ``syslinux``,
``mcopy``, ``qemu-img``. Under TCG it reaches the shell in a few seconds.

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


def extract_from_deb(deb: Path, prefix: str, dest: Path) -> Path:
    """Extract the first member of ``deb`` whose path starts with ``prefix`` (as dpkg-deb -x
    would, but one file: the kernel package also holds ~400 MB of modules we do not need)."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.isfile() and member.name.lstrip("./").startswith(prefix):
                    data = tar.extractfile(member).read()
                    dest.write_bytes(data)
                    dest.chmod(0o755)
                    return dest
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    raise DemoBuildError(f"{deb.name} has no {prefix}*")


def build_initramfs(busybox: Path, out: Path, workdir: Path) -> Path:
    """A gzip'd newc cpio with busybox and our ``/init``; owned by root whoever builds it."""
    root = workdir / "initramfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    (root / "init").write_text(INIT_SCRIPT)
    (root / "init").chmod(0o755)
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
    """A finished demo image: qcow2, the expected size, no backing file."""
    if not image.is_file():
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
        kernel = extract_from_deb(debs[kernel_pkg], "boot/vmlinuz-", work / "vmlinuz")
        busybox = extract_from_deb(debs["busybox-static"], "bin/busybox", work / "busybox")
        initramfs = build_initramfs(busybox, work / "initrd.gz", work)
        raw = build_boot_disk(kernel, initramfs, work / "disk.img")
        partial = work / IMAGE_NAME
        _run(["qemu-img", "convert", "-f", "raw", "-O", IMAGE_FORMAT, str(raw), str(partial)])
        os.replace(partial, out)
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
