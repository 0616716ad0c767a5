"""The config is validated once, and every problem names its key and the file."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.simstation import write_station
from gateway.cli.status import collect
from gateway.config import load_config
from gateway.errors import ConfigError, SecretError
from gateway.secrets import read_secret
from tests.helpers import DaemonProc, dockgate

MINIMAL = """
[station]
id = "p01"
[paths]
state_dir = "state"
staging = "staging"
[archive]
backend = "directory"
path = "/mnt/archive"
[evidence]
signing_key_file = "station.key"
"""


def as_user(user: str, fn: Callable[[], Any]) -> Any:
    """*fn*'s JSON-able result, computed in a forked child that is *user* (the test runs as root)."""
    pw = pwd.getpwnam(user)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.setgroups([pw.pw_gid])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            try:
                out = {"ok": fn()}
            except Exception as e:  # the parent reports it
                out = {"error": f"{type(e).__name__}: {e}"}
            os.write(w, json.dumps(out, default=str).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        data = json.loads(f.read())
    os.waitpid(pid, 0)
    assert "error" not in data, data["error"]
    return data["ok"]


@pytest.fixture
def world_readable() -> Iterator[Path]:
    """A folder another user can reach (pytest's own tmp folders are root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dockgate-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "dockgate.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_minimal_config_resolves_paths_next_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.paths.state_dir == tmp_path / "state"
    assert cfg.archive.path == Path("/mnt/archive")
    assert cfg.detect.backend == "udev"


def test_example_config_is_valid() -> None:
    cfg = load_config(Path(__file__).parent.parent / "config" / "dockgate.example.toml")
    assert cfg.station.id


@pytest.mark.parametrize(("text", "needle"), [
    (MINIMAL + "\n[detect]\nslotz = 3\n", "detect.slotz: unknown key"),
    (MINIMAL.replace('id = "p01"', 'id = "bad id!"'), "station.id:"),
    (MINIMAL + "\n[detect]\nslots = 0\n", "detect.slots:"),
    (MINIMAL.replace('backend = "directory"', 'backend = "ftp"'), "archive:"),
    (MINIMAL.replace('path = "/mnt/archive"', ""), "archive.path: Field required"),
    (MINIMAL + "\n[detect]\nbackend = \"sim\"\n", "sim_dir"),
    (MINIMAL + '\n[forward]\nconcurrency = "many"\n', "forward.concurrency:"),
    (MINIMAL.replace('backend = "directory"', 'backend = "directory"\nkey_template = "{officer}/{stem}"'),
     "archive.key_template:"),
    ("[station\n", "not valid TOML"),
])
def test_bad_config_names_the_key_and_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value)
    assert needle in str(e.value)


def test_check_config_cli_exit_codes(tmp_path: Path, station: Path) -> None:
    ok = dockgate("check-config", "-c", str(station))
    assert "ok" in ok.stdout
    bad = write(tmp_path, MINIMAL + "\nsurprise = 1\n")
    r = dockgate("check-config", "-c", str(bad), check=False)
    assert r.returncode == 1  # the check failed
    assert "surprise: unknown key" in r.stderr
    missing = dockgate("check-config", "-c", str(tmp_path / "nope.toml"), check=False)
    assert missing.returncode == 2 and "no such config file" in missing.stderr  # nothing to check


def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    s = tmp_path / "pw"
    s.write_text("000000\n")
    os.chmod(s, 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        read_secret(s)
    os.chmod(s, 0o600)
    assert read_secret(s) == "000000"
    with pytest.raises(SecretError, match="not found"):
        read_secret(tmp_path / "absent")


# -- drop-ins: the admin's settings where upgrades never ask (issue 28) ----------------------------

def test_drop_ins_merge_over_the_file_table_by_table_in_name_order(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[detect]\nslots = 4\nbackend = "udev"\n')
    (tmp_path / "dockgate.toml.d").mkdir()
    (tmp_path / "dockgate.toml.d" / "50-site.toml").write_text('[station]\nid = "site-7"\n[detect]\nslots = 6\n')
    (tmp_path / "dockgate.toml.d" / "90-bay.toml").write_text('[detect]\nslots = 2\n[detect.ports]\n"1-1.1" = 1\n')
    (tmp_path / "dockgate.toml.d" / "README").write_text("not a drop-in: only *.toml are read\n")
    cfg = load_config(path)
    assert cfg.station.id == "site-7" and cfg.detect.slots == 2 and cfg.detect.ports == {"1-1.1": 1}
    assert cfg.detect.backend == "udev" and cfg.archive.path == Path("/mnt/archive")  # kept from the file
    assert [p.name for p in cfg.drop_ins] == ["50-site.toml", "90-bay.toml"]
    # relative paths in a drop-in are relative to the config's own folder, as in the file
    (tmp_path / "dockgate.toml.d" / "95-state.toml").write_text('[paths]\nstate_dir = "elsewhere"\n')
    assert load_config(path).paths.state_dir == tmp_path / "elsewhere"


def test_a_bad_key_in_a_drop_in_names_that_drop_in(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    (tmp_path / "dockgate.toml.d").mkdir()
    bad = tmp_path / "dockgate.toml.d" / "20-typo.toml"
    bad.write_text("[detect]\nslotz = 3\nslots = 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert f"detect.slotz: unknown key (set in {bad})" in e.value.problems
    assert any(p.startswith("detect.slots:") and str(bad) in p for p in e.value.problems)
    bad.write_text("[detect\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.file == str(bad) and "not valid TOML" in str(e.value)


def test_the_shipped_station_id_is_the_placeholder_the_daemon_refuses() -> None:
    shipped = load_config(Path(__file__).parent.parent / "config" / "dockgate.toml")
    assert shipped.placeholder_id
    assert not load_config(Path(__file__).parent.parent / "config" / "dockgate.example.toml").placeholder_id


def test_loading_the_config_opens_no_secret_a_member_may_not_see(world_readable: Path) -> None:
    """`status` as a member of the group: credentials/ is root's (0700), and
    resolving the config's relative secret names must not look into it."""
    station = world_readable / "etc"
    (station / "credentials").mkdir(parents=True)
    (station / "credentials").chmod(0o700)
    (station / "dockgate.toml").write_text(MINIMAL + '\n[recorders]\nadmin_password_file = "admin_password"\n'
                                           '[mqtt]\nenabled = true\npassword_file = "mqtt_password"\n')
    os.chmod(station / "dockgate.toml", 0o644)
    assert as_user("nobody", lambda: collect(load_config(station / "dockgate.toml"))["station"]) == "p01"
    # and where a secret is named relatively but found nowhere, it is named where it belongs
    cfg = load_config(station / "dockgate.toml")
    assert cfg.mqtt.password_file == station / "credentials" / "mqtt_password"
    assert cfg.credentials == {"recorders.admin_password_file": "admin_password", "evidence.signing_key_file":
                               "station.key", "mqtt.password_file": "mqtt_password"}


# -- the station id: never the placeholder, never another station's catalog (issue 28) ------------

def run_daemon(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", "run", "-c", str(config)], capture_output=True,
                          text=True, timeout=30, check=False)


def test_the_placeholder_station_id_starts_nothing_and_says_what_to_do(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", slots=2, reserve_bytes=0, station_id="station-01")
    r = run_daemon(station)
    assert r.returncode == 2, r.stderr  # the unit's RestartPreventExitStatus: no loop
    assert "station.id is still the placeholder 'station-01'" in r.stderr
    assert f"{station}.d/station.toml" in r.stderr  # where to set it
    assert not (tmp_path / "st" / "state").exists() or not any((tmp_path / "st" / "state").rglob("*.sqlite"))
    out = dockgate("status", "-c", str(station)).stdout
    assert "NOT CONFIGURED: station.id is still the placeholder 'station-01'" in out
    assert dockgate("check-config", "-c", str(station), check=False).returncode == 1
    # set in a drop-in: it starts
    (tmp_path / "st" / "dockgate.toml.d").mkdir()
    (tmp_path / "st" / "dockgate.toml.d" / "station.toml").write_text('[station]\nid = "precinct-7"\n')
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    d.stop()
    assert dockgate("status", "-c", str(station), "--json").stdout.count('"station": "precinct-7"') == 1


def test_another_stations_catalog_is_not_continued_under_a_new_id_without_a_word(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", slots=2, reserve_bytes=0, station_id="precinct-7")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    dockgate("sim", "make", str(tmp_path / "rec"), "--clips", "1", "--size", "10k", "--serial", "OWN00001")
    dockgate("sim", "attach", str(tmp_path / "rec"), "-c", str(station), "--slot", "1")
    d.wait_for(lambda s: s["clips"]["archived"] >= 1, what="the clip archived")
    d.stop()
    (tmp_path / "st" / "dockgate.toml.d").mkdir()
    (tmp_path / "st" / "dockgate.toml.d" / "station.toml").write_text('[station]\nid = "precinct-9"\n')
    r = run_daemon(station)
    assert r.returncode == 2
    assert "the catalog and custody log in" in r.stderr and "are station 'precinct-7''s" in r.stderr
    assert "STATION ID MISMATCH" in dockgate("status", "-c", str(station)).stdout
    custody = load_config(station).custody_dir
    assert {p.name.split("-")[1] for p in custody.glob("custody-*.jsonl")} == {"precinct"}  # nothing as -9
    assert not any("precinct-9" in p.read_text() for p in custody.glob("custody-*.jsonl"))


def test_under_systemd_a_secret_the_unit_does_not_hand_over_stops_the_start_saying_so(tmp_path: Path) -> None:
    station = write_station(tmp_path / "st", slots=2, reserve_bytes=0, mqtt="127.0.0.1:1")
    station.write_text(station.read_text() + 'username = "s"\npassword_file = "mqtt_password"\n')
    (tmp_path / "creds").mkdir()
    r = subprocess.run([sys.executable, "-m", "gateway.cli.main", "run", "-c", str(station)], capture_output=True,
                       text=True, timeout=30, check=False, env={**os.environ, "CREDENTIALS_DIRECTORY":
                                                                str(tmp_path / "creds")})
    assert r.returncode == 2
    assert "mqtt.password_file = 'mqtt_password': not among this service's credentials" in r.stderr
    assert "dockgate setup-systemd" in r.stderr
