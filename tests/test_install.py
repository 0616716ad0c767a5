"""What a host install needs, checked without booting: the unit verifies and
is hardened, the shipped udev rules are the ones the profiles produce, and
`setup-systemd` opens exactly the config's paths and picks the mount mode."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.profiles import Registry
from gateway.cli.checkconfig import ServiceView, check_as_service, installed_service
from gateway.cli.install import CREDENTIALS_DROPIN, DROPIN, MOUNT_ENV, UNIT_CREDENTIALS, systemd_setup, udev_rules
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
        if p.match.vid is None:  # claimed by INQUIRY (DV16): the dock ports' rules cover it
            continue
        assert f'ATTR{{idVendor}}=="{p.match.vid:04x}", ATTR{{idProduct}}=="{p.match.pid:04x}"' in rules
    tag = next(line for line in rules.splitlines() if 'TAG+="systemd"' in line and "RECORDER" in line)
    assert "ACTION" not in tag  # every action: bind must not drop the tag
    mount = next(line for line in rules.splitlines() if "SYSTEMD_WANTS" in line)
    assert 'ENV{ID_FS_USAGE}=="filesystem"' in mount and "partition" not in mount


def test_dock_ports_mount_whatever_storage_a_recorder_becomes() -> None:
    rules = udev_rules(Registry.load(), {"1-1.2": 1, "1-1.3": 2})
    assert 'KERNELS=="1-1.2", ENV{DOCKGATE_VOLUME}="1"' in rules
    # a disk taking vendor SCSI commands (DV16) through its sg node, which needs no CAP_SYS_RAWIO
    assert 'SUBSYSTEM=="scsi_generic", SUBSYSTEMS=="usb", KERNELS=="1-1.2", GROUP="dockgate"' in rules


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


# -- the seams between config, unit and CLI (issue 28) --------------------------------------------

SEAMS_CONFIG = """
[station]
id = "seam-01"
[paths]
state_dir = "state"
staging = "staging"
[recorders]
admin_password_file = "admin_password"
[archive]
backend = "directory"
path = "{archive}"
[evidence]
signing_key_file = "station.key"
[mqtt]
enabled = true
username = "station"
password_file = "mqtt_password"
"""


@pytest.fixture
def etc() -> Iterator[Path]:
    """An /etc/dockgate the service's user (here: nobody) can reach, with root's credentials/ folder."""
    base = Path(tempfile.mkdtemp(prefix="dockgate-etc-", dir="/tmp"))
    base.chmod(0o755)
    creds = base / "credentials"
    creds.mkdir(mode=0o700)
    for name in ("admin_password", "station.key", "mqtt_password"):
        (creds / name).write_text("secret\n")
        (creds / name).chmod(0o600)
    archive = base / "archive"
    archive.mkdir()
    shutil.chown(archive, "nobody")
    (base / "dockgate.toml").write_text(SEAMS_CONFIG.format(archive=archive))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def unit_as_installed(etc: Path, root: Path | None = None) -> ServiceView:
    """The shipped unit running *etc*'s config as nobody, plus the drop-ins setup-systemd wrote under *root*."""
    text = (SYSTEMD / "dockgate.service").read_text().replace("User=dockgate", "User=nobody")
    text = text.replace("SupplementaryGroups=plugdev", "SupplementaryGroups=").replace("/etc/dockgate", str(etc))
    if root is not None:
        text += "\n" + (root / DROPIN).read_text() + "\n" + (root / CREDENTIALS_DROPIN).read_text()
    return ServiceView.parse(text)


def test_the_unit_loads_the_credentials_install_knows_it_loads() -> None:
    view = ServiceView.parse((SYSTEMD / "dockgate.service").read_text())
    assert sorted(view.credentials) == sorted(UNIT_CREDENTIALS)
    assert view.user == "dockgate" and view.config == Path("/etc/dockgate/dockgate.toml")


def test_setup_systemd_gives_the_unit_every_secret_the_config_names(tmp_path: Path) -> None:
    cfg_path = tmp_path / "dockgate.toml"
    cfg_path.write_text(SEAMS_CONFIG.format(archive=tmp_path / "a").replace('[mqtt]', '[mqtt]\nkey_file = "mqtt.key"')
                        .replace('signing_key_file = "station.key"', 'signing_key_file = "station.key"\n'
                                 'national_crypto = true\nsm2_key_file = "sm2.key"')
                        .replace('backend = "directory"\npath', 'backend = "s3"\nbucket = "evidence"\n'
                                 'access_key_file = "s3_access"\nsecret_key_file = "s3_secret"\n#path'))
    root = tmp_path / "root"
    systemd_setup(load_config(cfg_path), root)
    lines = [x for x in (root / CREDENTIALS_DROPIN).read_text().splitlines() if x.startswith("LoadCredential=")]
    creds = tmp_path / "credentials"
    assert lines == [f"LoadCredential={n}:{creds / n}" for n in
                     ("mqtt.key", "mqtt_password", "s3_access", "s3_secret", "sm2.key")]  # not the unit's own two


