"""The command line as an admin meets it: `check-config` loads everything
`run` would; exit codes say 0 ok, 1 a check failed, 2 usage or environment;
secrets come from systemd's credentials first; `events` is newest first,
filters and follows; the group may read status without root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, dockgate

GROUP = 4242  # a station's dockgate group, by number: no system user is touched


def set_key(station: Path, key: str, value: str) -> None:
    text = station.read_text()
    lines = [f"{key} = {value}" if line.startswith(f"{key} =") else line for line in text.splitlines()]
    station.write_text("\n".join(lines) + "\n")


def test_check_config_says_ok_only_when_run_would_start(station: Path) -> None:
    r = dockgate("check-config", "-c", str(station))
    assert r.returncode == 0 and "ok" in r.stdout


def test_check_config_fails_on_a_missing_signing_key(station: Path) -> None:
    (station.parent / "secrets" / "station.key").unlink()
    r = dockgate("check-config", "-c", str(station), check=False)
    assert r.returncode == 1 and "evidence.signing_key_file" in r.stderr


def test_check_config_fails_on_a_group_readable_key(station: Path) -> None:
    os.chmod(station.parent / "secrets" / "station.key", 0o640)
    r = dockgate("check-config", "-c", str(station), check=False)
    assert r.returncode == 1 and "chmod 600" in r.stderr


def test_check_config_fails_on_a_missing_mqtt_password_file(station: Path) -> None:
    station.write_text(station.read_text() + '\n[mqtt]\nenabled = true\nusername = "st"\n'
                                              'password_file = "secrets/mqtt_password"\n')
    r = dockgate("check-config", "-c", str(station), check=False)
    assert r.returncode == 1 and "mqtt.password_file" in r.stderr


def test_check_config_names_the_key_of_an_invalid_value(station: Path) -> None:
    station.write_text(station.read_text() + "\n[forward]\nconcurrency = 0\n")
    r = dockgate("check-config", "-c", str(station), check=False)
    assert r.returncode == 1 and "forward.concurrency" in r.stderr


def test_a_missing_config_is_exit_2(tmp_path: Path) -> None:
    assert dockgate("check-config", "-c", str(tmp_path / "nope.toml"), check=False).returncode == 2
    assert dockgate("status", "-c", str(tmp_path / "nope.toml"), check=False).returncode == 2


def test_run_stops_with_exit_2_on_a_config_error(station: Path) -> None:
    (station.parent / "secrets" / "station.key").unlink()
    r = dockgate("run", "-c", str(station), check=False, timeout=60)
    assert r.returncode == 2 and "signing key" in r.stderr


def test_every_command_finds_the_default_config(station: Path) -> None:
    env = {**os.environ, "DOCKGATE_CONFIG": str(station)}
    r = subprocess.run([sys.executable, "-m", "gateway.cli.main", "check-config"], capture_output=True, text=True,
                       env=env, check=False)
    assert r.returncode == 0, r.stderr


def test_secrets_are_found_among_systemd_credentials_first(station: Path, tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    for name in ("admin_password", "station.key"):
        shutil.move(station.parent / "secrets" / name, creds / name)
    set_key(station, "admin_password_file", '"admin_password"')
    set_key(station, "signing_key_file", '"station.key"')
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds)}
    r = subprocess.run([sys.executable, "-m", "gateway.cli.main", "check-config", "-c", str(station)],
                       capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    # without the credentials the same config fails, naming the file it looked for
    r = dockgate("check-config", "-c", str(station), check=False)
    assert r.returncode == 1 and "admin_password" in r.stderr


def make_recorders(tmp_path: Path, n: int) -> list[str]:
    recs = [tmp_path / f"rec{i}" for i in range(1, n + 1)]
    for i, r in enumerate(recs, start=1):
        dockgate("sim", "make", str(r), "--clips", "1", "--size", "4k", "--serial", f"RACK{i:04d}")
    return [str(r) for r in recs]


def docked(station: Path) -> list[str]:
    return sorted(p.name for p in (station.parent / "dock").glob("slot-*.json"))


def test_sim_attach_docks_several_recorders_in_consecutive_slots(station: Path, tmp_path: Path) -> None:
    r = dockgate("sim", "attach", *make_recorders(tmp_path, 3), "-c", str(station), "--slot", "2")
    assert r.stdout.splitlines() == ["docked RACK0001 in slot 2", "docked RACK0002 in slot 3",
                                     "docked RACK0003 in slot 4"]
    assert docked(station) == ["slot-2.json", "slot-3.json", "slot-4.json"]


def test_sim_attach_docks_none_when_one_slot_is_occupied(station: Path, tmp_path: Path) -> None:
    recs = make_recorders(tmp_path, 3)
    dockgate("sim", "attach", recs[0], "-c", str(station), "--slot", "3")
    r = dockgate("sim", "attach", *recs[1:], "-c", str(station), "--slot", "2", check=False)
    assert r.returncode == 1 and "slot 3 is occupied" in r.stderr
    assert docked(station) == ["slot-3.json"]


def test_sim_attach_docks_none_past_the_last_slot_or_with_a_bad_recorder(station: Path, tmp_path: Path) -> None:
    recs = make_recorders(tmp_path, 2)
    r = dockgate("sim", "attach", *recs, "-c", str(station), "--slot", "4", check=False)
    assert r.returncode == 1 and "the station has 4" in r.stderr
    r = dockgate("sim", "attach", recs[0], str(tmp_path / "no-such-recorder"), "-c", str(station), "--slot", "1",
                 check=False)
    assert r.returncode != 0 and "device.toml not found" in r.stderr and "Traceback" not in r.stderr
    assert docked(station) == []


def test_verify_tells_tampered_from_missing(station: Path, tmp_path: Path) -> None:
    assert dockgate("verify", "--archive", str(tmp_path / "no-archive"), "--pubkey",
                    str(station.parent / "secrets" / "station.pub.pem"), check=False).returncode == 2
    shutil.rmtree(station.parent / "archive")
    assert dockgate("verify", "-c", str(station), check=False).returncode == 2


@pytest.fixture
def docked_station(tmp_path: Path) -> Path:
    station = write_station(tmp_path / "st", reserve_bytes=0)
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "2", "--size", "50k", "--serial", "CLI00001")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2, timeout=60, what="archived")
    finally:
        d.stop()
    return station


def event_lines(station: Path, *args: str) -> list[dict]:
    out = dockgate("events", "-c", str(station), "--json", *args).stdout
    return [json.loads(x) for x in out.splitlines()]


def test_events_are_newest_first(docked_station: Path) -> None:
    seqs = [e["seq"] for e in event_lines(docked_station)]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) > 3


def test_events_filter_by_type(docked_station: Path) -> None:
    evs = event_lines(docked_station, "--type", "clip_archived", "--type", "docked")
    assert {e["type"] for e in evs} == {"clip_archived", "docked"} and len(evs) == 3


def test_events_follow_prints_what_happens_next(docked_station: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "events", "-c", str(docked_station), "--follow",
                             "--json", "--limit", "1", "--interval", "0.1"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        dockgate("assign", "-c", str(docked_station), "--officer", "012345", "--from", "2020-01-01T00:00",
                 "--to", "2020-01-02T00:00", "--case", "A-1")
        d = DaemonProc(docked_station, tmp_path / "daemon2.log").start()  # it records the assignment
        try:
            nxt = json.loads(proc.stdout.readline())
        finally:
            d.stop()
        assert nxt["seq"] > first["seq"]
    finally:
        proc.kill()
        proc.wait(10)


def as_user(gid: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an unprivileged user (uid nobody) in group *gid* only."""
    return subprocess.run(["setpriv", "--reuid=65534", f"--regid={gid}", "--clear-groups", sys.executable, "-m",
                           "gateway.cli.main", *args], capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's own tmp is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="dockgate-group-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_the_dockgate_group_reads_status_and_events_without_root(open_dir: Path, tmp_path: Path) -> None:
    station = write_station(open_dir / "st", reserve_bytes=0)
    state = open_dir / "st" / "state"
    state.mkdir(mode=0o750)  # as the unit's StateDirectoryMode and UMask make it
    os.chmod(state, 0o2750)
    os.chown(state, 0, GROUP)
    os.chmod(open_dir / "st", 0o755)
    os.chown(station, 0, GROUP)  # /etc/dockgate/dockgate.toml: root:dockgate 0640
    os.chmod(station, 0o640)
    d = DaemonProc(station, tmp_path / "daemon.log", umask=0o027).start()
    try:
        member = as_user(GROUP, "status", "-c", str(station), "--json")
        assert member.returncode == 0, member.stderr
        assert json.loads(member.stdout)["daemon"]["running"] is True
        assert as_user(GROUP, "events", "-c", str(station)).returncode == 0
        stranger = as_user(65534, "status", "-c", str(station))
        assert stranger.returncode == 2 and "dockgate group" in stranger.stderr
        assert "Traceback" not in stranger.stderr
    finally:
        d.stop()
    # with the daemon stopped (no -wal, no -shm) the group still reads it
    member = as_user(GROUP, "status", "-c", str(station), "--json")
    assert member.returncode == 0, member.stderr
