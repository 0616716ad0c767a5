"""The station on a real Linux: the Debian package in a QEMU guest with systemd as
PID 1, recorders docked through the guest kernel's USB gadget stack.

Each test starts from the 'configured' snapshot: the package installed, and only
/etc/dockgate/dockgate.toml edited (station id, archive path), as an admin would.
"""

from __future__ import annotations

from pathlib import Path

from tests.guest.conftest import STATION, Installed, edit_config, wait_active
from tests.guest.dock import (
    ARCHIVE,
    Recorder,
    archived_hashes,
    make_storage_recorder,
    mount_units,
    status,
    verify,
    wait_archived,
)
from tests.guest.guestlib import Guest

FILES = Path(__file__).resolve().parent / "files"


def test_the_package_installs_and_the_service_waits_for_its_station_id(installed: Installed) -> None:
    assert installed.install.startswith("exit 0\n"), installed.install
    # the shipped config, untouched: station.id is the placeholder, so the service is
    # enabled but does not run (nothing may be stamped under an id every new station shares);
    # as found right after apt install (other tests may have configured the shared guest since)
    seen = installed.after_install
    assert (seen["service.Type"], seen["service.UnitFileState"]) == ("notify", "enabled"), seen
    assert seen["service.ActiveState"] in ("failed", "inactive") and seen["service.NRestarts"] == "0", seen
    assert "NOT CONFIGURED: station.id is still the placeholder 'station-01'" in seen["status"], seen
    assert seen["which"].strip() == "/usr/bin/dockgate"
    assert seen["groups"].split() == ["dockgate", "plugdev"]
    assert seen["key"].split() == ["root", "600"]


def test_a_docked_storage_recorder_is_archived_whole_and_verifies(station: Guest) -> None:
    g = station
    rec = make_storage_recorder(g, "ums1", "UMS0001", clips=4)
    rec.plug(g)
    wait_archived(g, rec.clips)
    assert archived_hashes(g) == sorted(rec.hashes(g))
    st = status(g)
    assert st["station"] == STATION and st["archive_up"] is True
    assert [s["serial"] for s in st["slots"] if s.get("serial")] == ["UMS0001"]
    verify(g)


def test_a_vendor_protocol_recorder_switches_to_storage_in_one_dock_and_is_archived(station: Guest) -> None:
    """A FunctionFS gadget plays an amba-ascii recorder (dockgate's simulated firmware,
    byte for byte on real USB): probe, identity, clock, enter storage; it leaves the
    bus and comes back as a disk on the same port; one dock session pulls it."""
    g = station
    g.put(FILES / "guest-amba-ascii.toml", "/etc/dockgate/profiles/guest-amba-ascii.toml")
    edit_config(g, recorders={"profiles_dir": '"/etc/dockgate/profiles"'})
    g.run("dockgate check-config >/dev/null && systemctl restart dockgate")
    wait_active(g)
    g.run("dockgate sim make /var/tmp/amb1 --clips 3 --size 1500000 --serial AMB0001 --officer 0054321 "
          "--protocol amba-ascii >/dev/null && gadget.sh mkimg /var/tmp/amb1.img 16 AMB0001 /var/tmp/amb1/storage")
    g.run("setsid ffs_recorder.py amb1 /var/tmp/amb1 /var/tmp/amb1.img >/var/tmp/amb1.log 2>&1 </dev/null &")
    wait_archived(g, 3)
    journal = g.run("journalctl -b -u dockgate -o cat").stdout
    assert "usb_serial=AMB0001 profile=guest-amba-ascii dock_id=1" in journal, journal
    assert "storage_switched serial=AMB0001 dock_id=1" in journal, journal
    assert journal.count("dock_done serial=AMB0001") == 1, journal
    assert "pulled=3" in journal
    rec = Recorder("amb1", "AMB0001", "/var/tmp/amb1.img", 3, 0x4255, 0x0001)
    assert archived_hashes(g) == sorted(rec.hashes(g))
    verify(g)


