"""The station's own clock (gateway/timesync.py): the kernel's answer read
with adjtimex(2) and judged as timedatectl's NTPSynchronized is; one alarm
while it is not synchronised, however many docks ask; and, end to end through
the real daemon (tests/clock_daemon.py sets what the kernel says), a station
whose clock is not synchronised sets no recorder clock, signs its drift as
unverified and does not apply it, and sets clocks again once synchronised.
The same on a real kernel, in the guest: tests/guest/test_station.py."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import timesync
from gateway.catalog import ClipRow, DockRow
from gateway.cli.simstation import write_station
from gateway.config import load_config
from gateway.evidence.container import ContainerFacts
from gateway.evidence.manifest import build_manifest
from gateway.telemetry.metrics import Metrics
from gateway.timesync import ALARM, CLEARED, StationClock, SyncState, judge
from tests.helpers import DaemonProc, attach, dockgate, events, hand_made_recorder

SYNCED = judge(0, 0x2001, 10_000)
UNSYNCED = judge(timesync.TIME_ERROR, timesync.STA_UNSYNC, timesync.MAXERROR_LIMIT_US)


# -- the kernel's answer ------------------------------------------------------------
def test_synchronised_is_a_maximum_error_below_16_s_as_timedatectl_says() -> None:
    assert SYNCED.synchronised and SYNCED.maxerror_s == 0.01
    assert not UNSYNCED.synchronised and UNSYNCED.maxerror_s == 16.0
    assert "STA_UNSYNC" in UNSYNCED.reason and "TIME_ERROR" in UNSYNCED.reason
    assert not judge(0, 0, 16_000_000).synchronised  # at the kernel's limit, with or without the flag
    # chrony leaving the RTC alone keeps STA_UNSYNC while it disciplines the clock: systemd calls that
    # synchronised, and so does dockgate (else such a station would never set a recorder clock)
    chrony = judge(timesync.TIME_ERROR, timesync.STA_UNSYNC, 250_000)
    assert chrony.synchronised and "STA_UNSYNC" in chrony.reason


def test_the_kernel_is_read_with_adjtimex_and_judged_by_its_maximum_error() -> None:
    assert ctypes.sizeof(timesync._Timex) == 208  # the kernel's struct __kernel_timex on 64-bit
    state = timesync.read_kernel()
    assert state.checked and state.maxerror_s is not None and state.status is not None
    assert state.synchronised == (state.maxerror_s < 16), state
    # the kernel's answer is stable between two reads but for its maximum error's growth
    assert timesync.read_kernel().synchronised == state.synchronised


def test_a_state_that_cannot_be_read_counts_as_unsynchronised(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(_tx: Any) -> int:
        ctypes.set_errno(errno.EPERM)
        return -1

    monkeypatch.setattr(timesync, "_libc_adjtimex", lambda: refused)
    state = timesync.read_kernel()
    assert not state.synchronised and state.maxerror_s is None
    assert "cannot be read" in state.reason and "ProtectClock" in state.reason


# -- one alarm ---------------------------------------------------------------------------
class Emitted(list[tuple[str, dict[str, Any]]]):
    def __call__(self, type_: str, slot: int | None = None, **data: Any) -> str:
        assert slot is None
        self.append((type_, data))
        return str(len(self))


def test_one_alarm_when_it_starts_and_one_when_it_clears_not_one_per_dock() -> None:
    answers = iter([SYNCED, UNSYNCED, UNSYNCED, UNSYNCED, SYNCED, SYNCED, UNSYNCED])
    clock = StationClock(source=lambda: next(answers))
    emit = Emitted()
    seen = [clock.check(emit).synchronised for _ in range(7)]
    assert seen == [True, False, False, False, True, True, False]
    assert [t for t, _ in emit] == [ALARM, CLEARED, ALARM]
    assert emit[0][1]["maxerror_s"] == 16.0 and "not synchronised" in emit[0][1]["reason"]
    assert emit[1][1]["unsynchronised_s"] >= 0
    st = clock.status()
    assert st["alarm"] is True and st["synchronised"] is False and st["required"] is True


def test_an_alarm_that_could_not_be_recorded_is_raised_at_the_next_check() -> None:
    clock = StationClock(source=lambda: UNSYNCED)

    def broken(*_a: Any, **_k: Any) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        clock.check(broken)
    emit = Emitted()
    clock.check(emit)
    clock.check(emit)
    assert [t for t, _ in emit] == [ALARM]


def test_not_required_never_asks_the_kernel_and_never_alarms() -> None:
    def kernel() -> SyncState:
        raise AssertionError("asked")

    clock = StationClock(required=False, source=kernel)
    emit = Emitted()
    state = clock.check(emit)
    assert state.synchronised and not state.checked and emit == []
    assert clock.status()["required"] is False


def test_the_daemons_watch_raises_and_clears_without_a_dock() -> None:
    answers = [UNSYNCED, UNSYNCED, SYNCED]
    clock = StationClock(source=lambda: answers[0] if len(answers) == 1 else answers.pop(0))
    emit = Emitted()

    async def run() -> None:
        task = asyncio.create_task(clock.watch(emit, interval_s=0.01))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert [t for t, _ in emit] == [ALARM, CLEARED]


def test_the_product_checks_and_the_simulated_station_trusts_this_machine(tmp_path: Path) -> None:
    minimal = tmp_path / "minimal.toml"
    minimal.write_text('[station]\nid = "p01"\n[paths]\nstate_dir = "s"\nstaging = "t"\n[archive]\n'
                       'backend = "directory"\npath = "/mnt/a"\n[evidence]\nsigning_key_file = "k"\n')
    assert load_config(minimal).station.require_time_sync is True
    assert StationClock.for_config(load_config(minimal)).required
    example = Path(__file__).resolve().parent.parent / "config" / "dockgate.example.toml"
    assert load_config(example).station.require_time_sync is True
    assert load_config(write_station(tmp_path / "sim")).station.require_time_sync is False


# -- what the manifest says ---------------------------------------------------------------
def _manifest(tmp_path: Path, dock: DockRow) -> dict[str, Any]:
    cfg = load_config(write_station(tmp_path / "st"))
    clip = ClipRow(sha256="ab" * 32, size=1, state="staged", staged_path="x", archive_key=None, attempts=0,
                   item_id=1, serial="S1", officer="012345", path=b"DCIM/a.MP4", mtime_ns=0, dock_id=dock.id,
                   manifest_path=None, manifest_sha256=None, partial=0, capture_utc=None, assignment_id=None)
    facts = ContainerFacts(created="2024-03-01T08:30:15Z")
    doc, _ts = build_manifest(cfg, clip, dock, facts, None, None, None, False, "k", 1, "kid")
    return doc


def test_a_drift_measured_against_an_unsynchronised_clock_is_recorded_unverified_and_not_applied(
        tmp_path: Path) -> None:
    recorder = datetime.fromisoformat("2024-03-05T06:02:00+00:00").timestamp()
    unverified = DockRow(id=1, slot=1, docked_at=recorder, recorder_clock=recorder, station_clock=recorder - 120.5,
                         clock_drift_s=None, clock_set=0)
    doc = _manifest(tmp_path, unverified)
    assert doc["recorder"]["clock_drift_s"] == 120.5 and doc["recorder"]["clock_drift_verified"] is False
    assert doc["recorder"]["clock_set"] is False
    t = doc["capture_time"]
    assert t["drift_s"] is None and t["drift_verified"] is False and t["utc"] == t["recorder_clock"]

    verified = DockRow(id=1, slot=1, docked_at=recorder, recorder_clock=recorder, station_clock=recorder - 120.5,
                       clock_drift_s=120.5, clock_set=1)
    doc = _manifest(tmp_path, verified)
    assert doc["recorder"]["clock_drift_s"] == 120.5 and doc["recorder"]["clock_drift_verified"] is True
    t = doc["capture_time"]
    assert t["drift_s"] == 120.5 and t["drift_verified"] is True and t["utc"] == "2024-03-01T08:28:14Z"

    # nothing measured (a recorder without a readable clock), or a reading that was no clock reading
    # (the stamper drops such a drift at a dock that did set the clock): no drift, verified or not
    for dock in (DockRow(id=1, slot=1, docked_at=recorder, station_clock=recorder, clock_set=0),
                 DockRow(id=1, slot=1, docked_at=recorder, recorder_clock=1e12, station_clock=recorder,
                         clock_drift_s=None, clock_set=1)):
        doc = _manifest(tmp_path, dock)
        assert doc["recorder"]["clock_drift_s"] is None and doc["recorder"]["clock_drift_verified"] is None
        assert doc["capture_time"]["drift_verified"] is None


# -- the metric ---------------------------------------------------------------------------------
def test_the_metric_is_one_while_the_alarm_stands_and_counts_each_alarm_once() -> None:
    m = Metrics(2)

    def value(name: str, **labels: str) -> float:
        v = m.registry.get_sample_value(name, labels)
        assert v is not None
        return v

    assert value("dockgate_station_clock_unsynchronised") == 0
    m.on_event(ALARM, None, {"reason": "x"})
    assert value("dockgate_station_clock_unsynchronised") == 1
    assert value("dockgate_errors_total", reason="clock_unsynchronised") == 1
    m.on_event(CLEARED, None, {})
    assert value("dockgate_station_clock_unsynchronised") == 0
    snap = {"slots": [], "queue": {"clips": 0, "bytes": 0}, "staging_free_bytes": 0, "archive_up": True,
            "station_clock": StationClock(source=lambda: UNSYNCED).status() | {"alarm": True}}
    m.update(snap, 0, None)
    assert value("dockgate_station_clock_unsynchronised") == 1
    assert value("dockgate_errors_total", reason="clock_unsynchronised") == 1


# -- end to end: the daemon at an unsynchronised station -------------------------------------------
DRIFT = 120.0  # the recorders run two minutes fast


def _recorder(root: Path, serial: str, officer: str) -> Path:
    storage = hand_made_recorder(root, serial, officer=officer, protocol="bc-text",
                                 extra=f"clock_offset_s = {DRIFT}\nstorage_settle_s = 0.3\n")
    day = storage / "DCIM" / "20240305"
    day.mkdir(parents=True)
    for i in range(2):  # timed by the recorder's clock (10:00:09 and 11:00:09 local, UTC+8) in the file time:
        clip = day / f"{officer}_202403051{i}0009_{i + 1:04d}.MP4"  # BC+ names are not parsed for facts
        clip.write_bytes(os.urandom(40_000 + i))
        t = datetime(2024, 3, 5, 2 + i, 0, 9, tzinfo=UTC).timestamp()
        os.utime(clip, (t, t))
    return root


def _manifests(archive: Path, officer: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in sorted(archive.rglob("*.manifest.json")) if officer in p.name]


@pytest.mark.e2e
def test_an_unsynchronised_station_sets_no_clock_signs_drift_unverified_and_raises_one_alarm(
        tmp_path: Path) -> None:
    station = write_station(tmp_path / "station", slots=4, reserve_bytes=0)
    station.write_text(station.read_text().replace("require_time_sync = false", "require_time_sync = true"))
    archive = load_config(station).archive.path
    assert archive is not None
    kernel = tmp_path / "kernel-clock"
    kernel.write_text("unsynchronised")
    d = DaemonProc(station, tmp_path / "daemon.log", module="tests.clock_daemon",
                   env={"DOCKGATE_TEST_CLOCK": str(kernel)}).start()
    try:
        # two docks while the clock is not synchronised: one alarm
        attach(station, _recorder(tmp_path / "a", "BCA00001", "0011111"), 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2, timeout=60, what="A archived")
        attach(station, _recorder(tmp_path / "b", "BCB00002", "0022222"), 2)
        s = d.wait_for(lambda s: s["clips"]["archived"] == 4 and all(
            x["state"] == "done" for x in s["slots"] if x["slot"] in (1, 2)), timeout=60, what="B archived")
        assert len(events(station, ALARM)) == 1
        assert all("station clock not synchronised" in x["message"] for x in s["slots"] if x["slot"] in (1, 2))
        # synchronised again: the next dock sets the recorder's clock and the alarm clears, once
        kernel.write_text("synchronised")
        attach(station, _recorder(tmp_path / "c", "BCC00003", "0033333"), 3)
        s = d.wait_for(lambda s: s["clips"]["archived"] == 6, timeout=60, what="C archived")
    finally:
        assert d.stop() == 0
    assert [e["type"] for e in events(station) if e["type"] in (ALARM, CLEARED)] == [ALARM, CLEARED]
    clock = {e["data"]["serial"]: e["data"] for e in events(station, "clock")}
    for serial in ("BCA00001", "BCB00002"):
        assert clock[serial]["set"] is False and clock[serial]["drift_verified"] is False
        assert abs(clock[serial]["drift_s"] - DRIFT) <= 1.5 and "not synchronised" in clock[serial]["station_clock"]
    assert clock["BCC00003"]["set"] is True and clock["BCC00003"]["drift_verified"] is True
    assert "station_clock" not in clock["BCC00003"]
    docks = {x["serial"]: x for x in s["recent_docks"]}
    assert docks["BCA00001"]["clock_drift_s"] is None and not docks["BCA00001"]["clock_set"]
    assert abs(docks["BCC00003"]["clock_drift_s"] - DRIFT) <= 1.5 and docks["BCC00003"]["clock_set"]

    for doc in _manifests(archive, "0011111") + _manifests(archive, "0022222"):
        rec, t = doc["recorder"], doc["capture_time"]
        assert rec["clock_set"] is False and rec["clock_drift_verified"] is False
        assert abs(rec["clock_drift_s"] - DRIFT) <= 1.5
        assert t["drift_s"] is None and t["drift_verified"] is False and t["utc"] == t["recorder_clock"]
    (c1, c2) = _manifests(archive, "0033333")
    for doc in (c1, c2):
        rec, t = doc["recorder"], doc["capture_time"]
        assert rec["clock_set"] is True and rec["clock_drift_verified"] is True and t["drift_verified"] is True
        shift = datetime.fromisoformat(t["recorder_clock"]) - datetime.fromisoformat(t["utc"])
        assert abs(shift.total_seconds() - DRIFT) <= 1.5  # corrected by the verified drift
    # 10:00:09 and 11:00:09 by the recorder's clock, UTC+8
    assert {c1["capture_time"]["recorder_clock"], c2["capture_time"]["recorder_clock"]} == \
        {"2024-03-05T02:00:09Z", "2024-03-05T03:00:09Z"}


@pytest.mark.e2e
def test_the_daemon_raises_the_alarm_without_a_dock_and_shows_it_in_status(tmp_path: Path) -> None:
    """With the daemon's poll wired (gateway/process/daemon.py): the alarm stands in status,
    MQTT's state and the metric from start-up, and clears within a poll of synchronisation."""
    station = write_station(tmp_path / "station", slots=2, reserve_bytes=0)
    station.write_text(station.read_text().replace("require_time_sync = false", "require_time_sync = true"))
    kernel = tmp_path / "kernel-clock"
    kernel.write_text("unsynchronised")
    d = DaemonProc(station, tmp_path / "daemon.log", module="tests.clock_daemon",
                   env={"DOCKGATE_TEST_CLOCK": str(kernel)}).start()
    try:
        s = d.wait_for(lambda s: (s.get("station_clock") or {}).get("alarm") is True, timeout=30, what="the alarm")
        assert s["station_clock"]["synchronised"] is False and "not synchronised" in s["station_clock"]["reason"]
        assert "station clock NOT synchronised" in dockgate("status", "-c", str(station)).stdout
        kernel.write_text("synchronised")
        s = d.wait_for(lambda s: s["station_clock"]["alarm"] is False, timeout=timesync.CHECK_INTERVAL_S + 20,
                       what="the alarm cleared")
        assert s["station_clock"]["synchronised"] is True
    finally:
        assert d.stop() == 0
    assert [e["type"] for e in events(station) if e["type"] in (ALARM, CLEARED)] == [ALARM, CLEARED]
