"""What a host install needs, checked without booting: the unit verifies and
is hardened, the shipped udev rules are the ones the profiles produce, and
`setup-systemd` opens exactly the config's paths and picks the mount mode."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from drivers.profiles import Registry
from gateway.cli.install import DROPIN, MOUNT_ENV, systemd_setup, udev_rules
from gateway.config import load_config
from tests.helpers import dockgate

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"


def local_unit(tmp_path: Path, name: str) -> Path:
    """The unit with ExecStart pointing at this installation (verify wants it to exist)."""
    exe = shutil.which("dockgate") or str(Path(sys.executable).parent / "dockgate")
    local = tmp_path / name
    local.write_text((SYSTEMD / name).read_text().replace("/usr/bin/dockgate", exe))
    return local


def test_the_service_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    local = local_unit(tmp_path, "dockgate.service")
    v = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(local)], capture_output=True,
                         text=True, check=False)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout).group(1))  # type: ignore[union-attr]
    assert score <= 2.0, sec.stdout[-2000:]


def test_a_config_error_does_not_restart_the_service_in_a_loop() -> None:
    unit = (SYSTEMD / "dockgate.service").read_text()
    assert re.search(r"^RestartPreventExitStatus=.*\b2\b", unit, re.M)


def test_a_restart_finds_every_path_it_was_given() -> None:
    unit = "\n".join(x for x in (SYSTEMD / "dockgate.service").read_text().splitlines() if not x.startswith("#"))
    # a RuntimeDirectory= is removed on every stop; a ReadWritePaths= inside it then fails the next start
    assert "RuntimeDirectory=" not in unit
    assert all(line.split("=", 1)[1].startswith("-") for line in unit.splitlines()
               if line.startswith("ReadWritePaths=") and "/run/" in line)


def test_an_unplugged_volume_does_not_leave_the_mount_unit_failed() -> None:
    unit = (SYSTEMD / "dockgate-mount@.service").read_text()
    assert re.search(r"^ExecStop=-", unit, re.M)
    assert "--fsck=no" in unit and "${DOCKGATE_MOUNT_MODE}" in unit


def test_the_shipped_udev_rules_are_the_profiles_rules() -> None:
    assert (SYSTEMD / "70-dockgate.rules").read_text() == udev_rules(Registry.load())
    assert dockgate("udev-rules").stdout == udev_rules(Registry.load())


def test_every_profiled_device_is_tagged_and_whole_disks_are_mounted() -> None:
    rules = udev_rules(Registry.load())
    for p in Registry.load().profiles:
        assert f'ATTR{{idVendor}}=="{p.match.vid:04x}", ATTR{{idProduct}}=="{p.match.pid:04x}"' in rules
    tag = next(line for line in rules.splitlines() if 'TAG+="systemd"' in line and "RECORDER" in line)
    assert "ACTION" not in tag  # every action: bind must not drop the tag
    mount = next(line for line in rules.splitlines() if "SYSTEMD_WANTS" in line)
    assert 'ENV{ID_FS_USAGE}=="filesystem"' in mount and "partition" not in mount


def test_dock_ports_mount_whatever_storage_a_recorder_becomes() -> None:
    rules = udev_rules(Registry.load(), {"1-1.2": 1, "1-1.3": 2})
    assert 'KERNELS=="1-1.2", ENV{DOCKGATE_VOLUME}="1"' in rules


def test_setup_systemd_opens_the_archive_and_mounts_read_only(station: Path, tmp_path: Path) -> None:
    cfg = load_config(station)
    root = tmp_path / "root"
    systemd_setup(cfg, root)
    dropin = (root / DROPIN).read_text()
    assert f"ReadWritePaths=-{cfg.archive.path}" in dropin
    assert "DOCKGATE_MOUNT_MODE=ro" in (root / MOUNT_ENV).read_text()


def test_setup_systemd_mounts_read_write_when_release_deletes(station: Path, tmp_path: Path) -> None:
    station.write_text(station.read_text() + '\n[release]\npolicy = "after-archive"\n')
    root = tmp_path / "root"
    dockgate("setup-systemd", "-c", str(station), "--root", str(root))
    assert "DOCKGATE_MOUNT_MODE=rw" in (root / MOUNT_ENV).read_text()
