"""Family F end to end through the real daemon and the real adb: a ZZX
recorder reached through a simulated adbd is broadcast its port, forwarded,
identified, switched and archived; one that is recording refuses the switch
and the slot and the event say why, with nothing pulled."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import load_config
from tests.helpers import DaemonProc, archive_hashes, attach, events, hand_made_recorder, source_hashes

pytestmark = pytest.mark.e2e


@pytest.fixture
def adb_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private adb server the daemon's adb client starts (inherited
    environment); fails, never skips, without the adb package."""
    adb = shutil.which("adb")
    assert adb is not None, "the adb package is missing (scripts/setup.sh dev installs it)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", port)
    yield port
    subprocess.run([adb, "kill-server"], capture_output=True, timeout=20, check=False)


def zzx(root: Path, serial: str, extra: str = "") -> Path:
    storage = hand_made_recorder(root, serial, officer="054321", protocol="zzx-json",
                                 extra=f"adb = true\nstorage_settle_s = 0.3\n{extra}")
    day = storage / "DCIM" / "20240305"
    day.mkdir(parents=True)
    for i in range(2):
        (day / f"VID_{i:04d}.MP4").write_bytes(os.urandom(30_000 + i))
    return root


def test_a_zzx_recorder_is_reached_through_adb_and_archived(adb_server: str, station: Path, daemon: DaemonProc,
                                                           tmp_path: Path) -> None:
    folder = zzx(tmp_path / "rec", "ZXA00001")
    daemon.start()
    attach(station, folder, 1)
    s = daemon.wait_for(lambda s: s["clips"]["archived"] == 2 and s["queue"]["clips"] == 0, timeout=60,
                        what="2 clips archived through adb")
    assert archive_hashes(load_config(station).archive.path) == source_hashes(folder / "storage")
    (dock,) = [d for d in s["recent_docks"] if d["slot"] == 1]
    assert (dock["serial"], dock["officer"], dock["idcode"]) == ("ZXA00001", "054321", "ABCDE")
    assert not events(station, "device_error")


def test_a_recording_zzx_recorder_refuses_storage_and_the_station_says_why(
        adb_server: str, station: Path, daemon: DaemonProc, tmp_path: Path) -> None:
    folder = zzx(tmp_path / "rec", "ZXB00001", "recording = true\n")
    daemon.start()
    attach(station, folder, 1)
    s = daemon.wait_for(lambda s: any(x["slot"] == 1 and x["state"] == "error" for x in s["slots"]), timeout=60,
                        what="storage refused")
    slot = next(x for x in s["slots"] if x["slot"] == 1)
    assert "cut time" in slot["message"]
    (refused,) = events(station, "device_error")
    assert refused["data"]["reason"] == "storage_refused" and "video cut" in refused["data"]["error"]
    assert sum(s["clips"].values()) == 0
