"""An experiment for issue 17, outside the daemon: how should a slot write
its staged copy when many slow slots pull at once?

*slots* threads each copy *clips* clips of *size* bytes at *rate* bytes/s (a
USB 2.0 link, paced the way drivers/sim/link.py paces a simulated one),
hashing in the copy thread as a slow slot does (``copyhash.HASH_INLINE_BELOW``),
all started at once. ``buffered`` writes as the pull path does today: 128 KiB
writes (``durable.write_all``), ``POSIX_FADV_DONTNEED`` every 32 MiB.
``direct`` writes 1 MiB with ``O_DIRECT`` from a page-aligned buffer through
``copyhash.DirectWrite``, as a slow slot now does. Prints each stream's time against its link time and the CPU
it took (this process, and the whole machine including the kernel's
writeback).

    python bench/staging_write.py buffered /var/tmp/sw
    python bench/staging_write.py direct /var/tmp/sw

On the 2-core VM of day four, alternating: buffered worst 121-129 %, 15.8-17.1
CPU-s for the machine; direct worst 100 %, 5.1-5.3 CPU-s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import threading
import time
from pathlib import Path

from gateway.copyhash import DirectWrite, aligned_buffer
from gateway.durable import write_all

DROP_EVERY = 32 << 20


def busy_ticks() -> int:
    """Non-idle jiffies of the whole machine (/proc/stat, first line)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(v) - v[3] - v[4]


def stream(mode: str, src: Path, out: Path, clips: int, rate: int, took: dict[int, float], k: int) -> None:
    view = aligned_buffer(1 << 20)
    t0 = time.monotonic()
    for c in range(clips):
        fd = os.open(out / f"s{k}-c{c}", os.O_WRONLY | os.O_CREAT, 0o644)
        write = (DirectWrite.turn_on(fd) if mode == "direct" else None) or write_all
        direct = write is not write_all
        h = hashlib.sha256()
        done = dropped = 0
        start = time.monotonic()
        with open(src, "rb", buffering=0) as s:
            while n := s.readinto(view):
                h.update(view[:n])
                write(fd, view[:n])
                if not direct and done + n - dropped >= DROP_EVERY:
                    os.posix_fadvise(fd, 0, done + n, os.POSIX_FADV_DONTNEED)
                    dropped = done + n
                done += n
                ahead = done / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        os.close(fd)
    took[k] = time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["buffered", "direct"])
    ap.add_argument("work", type=Path)
    ap.add_argument("--slots", type=int, default=25)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--size", type=int, default=64_000_000)
    ap.add_argument("--rate", type=int, default=35_000_000)
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    src = a.work / "clip.bin"
    src.write_bytes(os.urandom(a.size))
    os.sync()
    took: dict[int, float] = {}
    b0, r0 = busy_ticks(), os.times()
    threads = [threading.Thread(target=stream, args=(a.mode, src, a.work, a.clips, a.rate, took, k))
               for k in range(a.slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.sync()
    b1, r1 = busy_ticks(), os.times()
    link = a.clips * a.size / a.rate
    ratios = sorted(v / link for v in took.values())
    tick = os.sysconf("SC_CLK_TCK")
    print(f"{a.mode}: worst {ratios[-1] * 100:.0f} % median {statistics.median(ratios) * 100:.0f} % of link time; "
          f"this process user {r1.user - r0.user:.1f} s, system {r1.system - r0.system:.1f} s; "
          f"whole machine {(b1 - b0) / tick:.1f} CPU-s")
    shutil.rmtree(a.work)


if __name__ == "__main__":
    main()
