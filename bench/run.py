"""The benchmark: one command, one table of same-run ratios.

    python bench/run.py [--quick] [--rounds 3]

Contenders run interleaved (A B A B ...) in one process tree and every
source starts warm in the page cache, because this VM is noisy and makes
the first touch of fresh page-cache memory slow at random; medians of the
rounds are reported with their spread. Absolute numbers are context only.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import scale
from bench.scale import vm, warm
from drivers.base import ClipRef
from drivers.volume import Volume
from gateway.archive.base import ArchiveObject
from gateway.archive.directory import DirectoryArchive
from gateway.archive.s3 import S3Archive
from gateway.catalog import Catalog
from gateway.cli.simstation import write_station
from gateway.config import S3ArchiveConfig
from gateway.copyhash import make_buffers
from gateway.pipeline.ingest import pull
from gateway.pipeline.pullcommit import MAX_BYTES, MAX_CLIPS
from gateway.pipeline.session import BIG_CLIP
from gateway.pipeline.staging import Staging
from tests.helpers import DaemonProc, dockgate
from tests.servers import MotoServer

MiB = 1 << 20
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "dockgate-test", "AWS_SECRET_ACCESS_KEY": "dockgate-test-secret",
       "AWS_DEFAULT_REGION": "us-east-1"}
ROWS: list[tuple[str, str, str, str]] = []


def row(what: str, ratio: str, context: str, goal: str = "") -> None:
    ROWS.append((what, ratio, context, goal))
    print(f"  {what:<58} {ratio:>16}  {goal:<14} {context}", flush=True)


def make_file(path: Path, size: int) -> None:
    chunk = os.urandom(min(size, 16 * MiB)) if size else b""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def sh(cmd: str) -> None:
    subprocess.run(["sh", "-c", cmd], check=True, stdout=subprocess.DEVNULL)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f}-{max(xs):.2f}s"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ingest(files: list[Path], staging_root: Path) -> None:
    """The daemon's path for one slot: copy + hash each clip into tmp/ unsynced,
    then make each batch durable at once (gateway/pipeline/pullcommit.py's policy) in a
    second thread while the next clips copy."""
    staging = Staging(staging_root, 0)
    staging.prepare()
    bufs = make_buffers(MiB)
    batch: list[tuple[Path, str]] = []
    size = 0
    with ThreadPoolExecutor(1) as barrier:
        pending = None
        for i, p in enumerate(files):
            st = p.stat()
            vol = Volume(p.parent)
            got = pull(lambda r, v=vol: v.open(r.relpath), ClipRef(p.name.encode(), st.st_size, st.st_mtime_ns),
                       staging.temp_path(i), bufs, threading.Event(), sync=False)
            batch.append((got.temp, got.sha256))
            size += got.size
            if len(batch) >= MAX_CLIPS or size >= MAX_BYTES or got.size >= BIG_CLIP:
                if pending is not None:
                    pending.result()
                pending = barrier.submit(staging.commit_many, batch)
                batch, size = [], 0
        if pending is not None:
            pending.result()
        if batch:
            staging.commit_many(batch)


def hash_all(files: list[Path]) -> None:
    for p in files:
        with open(p, "rb") as f:
            hashlib.file_digest(f, "sha256")


def interleave(rounds: int, contenders: dict[str, Callable[[], float]], before: Callable[[], None]) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            before()
            os.sync()
            runs[k].append(fn())
    return runs


# -- sections ---------------------------------------------------------------------
def bench_ingest(work: Path, rounds: int, big: int, small_n: int, small_size: int) -> None:
    for label, files in ((f"one clip of {big // MiB} MiB", [work / "big.mp4"]),
                         (f"{small_n} clips of {small_size // MiB} MiB", [work / "small" / f"{i:04d}.mp4"
                                                                          for i in range(small_n)])):
        files[0].parent.mkdir(exist_ok=True)
        for p in files:
            make_file(p, big if len(files) == 1 else small_size)
        total = sum(p.stat().st_size for p in files)
        dest = work / "dest"

        def clean() -> None:
            shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(work / "staging", ignore_errors=True)

        srcs = " ".join(f"'{p}'" for p in files)
        dg_cpu: list[float] = []

        def dg() -> float:
            c = cpu_s()  # this process and its threads (the hasher), user + system
            el = timed(lambda: ingest(files, work / "staging"))
            dg_cpu.append(cpu_s() - c)
            clean()
            return el

        def cp_sha() -> float:
            dest.mkdir()
            el = timed(lambda: sh(f"cp {srcs} '{dest}/' && sha256sum '{dest}'/* > /dev/null"))
            clean()
            return el

        runs = interleave(rounds, {"dockgate": dg, "cp+sha256sum": cp_sha, "hashlib": lambda: timed(
            lambda: hash_all(files))}, lambda: warm(files))
        per_gb = med(dg_cpu) / (total / 1e9)
        d = med(runs["dockgate"])
        row(f"ingest {label}: vs hashlib (SHA-256 alone)", f"{med(runs['hashlib']) / d:.2f}x",
            f"dockgate {total / d / 1e9:.2f} GB/s ({spread(runs['dockgate'])}), hashlib "
            f"{total / med(runs['hashlib']) / 1e9:.2f} GB/s", ">= 0.85x" if len(files) == 1 else ">= 0.8x")
        row(f"ingest {label}: vs cp + sha256sum", f"{med(runs['cp+sha256sum']) / d:.2f}x",
            f"cp+sha256sum {total / med(runs['cp+sha256sum']) / 1e9:.2f} GB/s ({spread(runs['cp+sha256sum'])})",
            ">= 3x")
        row(f"ingest {label}: CPU seconds per GB", f"{per_gb:.2f} s/GB",
            f"user+system of the ingesting process; SHA-256 alone {med(runs['hashlib']) / (total / 1e9):.2f} s/GB",
            "<= 1.2")
        for p in files:
            p.unlink()


def bench_parallel(work: Path, rounds: int, size: int) -> None:
    for n in (1, 4, 8):
        files = []
        for i in range(n):
            p = work / f"rec{i}" / "clip.mp4"
            p.parent.mkdir(exist_ok=True)
            make_file(p, size)
            files.append(p)
        total = n * size

        def dg() -> float:
            with ThreadPoolExecutor(n) as ex:
                t = time.perf_counter()
                list(ex.map(lambda i: ingest([files[i]], work / f"staging{i}"), range(n)))
                el = time.perf_counter() - t
            for i in range(n):
                shutil.rmtree(work / f"staging{i}", ignore_errors=True)
            return el

        def pairs() -> float:
            cmds = " & ".join(f"(cp '{p}' '{p}.copy' && sha256sum '{p}.copy' >/dev/null)" for p in files) + "; wait"
            el = timed(lambda: sh(cmds))
            for p in files:
                Path(f"{p}.copy").unlink()
            return el

        def two_cores() -> float:
            with ThreadPoolExecutor(n) as ex:
                return timed(lambda: list(ex.map(lambda p: hash_all([p]), files)))

        runs = interleave(rounds, {"dockgate": dg, "pairs": pairs, "sha": two_cores}, lambda: warm(files))
        d = med(runs["dockgate"])
        row(f"{n} recorders at once: vs SHA-256 on all cores", f"{med(runs['sha']) / d:.2f}x",
            f"aggregate {total / d / 1e9:.2f} GB/s; SHA-256 alone {total / med(runs['sha']) / 1e9:.2f} GB/s",
            ">= 0.85x" if n == 4 else "")
        row(f"{n} recorders at once: vs parallel cp+sha256sum", f"{med(runs['pairs']) / d:.2f}x",
            f"pairs {total / med(runs['pairs']) / 1e9:.2f} GB/s ({spread(runs['pairs'])})", ">= 3x" if n == 4 else "")
        for p in files:
            shutil.rmtree(p.parent)


def bench_forward(work: Path, rounds: int, clips: int, size: int) -> None:
    server = MotoServer(work / "moto.log")
    try:
        src = work / "fwd"
        src.mkdir()
        objs = []
        for i in range(clips):
            p = src / f"clip{i:03d}.mp4"
            make_file(p, size)
            objs.append((p, hashlib.sha256(p.read_bytes()).hexdigest()))
        for name, value in (("ak", "dockgate-test"), ("sk", "dockgate-test-secret")):
            (work / name).write_text(value)
            os.chmod(work / name, 0o600)
        aws = shutil.which("aws") or str(Path(sys.executable).parent / "aws")

        def s3(verify: str) -> float:
            cfg = S3ArchiveConfig.model_validate({
                "backend": "s3", "endpoint": server.endpoint, "bucket": server.make_bucket(),
                "access_key_file": work / "ak", "secret_key_file": work / "sk", "verify": verify,
                "retention_mode": "GOVERNANCE", "retention_days": 1})
            arch = S3Archive(cfg, work / "state")
            with ThreadPoolExecutor(2) as ex:  # the forwarder's default concurrency
                return timed(lambda: list(ex.map(lambda o: arch.put(ArchiveObject(f"o/{o[0].name}", o[0], o[1], size)),
                                                 objs)))

        def aws_cp() -> float:
            bucket = f"plain-{uuid.uuid4().hex[:10]}"
            server.client().create_bucket(Bucket=bucket)
            return timed(lambda: subprocess.run([aws, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url",
                                                 server.endpoint, str(src), f"s3://{bucket}/o/"], check=True, env=ENV))

        def directory() -> float:
            dest = work / "arch"
            dest.mkdir()
            arch = DirectoryArchive(dest)
            el = timed(lambda: [arch.put(ArchiveObject(f"o/{p.name}", p, sha, size)) for p, sha in objs])
            shutil.rmtree(dest)
            return el

        def cp() -> float:
            el = timed(lambda: sh(f"cp -r '{src}' '{work / 'cpdest'}'"))
            shutil.rmtree(work / "cpdest")
            return el

        runs = interleave(rounds, {"readback": lambda: s3("readback"), "aws": aws_cp,
                                   "checksum": lambda: s3("checksum"), "dir": directory, "cp": cp},
                          lambda: warm([p for p, _ in objs]))
        total = clips * size
        row("forward to S3 (read-back verified) vs aws s3 cp", f"{med(runs['aws']) / med(runs['readback']):.2f}x",
            f"dockgate {total / med(runs['readback']) / 1e6:.0f} MB/s, aws {total / med(runs['aws']) / 1e6:.0f} MB/s "
            f"({spread(runs['aws'])})", ">= 0.9x")
        row("forward to S3 (server checksum) vs aws s3 cp", f"{med(runs['aws']) / med(runs['checksum']):.2f}x",
            f"dockgate {total / med(runs['checksum']) / 1e6:.0f} MB/s; moto does not validate checksums", "")
        row("forward to directory (fsync, read-back) vs cp", f"{med(runs['cp']) / med(runs['dir']):.2f}x",
            f"dockgate {total / med(runs['dir']) / 1e6:.0f} MB/s, cp {total / med(runs['cp']) / 1e6:.0f} MB/s "
            f"(cp neither syncs nor verifies)", "")
    finally:
        server.stop()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def bench_daemon(work: Path, recorders: int, clips: int, size: int, big: int) -> None:
    station = write_station(work / "st", slots=8, reserve_bytes=0)
    recs = []
    for i in range(recorders):
        folder = work / f"R{i}"
        dockgate("sim", "make", str(folder), "--clips", str(clips), "--size", str(size), "--serial", f"BENCH{i:03d}")
        recs.append(folder)
    bigrec = work / "RBIG"
    dockgate("sim", "make", str(bigrec), "--clips", "1", "--size", str(big), "--serial", "BENCHBIG")
    tiny = work / "RTINY"
    dockgate("sim", "make", str(tiny), "--clips", "1", "--size", "1000", "--serial", "BENCHTNY")
    d = DaemonProc(station, work / "daemon.log").start()
    assert d.proc is not None
    pid = d.proc.pid
    try:
        time.sleep(2)
        t0, c0 = time.monotonic(), _cpu_ticks(pid)
        time.sleep(10)
        idle = (_cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0) * 100
        row("idle CPU, nothing docked", f"{idle:.2f} %", "of one core, over 10 s", "< 0.5 %")
        attached = time.time()
        dockgate("sim", "attach", str(tiny), "-c", str(station), "--slot", "8")
        d.wait_for(lambda s: s["clips"]["archived"] >= 1, timeout=60, interval=0.02, what="tiny clip")
        events = [json.loads(x) for x in dockgate("events", "-c", str(station), "--json", "--since", "0",
                                                  "--limit", "1000000").stdout.splitlines()]
        pulled = next(e["ts"] for e in events if e["type"] == "pulled")
        docked = next(e["ts"] for e in events if e["type"] == "docked")
        row("dock to first clip staged (1 kB clip)", f"{pulled - docked:.2f} s",
            f"detection to staged, profile/unlock/identify/clock included; {pulled - attached:.2f} s from "
            f"`sim attach` (the simulator polls its dock every 0.25 s)",
            "< 1 s")
        data = [p for r in recs for p in (r / "storage").rglob("*") if p.is_file()]
        warm(data)
        total = sum(p.stat().st_size for p in data)
        e2e = scale._dock_all(d, station, recs, 1 + len(data), timeout=900)  # the tiny clip counts too
        staging2, archive2 = work / "s2", work / "a2"
        steps = []
        for r in recs:  # one directory per recorder: their file names collide
            s2, a2 = staging2 / r.name, archive2 / r.name
            s2.mkdir(parents=True)
            a2.mkdir(parents=True)
            srcs = " ".join(f"'{p}'" for p in (r / "storage").rglob("*") if p.is_file())
            steps.append(f"cp {srcs} '{s2}/' && sha256sum '{s2}'/* > /dev/null && cp '{s2}'/* '{a2}/'")
        warm(data)
        os.sync()
        base = timed(lambda: sh(" && ".join(steps) + " && sync"))
        row(f"dock -> archived, {recorders} recorders x {clips} x {size // MiB} MiB, directory archive",
            f"{base / e2e:.2f}x", f"dockgate {total / e2e / 1e6:.0f} MB/s end to end (stamped, signed, fsynced, "
            f"read back); cp+sha256sum+cp+sync {total / base / 1e6:.0f} MB/s", ">= 2x")
        dockgate("sim", "attach", str(bigrec), "-c", str(station), "--slot", "7")
        d.wait_for(lambda s: s["clips"]["archived"] == 2 + len(data) and s["queue"]["clips"] == 0, timeout=900,
                   interval=0.2, what="big clip archived")
        hwm = vm(pid, "VmHWM")
        row("daemon peak RSS over all of the above", f"{hwm / 1024:.0f} MB",
            f"VmHWM; includes a {big // MiB} MiB clip and {recorders} recorders in parallel", "< 100 MB")
    finally:
        d.stop()


def bench_catalog(work: Path, n: int) -> None:
    station = write_station(work / "cat", reserve_bytes=0)
    cfg_state = work / "cat" / "state"
    cfg_state.mkdir(parents=True, exist_ok=True)
    cat = Catalog(cfg_state / "catalog.sqlite")
    now = time.time()
    with cat.tx() as db:
        db.execute("INSERT INTO docks (slot, docked_at) VALUES (1, ?)", (now,))
        db.executemany("INSERT INTO items (serial, path, size, mtime_ns, state, dock_id, officer, sha256, "
                       "discovered_at, updated_at) VALUES ('S', ?, 1000, 1, 'pulled', 1, '1', ?, ?, ?)",
                       ((f"DCIM/{i:06d}.MP4".encode(), i.to_bytes(32), now, now) for i in range(n)))
        db.executemany("INSERT INTO clips (sha256, size, state, item_id, created_at, updated_at, archived_at) "
                       "VALUES (?, 1000, 'archived', ?, ?, ?, ?)", ((i.to_bytes(32), i + 1, now, now, now)
                                                                    for i in range(n)))
    cat.close()
    d = DaemonProc(station, work / "cat.log")
    t = time.monotonic()
    d.start()
    startup = time.monotonic() - t
    try:
        t = time.monotonic()
        s = d.status()
        status_s = time.monotonic() - t
        assert s["clips"]["archived"] == n
        t = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python = time.monotonic() - t
    finally:
        d.stop()
    row(f"catalog of {n} clips: daemon start-up", f"{startup:.2f} s", "process start to running (status polled)", "")
    row(f"catalog of {n} clips: status --json", f"{status_s:.2f} s", f"a new process; bare python start {python:.2f} s", "")


def save_last_run(marks: list[tuple[str, int]], quick: bool) -> None:
    """bench/last-run.json keeps each section's newest rows: a run of some
    sections (``--only``) replaces theirs and leaves the others' as they were."""
    path = ROOT / "bench" / "last-run.json"
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):  # the older format: one list of the last run's rows, sections unknown
        kept = {"unsectioned": {"rows": kept}} if isinstance(kept, list) else {}
    when = time.strftime("%Y-%m-%d %H:%M:%S %z")
    for (section, start), (_next, end) in itertools.pairwise(marks):
        if section and end > start:
            kept[section] = {"when": when, "quick": quick, "load": round(os.getloadavg()[0], 1),
                             "rows": ROWS[start:end]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(kept.items())), ensure_ascii=False, indent=1) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, one round (a smoke test)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="ingest,parallel,forward,daemon,catalog,small,slots,verify,one",
                    help="comma-separated sections to run (and: casefile; history, a year's history beside an empty "
                         "station, not in the default set: it builds 250 000 clips)")
    ap.add_argument("--history", type=Path, help="with --only history (or slots, one): the config of a station bench/history.py "
                                                 "built before, measured instead of building one")
    a = ap.parse_args()
    only = set(a.only.split(","))
    q = a.quick
    rounds = 1 if q else a.rounds
    work = Path(tempfile.mkdtemp(prefix="dockgate-bench-", dir="/work" if os.path.isdir("/work") else None))
    print(f"dockgate benchmark, {rounds} interleaved round(s), medians; ratio = dockgate's speed / the other's")
    print(f"  {'what':<58} {'ratio':>16}  {'goal':<14} context")
    #: which section wrote which rows (ROWS[start:end]), for bench/last-run.json
    marks: list[tuple[str, int]] = []

    def mark(section: str | None) -> None:
        marks.append((section or "", len(ROWS)))

    try:
        if "ingest" in only:
            mark("ingest")
            bench_ingest(work, rounds, big=(128 if q else 1024) * MiB, small_n=20 if q else 200, small_size=5 * MiB)
        if "parallel" in only:
            mark("parallel")
            bench_parallel(work, rounds, size=(32 if q else 256) * MiB)
        if "forward" in only:
            mark("forward")
            bench_forward(work, rounds, clips=4 if q else 8, size=(8 if q else 32) * MiB)
        if "daemon" in only:
            mark("daemon")
            bench_daemon(work, recorders=2 if q else 4, clips=3 if q else 10, size=(4 if q else 20) * MiB,
                         big=(64 if q else 1024) * MiB)
        if "catalog" in only:
            mark("catalog")
            bench_catalog(work, 2000 if q else 100_000)
        small = None
        if "small" in only:
            mark("small")
            small = scale.bench_small(work, row, 2000 if q else 20_000)
        if "slots" in only:
            mark("slots")
            scale.bench_slots(work, row, slots=25, clips=2 if q else 4, size=(16 if q else 64) * 1_000_000,
                              rate=35_000_000)
            if a.history:  # issue 30: the goal stands at a year's history too
                scale.bench_slots_year(work, row, a.history, slots=25, clips=2 if q else 4,
                                       size=(16 if q else 64) * 1_000_000, rate=35_000_000)
        if "verify" in only:
            mark("verify")
            scale.bench_verify(work, row, 200 if q else 2000, MiB, rounds, small)
        if "one" in only:
            mark("one")
            scale.bench_one_recorder(work, row, 4, (32 if q else 256) * MiB)
            if a.history:  # issue 30: the goal stands at a year's history too
                scale.bench_one_recorder(work, row, 4, (32 if q else 256) * MiB, history=a.history)
        if "casefile" in only:
            mark("casefile")  # issue 30, case scale: not in the default set (about 15 minutes)
            from bench.casefile import bench_casefile

            bench_casefile(work, row, q)
        if "history" in only:
            mark("history")
            from bench.yearbench import bench_history

            bench_history(work, row, q, rounds, a.history)
    finally:
        mark(None)
        shutil.rmtree(work, ignore_errors=True)
        save_last_run(marks, q)


if __name__ == "__main__":
    main()
