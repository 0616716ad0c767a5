"""Hostile recorder volumes, end to end: whatever a recorder holds, nothing
outside its volume is read, nothing that is not a regular file is opened,
every odd case gets a clear event, and the daemon keeps serving other slots."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.simstation import write_station
from tests.helpers import (
    DaemonProc,
    archive_hashes,
    attach,
    dockgate,
    events,
    hand_made_recorder,
    sha256_file,
    wait_until,
)

pytestmark = pytest.mark.e2e


GBK_NAME = "执法记录_现场.MP4".encode("gbk")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One station serves an evil recorder in slot 1 and an ordinary one in
    slot 2; the tests below each check one promise about what happened."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    secret = tmp_path / "station-secret.txt"
    secret.write_bytes(b"SECRET-OUTSIDE-THE-VOLUME")
    (tmp_path / "outside-dir").mkdir()
    (tmp_path / "outside-dir" / "x.mp4").write_bytes(b"SECRET-IN-A-DIRECTORY-OUTSIDE")
    vol = hand_made_recorder(tmp_path / "evil", "EVIL0001", link_rate=400_000)
    dcim = vol / "DCIM"
    dcim.mkdir()
    (dcim / "good.MP4").write_bytes(os.urandom(300_000))
    (dcim / "escape.MP4").symlink_to(secret)                          # symlink to a file outside
    (dcim / "etc").symlink_to(tmp_path / "outside-dir")                # symlink to a directory outside
    (dcim / "abs.MP4").symlink_to("/etc/passwd")                      # absolute symlink
    (dcim / "dotdot.MP4").symlink_to("../../station-secret.txt")
    os.mkfifo(dcim / "pipe.MP4")                                      # a FIFO: opening it would hang
    os.mknod(dcim / "tty.MP4", 0o600 | stat.S_IFCHR, os.makedev(5, 0))  # a device node (/dev/tty)
    with open(os.path.join(os.fsencode(dcim), GBK_NAME), "wb") as f:
        f.write(os.urandom(5000))                                      # non-UTF-8 (GBK) name
    (dcim / ("很长的文件名" * 13 + ".MP4")).write_bytes(os.urandom(7000))  # 238 bytes in UTF-8
    (dcim / "empty.MP4").write_bytes(b"")                              # zero bytes
    (dcim / "same-as-good.MP4").write_bytes((dcim / "good.MP4").read_bytes())  # the same content, two names
    for name, when in (("1970.MP4", 86400), ("2100.MP4", 4102444800)):  # absurd dates
        (dcim / name).write_bytes(os.urandom(3000))
        os.utime(dcim / name, (when, when))
    growing = dcim / "still-recording.MP4"                              # grows during the copy
    growing.write_bytes(os.urandom(200_000))
    other = hand_made_recorder(tmp_path / "other", "OTHER001")
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
        attach(station, tmp_path / "evil", 1)
        attach(station, tmp_path / "other", 2)
        status = d.wait_for(lambda s: all(x["state"] == "done" for x in s["slots"] if x["slot"] in (1, 2))
                            and s["queue"]["clips"] == 0, timeout=120, what="both slots done")
    finally:
        stop.set()
        d.stop()
    archive = tmp_path / "st" / "archive"
    return {"station": station, "vol": vol, "other": other, "archive": archive, "status": status,
            "held": archive_hashes(archive), "events": events(station)}


def test_nothing_outside_the_volume_is_read(hostile: dict[str, Any]) -> None:
    everything = b"".join(p.read_bytes() for p in hostile["archive"].rglob("*") if p.is_file())
    assert b"SECRET" not in everything and b"root:" not in everything


def test_the_other_slot_is_served(hostile: dict[str, Any]) -> None:
    assert sha256_file(hostile["other"] / "a.MP4") in hostile["held"]


@pytest.mark.parametrize("name", ["good.MP4", "很长的文件名" * 13 + ".MP4", "1970.MP4", "2100.MP4", "empty.MP4"])
def test_every_regular_file_is_archived(hostile: dict[str, Any], name: str) -> None:
    assert sha256_file(hostile["vol"] / "DCIM" / name) in hostile["held"]


def test_a_non_utf8_name_is_archived(hostile: dict[str, Any]) -> None:
    path = Path(os.fsdecode(os.path.join(os.fsencode(hostile["vol"] / "DCIM"), GBK_NAME)))
    assert sha256_file(path) in hostile["held"]


def test_the_same_content_twice_is_stored_once_and_seen_again(hostile: dict[str, Any]) -> None:
    assert hostile["held"][sha256_file(hostile["vol"] / "DCIM" / "good.MP4")] == 1
    assert hostile["status"]["sightings"] >= 1


def skipped(hostile: dict[str, Any]) -> dict[str, str]:
    return {e["data"]["path"]: e["data"]["why"] for e in hostile["events"]
            if e["type"] == "skipped_entry" and "path" in e["data"]}


@pytest.mark.parametrize("name", ["escape.MP4", "etc", "abs.MP4", "dotdot.MP4"])
def test_a_symlink_is_never_followed_and_is_reported(hostile: dict[str, Any], name: str) -> None:
    assert "symlink" in skipped(hostile)[f"DCIM/{name}"]


def test_fifos_and_device_nodes_are_never_opened_and_are_reported(hostile: dict[str, Any]) -> None:
    assert "fifo" in skipped(hostile)["DCIM/pipe.MP4"]
    assert "character device" in skipped(hostile)["DCIM/tty.MP4"]


def test_a_clip_still_growing_is_interrupted_not_looped_on(hostile: dict[str, Any]) -> None:
    interrupted = [e for e in hostile["events"] if e["type"] == "clip_interrupted"]
    assert any("still-recording" in e["data"]["path"] for e in interrupted)


def test_absurd_capture_times_are_flagged(hostile: dict[str, Any]) -> None:
    implausible = {e["data"]["path"] for e in hostile["events"] if e["type"] == "implausible_time"}
    assert {"DCIM/1970.MP4", "DCIM/2100.MP4"} <= implausible


def test_what_was_archived_verifies(hostile: dict[str, Any]) -> None:
    assert dockgate("verify", "-c", str(hostile["station"])).returncode == 0


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_hundred_thousand_files_bounded_memory_no_stall(tmp_path: Path) -> None:
    vol = hand_made_recorder(tmp_path / "many", "MANY0001")
    for d in range(100):
        sub = vol / "DCIM" / f"{d:03d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            (sub / f"{i:04d}.JPG").write_bytes(b"%d-%d" % (d, i))
    other = hand_made_recorder(tmp_path / "other", "OTHER002")
    (other / "b.MP4").write_bytes(os.urandom(200_000))
    station = write_station(tmp_path / "st", reserve_bytes=0)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    assert d.proc is not None
    try:
        attach(station, tmp_path / "many", 1)
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
        attach(station, tmp_path / "other", 2)
        d.wait_for(lambda s: any(x["slot"] == 2 and x["state"] == "done" for x in s["slots"]), timeout=60,
                   what="slot 2 served while slot 1 has 100 000 files")
        # and archived: the clips of a dock done pulling go before those of a dock still pulling
        wait_until(lambda: sha256_file(other / "b.MP4") in archive_hashes(tmp_path / "st" / "archive"), 60,
                   "slot 2's clip archived while slot 1 still pulls")
        peak = max(peak, _rss_kib(d.proc.pid))
        assert next(x for x in d.status()["slots"] if x["slot"] == 1)["state"] == "pulling"
    finally:
        d.stop()
    print(f"peak RSS {peak} KiB with 100 000 files listed and discovered")
    assert peak < 200 * 1024, f"peak RSS {peak} KiB while listing 100 000 files"
