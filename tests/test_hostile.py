"""Hostile recorder volumes, end to end: whatever a recorder holds, nothing
outside its volume is read, nothing that is not a regular file is opened,
every odd case gets a clear event, and the daemon keeps serving other slots."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from drivers.sim.station import write_station
from tests.helpers import DaemonProc, archive_hashes, dockgate, sha256_file

pytestmark = pytest.mark.e2e


def events(station: Path) -> list[dict]:
    return [json.loads(x) for x in dockgate("events", "-c", str(station), "--json").stdout.splitlines()]


def recorder(root: Path, serial: str, rate: int = 0) -> Path:
    (root / "storage").mkdir(parents=True)
    (root / "device.toml").write_text(f'serial = "{serial}"\nofficer = "054321"\nprotocol = "ums"\n'
                                      f'link_rate = {rate}\n')
    return root / "storage"


def test_hostile_volume(tmp_path: Path) -> None:
    secret = tmp_path / "station-secret.txt"
    secret.write_bytes(b"SECRET-OUTSIDE-THE-VOLUME")
    (tmp_path / "outside-dir").mkdir()
    (tmp_path / "outside-dir" / "x.mp4").write_bytes(b"SECRET-IN-A-DIRECTORY-OUTSIDE")
    vol = recorder(tmp_path / "evil", "EVIL0001")
    (vol / "DCIM").mkdir()
    good = vol / "DCIM" / "good.MP4"
    good.write_bytes(os.urandom(300_000))
    (vol / "DCIM" / "escape.MP4").symlink_to(secret)                  # symlink to a file outside
    (vol / "DCIM" / "etc").symlink_to(tmp_path / "outside-dir")        # symlink to a directory outside
    (vol / "DCIM" / "abs.MP4").symlink_to("/etc/passwd")              # absolute symlink
    (vol / "DCIM" / "dotdot.MP4").symlink_to("../../station-secret.txt")
    os.mkfifo(vol / "DCIM" / "pipe.MP4")                              # a FIFO: opening it would hang
    os.mknod(vol / "DCIM" / "tty.MP4", 0o600 | stat.S_IFCHR, os.makedev(5, 0))  # a device node (/dev/tty)
    with open(os.path.join(os.fsencode(vol / "DCIM"), "执法记录_现场.MP4".encode("gbk")), "wb") as f:
        f.write(os.urandom(5000))                                      # non-UTF-8 (GBK) name
    long_name = vol / "DCIM" / ("很长的文件名" * 13 + ".MP4")            # 238 bytes in UTF-8
    long_name.write_bytes(os.urandom(7000))
    (vol / "DCIM" / "empty.MP4").write_bytes(b"")                      # zero bytes
    (vol / "DCIM" / "same-as-good.MP4").write_bytes(good.read_bytes())  # the same content, two names
    old = vol / "DCIM" / "1970.MP4"
    old.write_bytes(os.urandom(3000))
    os.utime(old, (86400, 86400))                                       # absurd dates
    future = vol / "DCIM" / "2100.MP4"
    future.write_bytes(os.urandom(3000))
    os.utime(future, (4102444800, 4102444800))
    growing = vol / "DCIM" / "still-recording.MP4"                      # grows during the copy
    growing.write_bytes(os.urandom(200_000))
    (vol / "device.toml").parent  # noqa: B018
    text = (tmp_path / "evil" / "device.toml").read_text().replace("link_rate = 0", "link_rate = 400000")
    (tmp_path / "evil" / "device.toml").write_text(text)

    other = recorder(tmp_path / "other", "OTHER001")
    (other / "a.MP4").write_bytes(os.urandom(100_000))

    station = write_station(tmp_path / "st", reserve_bytes=0)
    stop = threading.Event()

    def keep_recording() -> None:
        while not stop.is_set():
            with open(growing, "ab") as f:
                f.write(os.urandom(1000))
            time.sleep(0.02)

    writer = threading.Thread(target=keep_recording, daemon=True)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        writer.start()
        dockgate("sim", "attach", str(tmp_path / "evil"), "-c", str(station), "--slot", "1")
        dockgate("sim", "attach", str(tmp_path / "other"), "-c", str(station), "--slot", "2")
        s = d.wait_for(lambda s: all(x["state"] == "done" for x in s["slots"] if x["slot"] in (1, 2))
                       and s["queue"]["clips"] == 0, timeout=120, what="both slots done")
    finally:
        stop.set()
        d.stop()
    archive = tmp_path / "st" / "archive"
    held = archive_hashes(archive)
    everything = b"".join(p.read_bytes() for p in archive.rglob("*") if p.is_file())
    assert b"SECRET" not in everything and b"root:" not in everything  # nothing outside was read
    assert sha256_file(other / "a.MP4") in held                         # the other slot was served
    for p in (good, long_name, old, future, vol / "DCIM" / "empty.MP4"):
        assert sha256_file(p) in held, p.name
    assert held[sha256_file(good)] == 1 and s["sightings"] >= 1         # same content: once, plus a sighting
    gbk = [h for h in held if h == sha256_file(Path(os.fsdecode(os.path.join(
        os.fsencode(vol / "DCIM"), "执法记录_现场.MP4".encode("gbk")))))]
    assert gbk
    ev = events(station)
    skipped = {e["data"]["path"]: e["data"]["why"] for e in ev if e["type"] == "skipped_entry" and "path" in e["data"]}
    for name in ("escape.MP4", "etc", "abs.MP4", "dotdot.MP4"):
        assert "symlink" in skipped[f"DCIM/{name}"]
    assert "fifo" in skipped["DCIM/pipe.MP4"] and "character device" in skipped["DCIM/tty.MP4"]
    interrupted = [e for e in ev if e["type"] == "clip_interrupted"]
    assert any("still-recording" in e["data"]["path"] for e in interrupted)
    implausible = {e["data"]["path"] for e in ev if e["type"] == "implausible_time"}
    assert {"DCIM/1970.MP4", "DCIM/2100.MP4"} <= implausible
    assert dockgate("verify", "-c", str(station)).returncode == 0


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_hundred_thousand_files_bounded_memory_no_stall(tmp_path: Path) -> None:
    vol = recorder(tmp_path / "many", "MANY0001")
    for d in range(100):
        sub = vol / "DCIM" / f"{d:03d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            (sub / f"{i:04d}.JPG").write_bytes(b"%d-%d" % (d, i))
    other = recorder(tmp_path / "other", "OTHER002")
    (other / "b.MP4").write_bytes(os.urandom(200_000))
    station = write_station(tmp_path / "st", reserve_bytes=0)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    assert d.proc is not None
    try:
        dockgate("sim", "attach", str(tmp_path / "many"), "-c", str(station), "--slot", "1")
        peak = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            peak = max(peak, _rss_kib(d.proc.pid))
            s = d.status()
            slot1 = next(x for x in s["slots"] if x["slot"] == 1)
            if slot1["state"] == "pulling" and slot1["clips_done"] > 50:
                break
            time.sleep(0.2)
        assert slot1["clips_total"] == 100_000
        # the big recorder is still being pulled: another slot is served meanwhile
        dockgate("sim", "attach", str(tmp_path / "other"), "-c", str(station), "--slot", "2")
        s = d.wait_for(lambda s: any(x["slot"] == 2 and x["state"] == "done" for x in s["slots"]), timeout=60,
                       what="slot 2 served while slot 1 has 100 000 files")
        peak = max(peak, _rss_kib(d.proc.pid))
        assert next(x for x in s["slots"] if x["slot"] == 1)["state"] == "pulling"
    finally:
        d.stop()
    assert sha256_file(other / "b.MP4") in archive_hashes(tmp_path / "st" / "archive")
    print(f"peak RSS {peak} KiB with 100 000 files listed and discovered")
    assert peak < 200 * 1024, f"peak RSS {peak} KiB while listing 100 000 files"