def test_secrets_load_as_credentials_by_their_relative_names(station: Guest) -> None:
    """Finding 1: `admin_password_file = "admin_password"` and `signing_key_file =
    "station.key"` resolve in $CREDENTIALS_DIRECTORY; the files themselves are root's 0600."""
    g = station
    cfg = g.run("grep -E '^(admin_password_file|signing_key_file)' /etc/dockgate/dockgate.toml").stdout
    assert 'admin_password_file = "admin_password"' in cfg and 'signing_key_file = "station.key"' in cfg
    assert g.run("stat -c '%U %a' /etc/dockgate/credentials/admin_password").stdout.split() == ["root", "600"]
    assert g.run("runuser -u dockgate -- cat /etc/dockgate/credentials/station.key", check=False).returncode != 0
    # after the snapshot's restore the service may be between a restart and its start: read a running one
    g.wait_for("[ \"$(systemctl show -p MainPID --value dockgate)\" != 0 ] && systemctl is-active -q dockgate",
               what="the daemon running")
    pid = g.service("MainPID")["MainPID"]
    creds = g.run(f"tr '\\0' '\\n' < /proc/{pid}/environ | grep ^CREDENTIALS_DIRECTORY=").stdout.strip()
    cdir = creds.split("=", 1)[1]
    assert sorted(g.run(f"ls {cdir}").stdout.split()) == ["admin_password", "station.key"]
    # the manifests are signed with that key: verify checks them against station.pub.pem
    rec = make_storage_recorder(g, "ums2", "UMS0002", clips=1)
    rec.plug(g)
    wait_archived(g, 1)
    verify(g)


def test_the_archive_is_writable_under_protectsystem_strict_after_setup_systemd(station: Guest) -> None:
    """Finding 3: /srv/evidence is read-only to the service without the drop-in
    `dockgate setup-systemd` writes, writable with it."""
    g = station
    assert g.service("ProtectSystem")["ProtectSystem"] == "strict"
    dropin = "/etc/systemd/system/dockgate.service.d/50-paths.conf"
    assert f"ReadWritePaths=-{ARCHIVE}" in g.run(f"cat {dropin}").stdout
    probe = f"systemd-run --wait --pipe -q -p User=dockgate -p ProtectSystem=strict {{rw}} touch {ARCHIVE}/.probe"
    assert g.run(probe.format(rw=""), check=False).returncode != 0
    g.run(probe.format(rw=f"-p ReadWritePaths=-{ARCHIVE}"))
    # and the service itself writes there: a docked recorder ends up in the archive
    rec = make_storage_recorder(g, "ums3", "UMS0003", clips=1)
    rec.plug(g)
    wait_archived(g, 1)


def test_systemctl_restart_recovers(station: Guest) -> None:
    """Finding 2: a restart (and so Restart=on-failure) starts again; the media
    folder the mounts live in survives the stop."""
    g = station
    pid = g.service("MainPID")["MainPID"]
    for _ in range(2):
        g.run("systemctl restart dockgate")
        wait_active(g)
    svc = g.service("MainPID", "ActiveState", "NRestarts")
    assert svc["MainPID"] != pid and svc["ActiveState"] == "active"
    assert g.run("stat -c '%U %a' /run/dockgate/media").stdout.split() == ["dockgate", "750"]
    rec = make_storage_recorder(g, "ums4", "UMS0004", clips=2)
    rec.plug(g)
    wait_archived(g, 2)


def test_a_stopped_daemon_is_killed_by_the_watchdog_and_comes_back(station: Guest) -> None:
    g = station
    # the shipped 60 s, shortened for the test: the mechanism is what is tested
    g.write("/etc/systemd/system/dockgate.service.d/90-test-watchdog.conf", "[Service]\nWatchdogSec=20s\n")
    g.run("systemctl daemon-reload && systemctl restart dockgate")
    wait_active(g)
    pid = g.service("MainPID")["MainPID"]
    g.run(f"kill -STOP {pid}")
    g.wait_for(f"[ \"$(systemctl show -p MainPID --value dockgate)\" != {pid} ] && "
               "[ \"$(systemctl show -p ActiveState --value dockgate)\" = active ]", 180, "a new daemon, active")
    journal = g.run("journalctl -q -b -u dockgate -o cat").stdout
    assert "Watchdog timeout" in journal and "Failed with result 'watchdog'" in journal, journal[-3000:]
    assert int(g.service("NRestarts")["NRestarts"]) == 1
    rec = make_storage_recorder(g, "ums5", "UMS0005", clips=1)
    rec.plug(g)
    wait_archived(g, 1)


