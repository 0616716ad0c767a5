"""One driver suite every protocol family passes, on simulated hardware served
through the real library paths (volume, pyusb core on the simulated bus,
pyserial on a pty)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.base import DeviceGone, DeviceTimeout, DriverError, Recorder, WrongPassword
from drivers.detect.sim import SimDetector
from drivers.families import open_recorder
from drivers.profiles import Registry
from drivers.sim.make import make_recorder

FAMILIES = ["ums", "zfy", "zfy-serial", "amba"]
LOCKED = ["zfy", "zfy-serial", "amba"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def dock(tmp_path: Path, registry: Registry, protocol: str, password: str = "000000",
         offset: float = -120.0) -> tuple[SimDetector, Recorder, Path]:
    folder = tmp_path / f"rec-{protocol}"
    make_recorder(folder, clips=3, size=300_000, serial="SN123456", officer="0654321", unit="交警一中队",
                  protocol=protocol, password=password, clock_offset_s=offset)
    det = SimDetector(tmp_path / "dock", 4, registry)
    device = det.describe(1, folder)
    profile = registry.match(device.ids)
    assert profile is not None and profile.protocol == protocol
    return det, open_recorder(device, profile), folder


@pytest.fixture(params=FAMILIES)
def docked(request: pytest.FixtureRequest, tmp_path: Path, registry: Registry
           ) -> Iterator[tuple[Recorder, Path, str]]:
    det, rec, folder = dock(tmp_path, registry, request.param)
    yield rec, folder, request.param
    rec.close()
    det._unplug_slot(1)


def test_storage_is_hidden_until_unlocked(docked: tuple[Recorder, Path, str]) -> None:
    rec, _folder, _ = docked
    with pytest.raises(DriverError):
        list(rec.list_clips(lambda s: None))


def test_identify_clock_list_open_delete(docked: tuple[Recorder, Path, str]) -> None:
    rec, folder, protocol = docked
    rec.unlock("000000")
    ident = rec.identify()
    assert ident.serial == "SN123456"
    assert ident.officer == "0654321"
    assert ident.unit == "交警一中队"
    clock = rec.read_clock()
    if protocol == "ums":
        assert clock is None and rec.set_clock(datetime.now(UTC)) is False
    else:
        assert clock is not None
        drift = (clock - datetime.now(UTC)).total_seconds()
        assert -122 <= drift <= -119  # device.toml's offset, to the clock's 1 s resolution
        assert rec.set_clock(datetime.now(UTC))
        after = rec.read_clock()
        assert after is not None and abs((after - datetime.now(UTC)).total_seconds()) < 2
    refs = list(rec.list_clips(lambda s: None))
    files = sorted(p for p in (folder / "storage").rglob("*") if p.is_file())
    assert len(refs) == len(files) == 3
    for ref in refs:
        with rec.open_clip(ref) as f:
            data = f.read()
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(
            (folder / "storage" / ref.relpath.decode()).read_bytes()).hexdigest()
    rec.delete_clip(refs[0])
    assert len(list(rec.list_clips(lambda s: None))) == 2
    rec.close()
    rec.close()  # twice is fine


@pytest.mark.parametrize("protocol", LOCKED)
def test_wrong_password_is_refused_and_storage_stays_hidden(tmp_path: Path, registry: Registry,
                                                            protocol: str) -> None:
    det, rec, _ = dock(tmp_path, registry, protocol, password="135790")
    try:
        with pytest.raises(WrongPassword) as e:
            rec.unlock("000000")
        assert e.value.permanent
        with pytest.raises(DriverError):
            list(rec.list_clips(lambda s: None))
    finally:
        rec.close()
        det._unplug_slot(1)


@pytest.mark.parametrize("protocol", ["zfy", "amba"])
def test_unplugged_usb_device_gives_a_typed_error(tmp_path: Path, registry: Registry, protocol: str) -> None:
    det, rec, _ = dock(tmp_path, registry, protocol)
    rec.unlock("000000")
    det._unplug_slot(1)
    with pytest.raises((DeviceGone, DeviceTimeout)):
        rec.identify()
    rec.close()
