"""Benchmarks of scale (issue 17): many small clips, many slots at link
speed, verify, one recorder end to end. Each runs the real daemon (or the
real CLI) and its baseline in the same run; ``bench/run.py`` calls them."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, dockgate

MiB = 1 << 20
Row = Callable[..., None]


def vm(pid: int, field: str) -> int:
    """A field of /proc/PID/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _sh(cmd: str) -> float:
    t = time.perf_counter()
    subprocess.run(["sh", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def warm(paths: list[Path]) -> None:
    """Read *paths* once: every contender starts with its source in the page cache."""
    buf = bytearray(8 * MiB)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def _events(station: Path, since: int = 0) -> list[dict[str, Any]]:
    out = dockgate("events", "-c", str(station), "--json", "--since", str(since), "--limit", "100000000").stdout
    return [json.loads(x) for x in out.splitlines()]


def _station(work: Path, name: str, slots: int, extra: str = "") -> Path:
    station = write_station(work / name, slots=slots, reserve_bytes=0)
    if extra:
        station.write_text(station.read_text() + extra)
    return station


def _media(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "storage").rglob("*") if p.is_file())


def _baseline(work: Path, recs: list[Path]) -> float:
    """cp to a staging folder, sha256sum, cp to an archive folder, sync: what a
    script would do, per recorder (their file names collide)."""
    steps = []
    for r in recs:
        s2, a2 = work / "base-s" / r.name, work / "base-a" / r.name
        s2.mkdir(parents=True)
        a2.mkdir(parents=True)
        steps.append(f"find '{r / 'storage'}' -type f -exec cp -t '{s2}/' {{}} + && "
                     f"find '{s2}' -type f -exec sha256sum {{}} + > /dev/null && cp -r '{s2}/.' '{a2}/'")
    warm([p for r in recs for p in _media(r)])
    os.sync()
    el = _sh(" && ".join(steps) + " && sync")
    shutil.rmtree(work / "base-s")
    shutil.rmtree(work / "base-a")
    return el


def _dock_all(d: DaemonProc, station: Path, recs: list[Path], clips: int, timeout: float,
              at_once: bool = False, since: int = 0, archived: int = 0) -> float:
    """Dock *recs*; seconds from the first dock to the last clip archived, by
    the daemon's own event times. The CLI is polled once a second only to know
    when to look: each `dockgate status` is a new Python process of about
    0.3 CPU-seconds, and polling every 0.2 s took most of a core from the
    daemon on this 2-core machine (the baselines run unobserved). Dirty
    pages are written out first, as before each baseline: the recorders were
    just made, and their writeback must not land on the daemon's clock.
    *at_once*: one `sim attach` docks them all (else one call each, about
    0.3 CPU-s apiece: 25 docks spread over seconds, as a script would).
    *since*, *archived*: the station's newest event and its archived clips
    before (a station with history)."""
    os.sync()
    t = time.time()
    if at_once:
        dockgate("sim", "attach", *map(str, recs), "-c", str(station), "--slot", "1")
    else:  # a `dockgate` process each, as a script would (the test bed's dockgate() runs `sim` in this process)
        for slot, r in enumerate(recs, start=1):
            subprocess.run([sys.executable, "-m", "gateway.cli.main", "sim", "attach", str(r), "-c", str(station),
                            "--slot", str(slot)], check=True, capture_output=True)
    d.wait_for(lambda s: s["clips"]["archived"] >= archived + clips and s["queue"]["clips"] == 0, timeout=timeout,
               interval=1.0, what="all archived")
    return max(e["ts"] for e in _events(station, since) if e["type"] == "clip_archived") - t


def cpu_s(pid: int) -> float:
    """CPU-seconds (user + system) process *pid* has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OneDock(NamedTuple):
    """One recorder docked at a station, and its baseline on the same files."""

    station: Path
    #: seconds from the plug to the last clip archived
    el: float
    #: cp + sha256sum + cp + sync of the same files, seconds
    base: float
    #: the daemon's CPU-seconds over the dock
    cpu: float
    #: seconds from the plug to its docked event, and to its last clip pulled
    docked: float
    pulled: float


def _newest(station: Path) -> tuple[int, int]:
    """A station's newest event and its archived clips: what a run on a station with history starts from."""
    newest = dockgate("events", "-c", str(station), "--json", "--limit", "1").stdout
    since = int(json.loads(newest.splitlines()[0])["seq"]) if newest.strip() else 0
    return since, int(json.loads(dockgate("status", "-c", str(station), "--json").stdout)["clips"]["archived"])


def _one_recorder(work: Path, name: str, serial: str, clips: int, size: int,
                  station: Path | None = None) -> OneDock:
    """One recorder of *clips* x *size* docked at a fresh station, or at *station*
    (one with history): (station, dock -> all archived in s, cp + sha256sum + cp +
    sync of the same files in s). The clock starts at the plug: the `sim attach`
    runs in this process, as no officer's dock starts a Python process (one of
    its own costs 0.2 s)."""
    station = station or _station(work, name, slots=2)
    rec = work / f"R{name.upper()}"
    dockgate("sim", "make", str(rec), "--clips", str(clips), "--size", str(size), "--serial", serial)
    warm(_media(rec))
    d = DaemonProc(station, work / f"{name}.log").start()
    try:
        since, archived = _newest(station)
        cpu = cpu_s(d.proc.pid)
        el = _dock_all(d, station, [rec], clips, timeout=1800, at_once=True, since=since, archived=archived)
        cpu = cpu_s(d.proc.pid) - cpu  # with up to a second of idle polling after the last clip is in
    finally:
        d.stop()
        dockgate("sim", "detach", "-c", str(station), "--slot", "1")  # the next run docks there again
    events = _events(station, since)
    plug = max(e["ts"] for e in events if e["type"] == "clip_archived") - el
    return OneDock(station, el, _baseline(work, [rec]), cpu,
                   next(e["ts"] for e in events if e["type"] == "docked") - plug,
                   max(e["ts"] for e in events if e["type"] == "pulled") - plug)


def bench_small(work: Path, row: Row, n: int, size: int = 4096) -> Path:
    """One recorder with *n* small files: dock -> all archived; returns the station (verify reuses it)."""
    station, el, base, *_ = _one_recorder(work, "small", "SMALL001", n, size)
    row(f"{n} clips of {size // 1024} KiB, one recorder: dock -> all archived", f"{el:.1f} s",
        f"{el / n * 1000:.2f} ms per clip, all of it counted as per-clip overhead; cp+sha256sum+cp+sync "
        f"{base:.1f} s ({base / el:.2f}x)", "< 60 s, < 3 ms")
    return station


def bench_slots(work: Path, row: Row, slots: int, clips: int, size: int, rate: int) -> None:
    """*slots* recorders at *rate* bytes/s each, docked at once: each slot's
    pull time against what its link allows, and the daemon's peak RSS; then
    the same with one upload allowed while they pull (the rule before
    ``pause_at_pulling``), side by side."""
    link_s = clips * size / rate
    what = f"{slots} slots at {rate / 1e6:.0f} MB/s, {clips} x {size / 1e6:.0f} MB each: pull time / link time"
    ratios, el, hwm = _slots_run(work, "slots", slots, clips, size, rate, "")
    total = slots * clips * size
    row(what, f"{max(ratios) * 100:.0f} % worst", f"median {statistics.median(ratios) * 100:.0f} %; link allows "
        f"{link_s:.1f} s per slot; aggregate pull {total / (link_s * statistics.median(ratios)) / 1e6:.0f} MB/s; "
        f"all archived after {el:.1f} s", "<= 115 %")
    row(f"{slots} slots at {rate / 1e6:.0f} MB/s: daemon peak RSS", f"{hwm / 1024:.0f} MiB",
        "VmHWM of the whole daemon", "< 128 MiB")
    ratios, el, _ = _slots_run(work, "slots-upload", slots, clips, size, rate,
                               f"\n[forward]\nwhile_pulling = 1\npause_at_pulling = {slots + 1}\n")
    row("  the same, one upload running while they pull", f"{max(ratios) * 100:.0f} % worst",
        f"median {statistics.median(ratios) * 100:.0f} %; all archived after {el:.1f} s")
    ratios, el, hwm = _slots_run(work, "slots-at-once", slots, clips, size, rate, "", at_once=True)
    row(f"  the same, all {slots} docked at one instant", f"{max(ratios) * 100:.0f} % worst",
        f"median {statistics.median(ratios) * 100:.0f} %; all archived after {el:.1f} s; peak RSS "
        f"{hwm / 1024:.0f} MiB; one `sim attach` for all (above: one per recorder, as a script would)")


def bench_slots_year(work: Path, row: Row, config: Path, slots: int, clips: int, size: int, rate: int) -> None:
    """The slots row on a station with a year's history (issue 30: the goal stands at a year)."""
    ratios, el, hwm = _slots_run(work, "slots-year", slots, clips, size, rate, "", station=config)
    row(f"  the same at a year's history ({config.parent.parent.name})", f"{max(ratios) * 100:.0f} % worst",
        f"median {statistics.median(ratios) * 100:.0f} %; all archived after {el:.1f} s; peak RSS "
        f"{hwm / 1024:.0f} MiB", "<= 115 %")


def _slots_run(work: Path, name: str, slots: int, clips: int, size: int, rate: int,
               extra: str, at_once: bool = False, station: Path | None = None) -> tuple[list[float], float, int]:
    """(each slot's pull time / link time, dock -> all archived in s, VmHWM in KiB); on a fresh
    station, or on *station* (one with history: only what happens after the docks counts)."""
    fresh = station is None
    station = station or _station(work, name, slots=slots, extra=extra)
    recs = []
    for i in range(slots):
        r = work / f"{name}-L{i:02d}"
        dockgate("sim", "make", str(r), "--clips", str(clips), "--size", str(size), "--serial", f"LINK{i:04d}",
                 "--link-rate", str(rate))
        recs.append(r)
    warm([p for r in recs for p in _media(r)])
    d = DaemonProc(station, work / f"{name}.log").start()
    assert d.proc is not None
    try:
        since, archived = _newest(station)
        el = _dock_all(d, station, recs, slots * clips, timeout=1800, at_once=at_once, since=since,
                       archived=archived)
        hwm = vm(d.proc.pid, "VmHWM")
        evs = _events(station, since)
    finally:
        d.stop()
        for slot in range(1, slots + 1):  # a station with history is docked at again by the next run
            dockgate("sim", "detach", "-c", str(station), "--slot", str(slot))
    for r in recs:  # 6.4 GB of recorders, and as much again staged and archived: the next run needs the room
        shutil.rmtree(r)
    if fresh:
        shutil.rmtree(work / name)
    link_s = clips * size / rate
    ratios = []
    for slot in range(1, slots + 1):
        # from the dock, as the officer waits (identify and unlock are part of the wait), not from `identified`
        start = min(e["ts"] for e in evs if e["slot"] == slot and e["type"] == "docked")
        end = max(e["ts"] for e in evs if e["slot"] == slot and e["type"] == "pulled")
        ratios.append((end - start) / link_s)
    return ratios, el, hwm


def _verify_s(station: Path) -> float:
    t = time.perf_counter()
    r = subprocess.run([str(Path(sys.executable).parent / "dockgate"), "verify", "-c", str(station)],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    el = time.perf_counter() - t
    if r.returncode != 0:
        raise AssertionError(f"verify failed: {r.stderr[-2000:]}")
    return el


def bench_verify(work: Path, row: Row, n: int, size: int, rounds: int, small: Path | None) -> None:
    """`dockgate verify` (signatures, custody, completeness, every media
    hash) against `sha256sum -c` over the same media files."""
    station = _station(work, "verify", slots=2)
    rec = work / "RVERIFY"
    dockgate("sim", "make", str(rec), "--clips", str(n), "--size", str(size), "--serial", "VERIFY01")
    d = DaemonProc(station, work / "verify.log").start()
    try:
        _dock_all(d, station, [rec], n, timeout=1800)
    finally:
        d.stop()
    archive = station.parent / "archive"
    media = [p for p in archive.rglob("*.MP4") if p.is_file()]
    sums = work / "media.sha256"
    # one sha256sum run writes the list; `-c` reads it back
    subprocess.run(["sh", "-c", f"find '{archive}' -name '*.MP4' -type f -exec sha256sum {{}} + > '{sums}'"],
                   check=True)
    ours, theirs = [], []
    for _ in range(rounds):
        warm(media)
        ours.append(_verify_s(station))
        warm(media)
        theirs.append(_sh(f"sha256sum -c --quiet '{sums}'"))
    total = n * size
    o, t = statistics.median(ours), statistics.median(theirs)
    row(f"verify {n} archived clips of {size // MiB} MiB vs sha256sum -c", f"{t / o:.2f}x",
        f"dockgate verify {o:.1f} s ({total / o / 1e6:.0f} MB/s, signatures, custody and completeness too), "
        f"sha256sum -c {t:.1f} s", ">= 0.8x")
    if small is not None:
        el = _verify_s(small)
        clips = sum(1 for _ in (small.parent / "archive").rglob("*.MP4"))
        row(f"verify {clips} archived small clips", f"{el:.1f} s", f"{el / clips * 1000:.2f} ms per clip",
            "< 30 s")


def bench_one_recorder(work: Path, row: Row, clips: int, size: int, rounds: int = 5,
                       history: Path | None = None) -> None:
    """One recorder, a few large clips, directory archive with read-back: *rounds*
    alternated rounds (a fresh station and recorder each, or each recorder docked
    at the station with a year's *history*), the best of each side as the issue
    measures it, and the median of the rounds' own ratios beside it."""
    docks = []
    for i in range(rounds):
        # a serial of its own each round: at the year station a recorder docked before is known
        docks.append(_one_recorder(work, f"one{i}", f"ONEREC{i:02d}", clips, size, station=history))
        if history is None:
            shutil.rmtree(work / f"one{i}", ignore_errors=True)
        shutil.rmtree(work / f"RONE{i}", ignore_errors=True)
    total = clips * size
    els, bases = [d.el for d in docks], [d.base for d in docks]
    ratios = sorted(d.base / d.el for d in docks)
    at = f" at a year's history ({history.parent.parent.name})" if history else ""
    row(f"dock -> archived, 1 recorder x {clips} x {size // MiB} MiB, directory archive, read-back{at}",
        f"{min(bases) / min(els):.2f}x", f"best of {rounds} each: dockgate {total / min(els) / 1e6:.0f} MB/s from "
        f"the plug; cp+sha256sum+cp+sync {total / min(bases) / 1e6:.0f} MB/s; median of the rounds' ratios "
        f"{statistics.median(ratios):.2f}x (each {', '.join(f'{r:.2f}' for r in ratios)})", ">= 2x")
    best = min(docks, key=lambda d: d.el)
    row("  where the best dock's time went", f"{best.el:.2f} s", f"plug -> docked {best.docked:.2f} s (the "
        f"simulator's detector polls every 0.25 s), last clip pulled at {best.pulled:.2f} s, archived at "
        f"{best.el:.2f} s; the daemon used {best.cpu:.2f} CPU-s of {os.cpu_count()} cores; the baseline took "
        f"{min(bases):.2f} s")
