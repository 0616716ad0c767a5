"""What this machine's disk gives the bytes of one recorder's dock: 1 GiB
written with fsync, 1 GiB read with O_DIRECT (as the directory archive reads
its copy back), and 2 GiB written beside 1 GiB read at once (dockgate's
staging and archive copies and its read-back). Context for the one-recorder
row of ``bench/run.py``; not a goal.

    python bench/disk_floor.py DIR [--rounds 3]
"""

from __future__ import annotations

import argparse
import mmap
import os
import threading
import time
from pathlib import Path

GiB = 1 << 30
BLOCK = 4 << 20


def _write(path: Path, block: mmap.mmap, size: int = GiB) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(size // BLOCK):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_direct(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT wants
    try:
        while os.readv(fd, [buf]):
            pass
    finally:
        os.close(fd)


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    block = mmap.mmap(-1, BLOCK)
    block.write(os.urandom(BLOCK))  # not zeros: a virtual disk may compress or skip them
    names = [a.dir / f"floor-{n}" for n in ("r", "w1", "w2", "w3")]
    _write(names[0], block)
    os.sync()
    try:
        for _ in range(a.rounds):
            w = _timed(lambda: _write(names[1], block))
            r = _timed(lambda: _read_direct(names[0]))

            def together() -> None:
                ts = [threading.Thread(target=_write, args=(names[2], block)),
                      threading.Thread(target=_write, args=(names[3], block)),
                      threading.Thread(target=_read_direct, args=(names[0],))]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()

            b = _timed(together)
            print(f"write 1 GiB+fsync {w:.2f} s ({GiB / w / 1e6:.0f} MB/s); O_DIRECT read 1 GiB {r:.2f} s "
                  f"({GiB / r / 1e6:.0f} MB/s); 2 GiB written + 1 GiB read together {b:.2f} s "
                  f"({3 * GiB / b / 1e6:.0f} MB/s)")
    finally:
        for p in names:
            p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
