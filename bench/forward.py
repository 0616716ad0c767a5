"""Forwarding throughput, in one process tree, interleaved rounds:

* S3: dockgate's S3 backend (hash while sending, SHA-256 per PUT/part,
  read-back verification, or checksum-only) against `aws s3 cp` of the same
  files to the same moto S3 server;
* directory: dockgate's directory backend (fsync, link, read-back) against
  `cp` of the same files.

    python bench/forward.py [--clips 8] [--size 32M] [--rounds 3]
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
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.archive.base import ArchiveObject
from gateway.archive.directory import DirectoryArchive
from gateway.archive.s3 import S3Archive
from gateway.cli.common import parse_size
from gateway.config import S3ArchiveConfig
from tests.servers import MotoServer

ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "dockgate-test", "AWS_SECRET_ACCESS_KEY": "dockgate-test-secret",
       "AWS_DEFAULT_REGION": "us-east-1"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--size", type=parse_size, default=parse_size("32M"))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dockgate-bench-fwd-", dir="/work" if os.path.isdir("/work") else None))
    server = MotoServer(work / "moto.log")
    try:
        src = work / "clips"
        src.mkdir()
        objs = []
        for i in range(a.clips):
            p = src / f"clip{i:03d}.mp4"
            data = os.urandom(a.size)
            p.write_bytes(data)
            objs.append((p, hashlib.sha256(data).hexdigest()))
        for name, value in (("ak", "dockgate-test"), ("sk", "dockgate-test-secret")):
            (work / name).write_text(value)
            os.chmod(work / name, 0o600)
        aws = shutil.which("aws") or str(Path(sys.executable).parent / "aws")
        total = a.clips * a.size
        runs: dict[str, list[float]] = {k: [] for k in ("dockgate s3 readback", "dockgate s3 checksum",
                                                        "aws s3 cp", "dockgate directory", "cp")}

        def s3(verify: str) -> float:
            bucket = server.make_bucket()
            cfg = S3ArchiveConfig.model_validate({
                "backend": "s3", "endpoint": server.endpoint, "bucket": bucket, "access_key_file": work / "ak",
                "secret_key_file": work / "sk", "verify": verify, "retention_mode": "none"})
            arch = S3Archive(cfg, work / "state")
            t = time.perf_counter()
            for p, sha in objs:
                arch.put(ArchiveObject(f"o/{p.name}", p, sha, a.size))
            return time.perf_counter() - t

        def aws_cp() -> float:
            bucket = f"plain-{uuid.uuid4().hex[:10]}"
            server.client().create_bucket(Bucket=bucket)
            t = time.perf_counter()
            subprocess.run([aws, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", server.endpoint,
                            str(src), f"s3://{bucket}/o/"], check=True, env=ENV)
            return time.perf_counter() - t

        def directory() -> float:
            dest = work / "arch"
            dest.mkdir()
            arch = DirectoryArchive(dest)
            t = time.perf_counter()
            for p, sha in objs:
                arch.put(ArchiveObject(f"o/{p.name}", p, sha, a.size))
            el = time.perf_counter() - t
            shutil.rmtree(dest, ignore_errors=True)
            return el

        def cp() -> float:
            dest = work / "cpdest"
            t = time.perf_counter()
            subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
            el = time.perf_counter() - t
            shutil.rmtree(dest)
            return el

        for _ in range(a.rounds):
            runs["dockgate s3 readback"].append(s3("readback"))
            runs["aws s3 cp"].append(aws_cp())
            runs["dockgate s3 checksum"].append(s3("checksum"))
            runs["dockgate directory"].append(directory())
            runs["cp"].append(cp())
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"forwarding {a.clips} clips x {a.size / 2**20:.0f} MiB, {a.rounds} interleaved rounds, medians")
        print(f"{'what':<22}{'seconds':>9}{'MB/s':>8}  spread")
        for k, v in med.items():
            print(f"{k:<22}{v:>9.2f}{total / v / 1e6:>8.1f}  {min(runs[k]):.2f}-{max(runs[k]):.2f}s")
        print(f"ratios: s3 readback / aws s3 cp = {med['aws s3 cp'] / med['dockgate s3 readback']:.2f}x speed, "
              f"s3 checksum / aws s3 cp = {med['aws s3 cp'] / med['dockgate s3 checksum']:.2f}x, "
              f"directory / cp = {med['cp'] / med['dockgate directory']:.2f}x")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