def test_check_config_finds_a_secret_the_unit_does_not_load_and_setup_systemd_cures_it(etc: Path,
                                                                                      tmp_path: Path) -> None:
    cfg = load_config(etc / "dockgate.toml")
    problems = check_as_service(cfg, unit_as_installed(etc))
    assert any(p.startswith("mqtt.password_file: 'mqtt_password' is not among the unit's credentials")
               for p in problems), problems
    root = tmp_path / "root"
    systemd_setup(cfg, root)
    assert check_as_service(cfg, unit_as_installed(etc, root)) == []


def test_check_config_names_the_credential_file_that_is_missing(etc: Path, tmp_path: Path) -> None:
    cfg = load_config(etc / "dockgate.toml")
    root = tmp_path / "root"
    systemd_setup(cfg, root)
    (etc / "credentials" / "mqtt_password").unlink()
    problems = check_as_service(cfg, unit_as_installed(etc, root))
    assert problems == [f"mqtt.password_file: secret {etc}/credentials/mqtt_password: file not found"]
    r = dockgate("check-config", "--no-service", "-c", str(etc / "dockgate.toml"), check=False)
    assert f"{etc}/credentials/mqtt_password: file not found" in r.stderr  # as root, too: the right path


def test_check_config_finds_an_archive_folder_the_service_cannot_write(etc: Path, tmp_path: Path) -> None:
    cfg = load_config(etc / "dockgate.toml")
    root = tmp_path / "root"
    systemd_setup(cfg, root)
    view = unit_as_installed(etc, root)
    archive = etc / "archive"
    shutil.chown(archive, "root")  # as `mkdir` by root leaves it
    assert check_as_service(cfg, view) == [f"archive.path: {archive}: user 'nobody' cannot write it (chown "
                                           f"nobody: {archive}, or the NAS export's owner)"]
    archive.rmdir()
    assert [p.split(":")[0] + ": " + p.split(": ")[2] for p in check_as_service(cfg, view)] == \
        ["archive.path: no such folder; make it for the service"]
    archive.mkdir()
    shutil.chown(archive, "nobody")
    assert check_as_service(cfg, view) == []
    # without setup-systemd's ReadWritePaths= the sandbox keeps it read-only
    assert [p for p in check_as_service(cfg, unit_as_installed(etc)) if p.startswith("archive.path")] == \
        [f"archive.path: {archive}: read-only in the service's sandbox: run `dockgate setup-systemd` (it writes "
         f"/{DROPIN}), then systemctl daemon-reload"]


def test_the_installed_unit_is_read_with_its_drop_ins_in_order(tmp_path: Path) -> None:
    (tmp_path / "lib/systemd/system/dockgate.service.d").mkdir(parents=True)
    (tmp_path / "lib/systemd/system/dockgate.service").write_text((SYSTEMD / "dockgate.service").read_text())
    (tmp_path / "etc/systemd/system/dockgate.service.d").mkdir(parents=True)
    (tmp_path / "etc/systemd/system/dockgate.service.d/60-credentials.conf").write_text(
        "[Service]\nLoadCredential=mqtt_password:/etc/dockgate/credentials/mqtt_password\n")
    (tmp_path / "etc/systemd/system/dockgate.service.d/70-user.conf").write_text("[Service]\nUser=other\n")
    view = installed_service(tmp_path)
    assert view is not None and view.user == "other"
    assert sorted(view.credentials) == ["admin_password", "mqtt_password", "station.key"]
    assert installed_service(tmp_path / "nothing") is None


def test_a_missing_credential_or_a_config_error_stops_without_a_restart_loop() -> None:
    unit = (SYSTEMD / "dockgate.service").read_text()
    prevent = re.search(r"^RestartPreventExitStatus=(.*)$", unit, re.M)
    assert prevent is not None and {"2", "243"} <= set(prevent.group(1).split())  # 243: CREDENTIALS


def test_admin_restarts_leave_the_crash_restart_budget_room() -> None:
    """systemd counts every start: the README's configure-and-restart, three
    restarts, a stop and a start (6 after the boot's) must leave a crash its
    restart, while a daemon dying at once still stops within the window."""
    unit = (SYSTEMD / "dockgate.service").read_text()
    burst = int(re.search(r"^StartLimitBurst=(\d+)$", unit, re.M).group(1))  # type: ignore[union-attr]
    window = re.search(r"^StartLimitIntervalSec=(\d+)min$", unit, re.M)
    restart_s = int(re.search(r"^RestartSec=(\d+)s$", unit, re.M).group(1))  # type: ignore[union-attr]
    assert window is not None
    assert burst >= 1 + 6 + 1 + 5  # boot, the admin's six, the crash, and room to spare
    assert burst * restart_s < int(window.group(1)) * 60  # a loop of instant deaths hits the limit


def test_modemmanager_keeps_off_the_recorders() -> None:
    assert 'ENV{DOCKGATE_RECORDER}=="1", ENV{ID_MM_DEVICE_IGNORE}="1"' in udev_rules(Registry.load())