def test_a_config_error_stops_the_service_without_a_restart_loop(station: Guest) -> None:
    g = station
    edit_config(g, archive={"backend": '"no-such-backend"'})
    p = g.run("systemctl restart dockgate", check=False)
    assert p.returncode != 0
    g.wait_for("[ \"$(systemctl show -p ActiveState --value dockgate)\" = failed ]", 60, "dockgate failed")
    svc = g.service("ExecMainStatus", "NRestarts", "Result", "SubState")
    # failed, not "auto-restart": systemd will not try again (RestartPreventExitStatus=2)
    assert (svc["ExecMainStatus"], svc["NRestarts"], svc["SubState"]) == ("2", "0", "failed"), svc


def test_the_mount_unit_is_not_failed_after_unplug_and_a_whole_disk_volume_mounts_read_only(station: Guest) -> None:
    """Finding 4: the recorder's FAT has no partition table; release.policy is never."""
    g = station
    rec = make_storage_recorder(g, "ums6", "UMS0006", clips=1)
    rec.plug(g)
    wait_archived(g, 1)
    mnt = g.run("findmnt -rn -o SOURCE,OPTIONS -T /run/dockgate/media/sda").stdout.split()
    assert mnt[0] == "/dev/sda", mnt          # the whole disk, no sda1
    assert "ro" in mnt[1].split(","), mnt
    assert mount_units(g) == {"dockgate-mount@sda.service": "active"}
    rec.unplug(g)
    g.wait_for("! test -e /dev/sda && ! findmnt -rn /run/dockgate/media/sda >/dev/null", 60, "unmounted")
    g.wait_for("! systemctl is-active -q dockgate-mount@sda.service", 60, "mount unit stopped")
    assert g.run("systemctl is-failed dockgate-mount@sda.service", check=False).stdout.strip() != "failed"
    assert g.run("systemctl list-units --failed --plain --no-legend").stdout.strip() == ""
    # and docking again mounts again
    rec.replug(g)
    g.wait_for("findmnt -rn /run/dockgate/media/sda >/dev/null", 60, "mounted again")


def test_unplugged_mid_pull_then_docked_again_loses_and_doubles_nothing(station: Guest) -> None:
    g = station
    rec = make_storage_recorder(g, "ums7", "UMS0007", clips=6, size=8_000_000)
    # pulled out as soon as the first clip is in: the guest reacts, not the host
    rec.plug(g, then=f"wait_pulled {rec.serial} && gadget.sh unplug {rec.name}")
    g.wait_for("! test -e /dev/sda", 60, "the recorder gone")
    pulled = int(g.run(f"journalctl -q -b -u dockgate -o cat | grep -c 'pulled serial={rec.serial}'").stdout)
    assert 1 <= pulled < rec.clips
    rec.replug(g)
    wait_archived(g, rec.clips, timeout=420)
    assert archived_hashes(g) == sorted(rec.hashes(g))
    verify(g)


def test_a_power_cut_mid_pull_then_boot_carries_on_and_loses_and_doubles_nothing(station: Guest) -> None:
    g = station
    rec = make_storage_recorder(g, "ums8", "UMS0008", clips=6, size=8_000_000)
    g.run("sync")
    rec.plug(g, then=f"wait_pulled {rec.serial}")
    g.power_cut()
    g.boot(reuse=True)
    wait_active(g)
    # the dock after the reboot: gadget modules and the recorder come back
    g.run("gadget.sh init 4 >/dev/null && modprobe usb_f_fs")
    rec.plug(g)
    wait_archived(g, rec.clips, timeout=420)
    assert archived_hashes(g) == sorted(rec.hashes(g))
    verify(g)
