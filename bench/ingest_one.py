"""Ingest of one large clip against cp, sha256sum and OpenSSL SHA-256 alone,
interleaved in one process tree (this VM is noisy: compare same-run ratios).

    python bench/ingest_one.py [--size 1G] [--rounds 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.base import ClipRef
from drivers.volume import Volume
from gateway.cli.common import parse_size
from gateway.copyhash import make_buffers
from gateway.pipeline.ingest import pull
from gateway.pipeline.staging import Staging


def make_clip(path: Path, size: int) -> None:
    chunk = os.urandom(1 << 24)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    os.sync()


def warm(src: Path) -> None:
    """Every contender starts with the source in the page cache (dockgate
    drops it after a pull, as it should for a recorder's files)."""
    with open(src, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        while f.readinto(buf):
            pass


def drop_dest(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def t_dockgate(src: Path, work: Path) -> float:
    staging = Staging(work / "staging", 0)
    staging.prepare()
    st = src.stat()
    ref = ClipRef(src.name.encode(), st.st_size, st.st_mtime_ns)
    vol = Volume(src.parent)
    t = time.perf_counter()
    got = pull(lambda r: vol.open(r.relpath), ref, staging.temp_path(1), make_buffers(1 << 20),
               threading.Event())
    staging.commit(got.temp, got.sha256)
    el = time.perf_counter() - t
    drop_dest(work / "staging")
    return el


def t_cmd(cmd: list[str], cleanup: Path | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    el = time.perf_counter() - t
    if cleanup is not None:
        drop_dest(cleanup)
    return el


def t_hashlib(src: Path) -> float:
    t = time.perf_counter()
    with open(src, "rb") as f:
        hashlib.file_digest(f, "sha256")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dockgate-bench-", dir=a.dir))
    try:
        src = work / "vol" / "clip.mp4"
        src.parent.mkdir()
        make_clip(src, a.size)
        dst = work / "cp-dest.mp4"
        runs: dict[str, list[float]] = {k: [] for k in
                                        ("dockgate", "cp", "cp+sync", "sha256sum", "cp+sha256sum",
                                         "hashlib")}
        contenders = {
            "dockgate": lambda: t_dockgate(src, work),
            "cp": lambda: t_cmd(["cp", str(src), str(dst)], dst),
            "cp+sync": lambda: t_cmd(["sh", "-c", f"cp '{src}' '{dst}' && sync '{dst}'"], dst),
            "sha256sum": lambda: t_cmd(["sha256sum", str(src)]),
            "cp+sha256sum": lambda: t_cmd(["sh", "-c", f"cp '{src}' '{dst}' && sha256sum '{dst}'"], dst),
            "hashlib": lambda: t_hashlib(src),
        }
        for _ in range(a.rounds):  # interleaved: A B C ... A B C ...
            for name, run in contenders.items():
                warm(src)
                os.sync()
                runs[name].append(run())
        gb = a.size / 1e9
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"one clip of {a.size / 2**30:.2f} GiB, {a.rounds} interleaved rounds, medians "
              f"(source in page cache for all)")
        print(f"{'what':<16}{'seconds':>9}{'GB/s':>8}{'dockgate is N x as fast':>25}  spread")
        for k, v in med.items():
            spread = f"{min(runs[k]):.2f}-{max(runs[k]):.2f}s"
            print(f"{k:<16}{v:>9.2f}{gb / v:>8.2f}{v / med['dockgate']:>24.2f}x  {spread}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
