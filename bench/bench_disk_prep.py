"""Disk preparation: a qcow2 overlay over 1, 16 and 64 GiB bases vs a full copy of the base.

Each figure is printed beside its reference from the same run, as a ratio (these shared
machines vary 2x between runs):

- overlay creation (``create_overlay``: base check + ``qemu-img create -f qcow2 -F raw -b``)
  over sparse raw ("flat") bases of 1, 16 and 64 GiB, median of N runs; the flatness
  ratio is each size's median over the 1 GiB median (should stay ~1.0).
- the reference: a full copy of a 1 GiB base filled with data (8 MiB reads/writes + fsync,
  no reflink or sparse tricks). Copying 16 or 64 GiB is extrapolated from its rate, and
  stated as such: copying 64 GiB for real would take minutes and the disk space.

Usage: ``python bench/bench_disk_prep.py [--runs 20]``.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from blabs_hub.lab.disk import create_overlay, remove_overlay  # noqa: E402

GIB = 1024**3
CHUNK = 8 * 1024 * 1024


def time_overlay(base: Path, overlay: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        create_overlay(base, "raw", overlay)
        times.append(time.perf_counter() - start)
        remove_overlay(overlay)
    return statistics.median(times)


def full_copy(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(CHUNK):
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="overlays per base size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="blabs-bench-disk-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        overlay = tmp / "disk.qcow2"
        medians = {}
        for size in (1, 16, 64):
            base = tmp / f"base-{size}g.raw"
            with open(base, "wb") as f:
                f.truncate(size * GIB)  # sparse: a flat image of that virtual size
            medians[size] = time_overlay(base, overlay, args.runs)
            base.unlink()

        filled = tmp / "filled-1g.raw"
        block = os.urandom(CHUNK)
        with open(filled, "wb") as f:
            for _ in range(GIB // CHUNK):
                f.write(block)
            os.fsync(f.fileno())
        copy_seconds = full_copy(filled, tmp / "copy-1g.raw")
        rate = GIB / copy_seconds

    print(f"full copy reference: 1 GiB in {copy_seconds * 1000:.0f} ms ({rate / 1e6:.0f} MB/s)")
    header = ("base", "overlay (median)", "vs 1 GiB", "full copy", "copy/overlay")
    print("{:>8} {:>17} {:>9} {:>14} {:>13}".format(*header))
    for size, median in medians.items():
        copy = copy_seconds * size
        kind = "measured" if size == 1 else "extrapolated"
        print(
            f"{size:>5} GiB {median * 1000:>14.1f} ms {median / medians[1]:>8.2f}x "
            f"{copy:>8.1f} s ({kind[0]}) {copy / median:>12.0f}x"
        )
    print("(m) measured in this run; (e) extrapolated from the 1 GiB copy's rate")


if __name__ == "__main__":
    main()
