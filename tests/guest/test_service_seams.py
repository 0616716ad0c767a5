"""The seams between the config, the systemd service and the CLI, on a real
Debian with systemd as PID 1 (issue 28): the group reads status and events;
admin restarts leave a crash its restart; a missing credential stops the
service once, saying which file; the placeholder station id starts nothing.

Each test starts from the 'configured' snapshot (conftest.py): the package
installed and configured as the README says."""

from __future__ import annotations

from tests.guest.conftest import STATION, wait_active
from tests.guest.dock import ARCHIVE, archived_hashes, make_storage_recorder, status, wait_archived
from tests.guest.guestlib import Guest

CREDS = "/etc/dockgate/credentials"


def wait_failed(g: Guest, timeout: float = 120) -> dict[str, str]:
    """Failed, not "auto-restart": systemd will not try again."""
    g.wait_for("[ \"$(systemctl show -p ActiveState --value dockgate)\" = failed ]", timeout, "dockgate failed")
    return g.service("ExecMainStatus", "NRestarts", "Result", "SubState", "StatusText")


def test_a_member_of_the_dockgate_group_runs_status_and_events(station: Guest) -> None:
    g = station
    rec = make_storage_recorder(g, "ums1", "SEAM0001", clips=1)
    rec.plug(g)
    wait_archived(g, 1)
    g.run("useradd -m -G dockgate dockop && useradd -m outsider")
    st = g.run("runuser -u dockop -- dockgate status")
    assert f"station {STATION}: daemon running" in st.stdout and "archived 1" in st.stdout, st.stdout
    ev = g.run("runuser -u dockop -- dockgate events --type clip_archived --json")
    assert ev.stdout.count('"clip_archived"') == 1, ev.stdout
    # and someone outside the group is told the right thing: join the group
    no = g.run("runuser -u outsider -- dockgate status", check=False)
    assert no.returncode == 2 and "sudo adduser $USER dockgate" in no.stderr, no.stderr


def test_three_admin_restarts_a_stop_and_a_start_then_kill_9_comes_back_by_itself(station: Guest) -> None:
    """The snapshot already counts the install's start and the configure-and-restart."""
    g = station
    for _ in range(3):
        g.run("systemctl restart dockgate")
        wait_active(g)
    g.run("systemctl stop dockgate && systemctl start dockgate")
    wait_active(g)
    pid = g.service("MainPID")["MainPID"]
    g.run(f"kill -9 {pid}")
    g.wait_for(f"[ \"$(systemctl show -p MainPID --value dockgate)\" != {pid} ] && "
               "[ \"$(systemctl show -p ActiveState --value dockgate)\" = active ]", 180, "a new daemon, active")
    assert g.service("NRestarts")["NRestarts"] == "1"
    journal = g.run("journalctl -q -b -u dockgate -o cat").stdout
    assert "Start request repeated too quickly" not in journal, journal[-3000:]
    rec = make_storage_recorder(g, "ums2", "SEAM0002", clips=1)
    rec.plug(g)
    wait_archived(g, 1)


def test_a_secret_the_unit_does_not_load_or_a_missing_credential_stops_once_naming_the_file(station: Guest) -> None:
    g = station
    g.run(f"umask 077 && echo secret > {CREDS}/mqtt_password")
    # the admin's settings in a drop-in (the shipped file has no [mqtt] table)
    g.write("/etc/dockgate/dockgate.toml.d/mqtt.toml",
            '[mqtt]\nenabled = true\nusername = "station"\npassword_file = "mqtt_password"\n')
    # check-config checks as the service runs: the unit does not hand that file over yet
    cc = g.run("dockgate check-config", check=False)
    assert cc.returncode == 1 and "mqtt.password_file: 'mqtt_password' is not among the unit's credentials" \
        in cc.stderr, cc.stderr
    # nor does the service start with it: once, saying what to do
    assert g.run("systemctl restart dockgate", check=False).returncode != 0
    svc = wait_failed(g)
    assert (svc["ExecMainStatus"], svc["NRestarts"]) == ("2", "0"), svc
    journal = g.run("journalctl -q -b -u dockgate -o cat").stdout
    assert "not among this service's credentials (LoadCredential=): run `dockgate setup-systemd`" in journal
    # setup-systemd gives the unit every secret the config names
    g.run("dockgate setup-systemd >/dev/null && dockgate check-config && systemctl daemon-reload "
          "&& systemctl restart dockgate")
    wait_active(g)
    # the credential's file gone: check-config names it, and the start fails once (243/CREDENTIALS)
    g.run(f"rm {CREDS}/mqtt_password")
    cc = g.run("dockgate check-config", check=False)
    assert cc.returncode == 1 and f"secret {CREDS}/mqtt_password: file not found" in cc.stderr, cc.stderr
    assert g.run("systemctl restart dockgate", check=False).returncode != 0
    svc = wait_failed(g)
    assert (svc["ExecMainStatus"], svc["NRestarts"]) == ("243", "0"), svc


def test_a_root_owned_archive_folder_fails_check_config(station: Guest) -> None:
    g = station
    g.run(f"chown root:root {ARCHIVE}")
    cc = g.run("dockgate check-config", check=False)
    assert cc.returncode == 1 and f"archive.path: {ARCHIVE}: user 'dockgate' cannot write it" in cc.stderr, cc.stderr
    g.run(f"rmdir {ARCHIVE}")
    cc = g.run("dockgate check-config", check=False)
    assert cc.returncode == 1 and f"archive.path: {ARCHIVE}: no such folder" in cc.stderr, cc.stderr


def test_the_placeholder_station_id_starts_nothing_and_stamps_nothing(station: Guest) -> None:
    """A drop-in setting station.id back to the shipped placeholder: as a fresh install is."""
    g = station
    g.write("/etc/dockgate/dockgate.toml.d/station.toml", '[station]\nid = "station-01"\n')
    assert g.run("systemctl restart dockgate", check=False).returncode != 0
    svc = wait_failed(g)
    assert (svc["ExecMainStatus"], svc["NRestarts"]) == ("2", "0"), svc
    journal = g.run("journalctl -q -b -u dockgate -o cat").stdout
    assert "station.id is still the placeholder 'station-01': not started" in journal, journal[-2000:]
    assert "/etc/dockgate/dockgate.toml.d/station.toml" in journal
    shown = g.run("systemctl status --no-pager dockgate", check=False).stdout
    assert "placeholder" in shown, shown
    assert "NOT CONFIGURED" in g.run("dockgate status").stdout
    # a recorder docked meanwhile: mounted by its unit, read by nobody, nothing stamped
    rec = make_storage_recorder(g, "ums3", "SEAM0003", clips=1)
    rec.plug(g)
    g.wait_for("findmnt -rn /run/dockgate/media/sda >/dev/null", 60, "the recorder's volume mounted")
    assert status(g)["clips"]["stamped"] == 0 and sum(status(g)["clips"].values()) == 0
    assert archived_hashes(g) == []
    # the station's own id in the drop-in: it starts and serves the dock
    g.write("/etc/dockgate/dockgate.toml.d/station.toml", f'[station]\nid = "{STATION}"\n')
    g.run("dockgate check-config >/dev/null && systemctl restart dockgate")
    wait_active(g)
