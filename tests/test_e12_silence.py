"""Family E's recorder app goes silent on an unset value (reference §5): it
answers E12DATR880 and then nothing, yet keeps reading the connection. An
optional read (the battery) that stays silent is recorded as unknown and the
dock goes on; a required one fails typed. Text the app sends back is UTF-8."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.base import DeviceTimeout, Recorder, WrongPassword
from drivers.detect.sim import SimDetector
from drivers.e12_tcp import E12TcpRecorder
from drivers.profiles import Registry, Tcp
from drivers.sim.firmware import SimFirmware
from drivers.sim.make import make_recorder

REGISTRY = Registry.load()
#: a short silence budget keeps these tests fast; the family's default is the app's 5 s
QUICK = Tcp(port=10086, read_timeout_ms=400, optional_timeout_ms=200)


class E12Dock:
    def __init__(self, tmp_path: Path, extra: str, password: str = "000000") -> None:
        self.folder = tmp_path / "rec-e12"
        make_recorder(self.folder, clips=1, size=1000, serial="SN12345", officer="065432", protocol="e12-tcp",
                      password=password)
        with open(self.folder / "device.toml", "a", encoding="utf-8") as f:
            f.write(extra)
        self.det = SimDetector(tmp_path / "dock", 2, REGISTRY)
        device = self.det.describe(1, self.folder)
        profile = REGISTRY.match(device.ids)
        assert profile is not None
        self.rec: Recorder = E12TcpRecorder(device, profile.model_copy(update={"tcp": QUICK}))

    @property
    def firmware(self) -> SimFirmware:
        docked = self.det.docked(1)
        assert docked is not None and docked.firmware is not None
        return docked.firmware

    def close(self) -> None:
        self.rec.close()
        self.det._unplug_slot(1)


@pytest.fixture
def no_battery(tmp_path: Path) -> Iterator[E12Dock]:
    d = E12Dock(tmp_path, "battery_set = false\n")
    yield d
    d.close()


def test_an_unset_battery_is_recorded_as_unknown_and_the_dock_goes_on(no_battery: E12Dock) -> None:
    rec = no_battery.rec
    rec.probe()
    rec.unlock("000000")
    ident = rec.identify()
    assert (ident.serial, ident.battery_pct) == ("SN12345", None)
    assert rec.read_clock() is not None  # the same connection still answers after the silence
    assert no_battery.firmware.log[-2:] == ["S007", "N030"]


def test_the_silent_battery_costs_no_more_than_the_optional_timeout(no_battery: E12Dock) -> None:
    rec = no_battery.rec
    rec.probe()
    rec.unlock("000000")
    start = time.monotonic()
    rec.identify()
    assert time.monotonic() - start < 2.0  # 0.2 s of silence allowed, not the 5 s read timeout


def test_an_unset_admin_password_fails_the_dock_typed_and_nothing_is_written(tmp_path: Path) -> None:
    d = E12Dock(tmp_path, "", password="")
    try:
        d.rec.probe()
        with pytest.raises(DeviceTimeout) as e:
            d.rec.unlock("000000")
        assert not e.value.permanent and "E12DATR880" in str(e.value)
        assert d.firmware.log == ["F808", "S009", "S010"]
    finally:
        d.close()


def test_text_replies_are_read_as_utf8(tmp_path: Path) -> None:
    d = E12Dock(tmp_path, 'idcode = "执法A"\n', password="密码12")
    try:
        assert d.rec.probe().idcode == "执法A"
        d.rec.unlock("密码12")  # compared on the station as the app sent it: UTF-8
        with pytest.raises(WrongPassword):
            d.rec.unlock("密码13")
    finally:
        d.close()
