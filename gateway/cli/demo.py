"""`dockgate demo`: a whole simulated station, start to verified archive.

Three recorders are docked one after another into a daemon running in this
process; progress is shown live; at the end every source clip is hashed
independently and looked up in the archive (each exactly once)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

from drivers.sim.dock import attach
from drivers.sim.make import make_recorder
from gateway.archive.directio import hash_file
from gateway.cli.simstation import write_station
from gateway.cli.status import bar
from gateway.config import load_config
from gateway.evidence.manifest import is_evidence_metadata
from gateway.process import logsetup
from gateway.process.daemon import Daemon

OFFICERS = [("SIM10001", "010231", "一分局巡警大队"), ("SIM1002", "010472", "一分局交警中队"),
            ("SIM10003", "010988", "一分局治安大队"), ("SIM10004", "011305", "一分局刑侦中队")]
#: what the demo's recorders speak, in turn: real protocol families (login, identity, clock, the
#: switch to storage and back on the same slot), and plain storage
PROTOCOLS = ("bc-text", "zfy-ctrl", "ums", "zzx-json")


def archive_media(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
            and not is_evidence_metadata(str(p.relative_to(root)))]


def run_demo(workdir: Path, *, recorders: int = 3, clips: int = 4, size: int = 4 << 20) -> int:
    if workdir.exists() and any(workdir.iterdir()):
        print(f"dockgate demo: {workdir} exists and is not empty; pass --workdir", file=sys.stderr)
        return 2
    recorders = max(1, min(recorders, len(OFFICERS)))
    cfg_path = write_station(workdir, station_id="demo-station")
    logsetup.setup("INFO", file=str(workdir / "dockgate.log"))
    cfg = load_config(cfg_path)
    print(f"dockgate demo in {workdir.resolve()}")
    recs = []
    for i in range(recorders):
        serial, officer, unit = OFFICERS[i]
        folder = workdir / "recorders" / serial
        # ~25 MB/s: a USB 2 recorder, slow enough to watch
        protocol = PROTOCOLS[i % len(PROTOCOLS)]
        make_recorder(folder, clips=clips, size=size, serial=serial, officer=officer, unit=unit,
                      protocol=protocol, link_rate=25_000_000, clock_offset_s=37.0 * (i + 1))
        recs.append(folder)
        print(f"  made recorder {serial} (officer {officer}, {protocol}): {clips} clips x {size / 2**20:.1f} MiB")
    started = time.monotonic()
    result = asyncio.run(_drive(cfg_path, recs, clips))
    elapsed = time.monotonic() - started
    if result != 0:
        print(f"demo failed; see {workdir / 'dockgate.log'}")
        return result
    # independent check: our own hashing of every source clip against the archive
    sources = [p for r in recs for p in (r / "storage").rglob("*") if p.is_file()]
    want = Counter(hash_file(p) for p in sources)
    media = archive_media(cfg.archive.path)
    have = Counter(hash_file(p) for p in media)
    missing = set(want) - set(have)
    doubled = [h for h, n in have.items() if n > 1]
    total = sum(p.stat().st_size for p in sources)
    print(f"\n{len(sources)} clips, {total / 1e6:.1f} MB from {len(recs)} recorders in {elapsed:.1f}s")
    if missing or doubled:
        print(f"ARCHIVE CHECK FAILED: {len(missing)} missing, {len(doubled)} stored twice")
        return 1
    print(f"archive check: every clip is in the archive exactly once ({len(media)} media files, "
          f"SHA-256 checked independently)")
    from gateway.archive.directory import DirectoryArchive
    from gateway.evidence.signing import load_public
    from gateway.evidence.verify import verify_archive

    report = verify_archive(DirectoryArchive(cfg.archive.path), [load_public(cfg.public_key_file)])
    if not report.ok:
        print(f"VERIFY FAILED: {report.failures[0]}")
        return 1
    print(f"signatures: {report.summary()} verified against the station key")
    print(f"""
where to look:
  archive   {cfg.archive.path}   (officer/date/serial/clip + signed .manifest.json; custody/)
  catalog   {cfg.catalog_path}
  log       {workdir / 'dockgate.log'}
  config    {cfg_path}
try:
  dockgate status -c {cfg_path}
  dockgate verify --archive {cfg.archive.path} --pubkey {cfg.public_key_file}
  dockgate run -c {cfg_path}      # then, in another terminal:
  dockgate sim attach {recs[0]} -c {cfg_path} --slot 1""")
    return 0


async def _drive(cfg_path: Path, recs: list[Path], clips: int) -> int:
    cfg = load_config(cfg_path)
    daemon = Daemon(cfg)
    ready = asyncio.Event()
    runner = asyncio.create_task(daemon.run(on_ready=ready.set))
    await asyncio.wait({runner, asyncio.create_task(ready.wait())},
                       return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        return runner.result() or 1
    tty = sys.stdout.isatty()
    try:
        for slot, folder in enumerate(recs, start=1):
            assert cfg.detect.sim_dir is not None
            attach(cfg.detect.sim_dir, slot, folder)
            print(f"\ndocked {folder.name} in slot {slot}")
            st = daemon.state.slots[slot]
            last = 0.0
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                done = st.state in ("done", "error", "foreign")
                if st.state == "idle":
                    continue  # not detected yet
                if tty or time.monotonic() - last > 1.0 or done:
                    line = (f"  slot {slot} {st.state:<11} {bar(st.bytes_done, st.bytes_total)} "
                            f"{st.clips_done}/{st.clips_total} clips")
                    print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
                    last = time.monotonic()
                if done:
                    break
            if tty:
                print()
            if st.state != "done":
                print(f"  slot {slot}: {st.state}: {st.message}")
                return 1
        print("\nforwarding to the archive ...")
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            counts = daemon.catalog.counts()
            q, _ = daemon.catalog.queue()
            if q == 0:
                break
            await asyncio.sleep(0.2)
        await daemon.flush_custody()
        counts = daemon.catalog.counts()
        print("catalog: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        return 0 if counts["quarantined"] == 0 and daemon.catalog.queue()[0] == 0 else 1
    finally:
        daemon.stopping.set()
        await runner
