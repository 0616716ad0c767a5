"""Family F through adb, as a station reaches a ZZX recorder: the real
``adb`` client (Debian's package) and its server talk adb's wire protocol to
a simulated adbd; the app listens only after the ``com.zzx.sdk`` broadcast,
and the JSON lines go through an ``adb forward``. Also what the recorder's
refusals and app builds look like to the station."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.adb import Adb
from drivers.base import DeviceGone, StorageRefused
from drivers.codec import zzx_json
from drivers.detect.sim import SimDetector
from drivers.families import open_recorder
from drivers.profiles import Registry, Zzx
from drivers.sim.bus import Docked
from drivers.sim.make import make_recorder
from drivers.zzx_json import ZzxJsonRecorder

REGISTRY = Registry.load()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def adb_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private adb server for this test (adb starts it on first use); fails,
    never skips, without the adb package."""
    adb = shutil.which("adb")
    assert adb is not None, "the adb package is missing (scripts/setup.sh dev installs it)"
    port = str(_free_port())
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", port)
    yield port
    subprocess.run([adb, "kill-server"], capture_output=True, timeout=20, check=False)


class ZzxDock:
    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        folder = tmp_path / "rec-zzx"
        make_recorder(folder, clips=1, size=1000, serial="ZX12345", officer="065432", unit="交警一中队",
                      protocol="zzx-json")
        with open(folder / "device.toml", "a", encoding="utf-8") as f:
            f.write("adb = true\n" + extra)
        self.det = SimDetector(tmp_path / "dock", 2, REGISTRY)
        self.device = self.det.describe(1, folder)
        profile = REGISTRY.match(self.device.ids)
        assert profile is not None and profile.protocol == "zzx-json"
        self.rec = open_recorder(self.device, profile)
        assert isinstance(self.rec, ZzxJsonRecorder)

    @property
    def docked(self) -> Docked:
        d = self.det.docked(1)
        assert d is not None
        return d

    def close(self) -> None:
        self.rec.close()
        self.det._unplug_slot(1)


@pytest.fixture
def zzx(tmp_path: Path, adb_server: str) -> Iterator[ZzxDock]:
    d = ZzxDock(tmp_path)
    yield d
    d.close()


def test_the_station_broadcasts_the_port_then_forwards_to_it_and_talks_json(zzx: ZzxDock) -> None:
    zzx.rec.probe()
    zzx.rec.unlock("000000")
    ident = zzx.rec.identify()
    assert (ident.serial, ident.officer, ident.unit) == ("ZX12345", "065432", "交警一中队")
    adbd = zzx.docked.adbd
    assert adbd is not None
    assert adbd.services[:2] == ["shell:am broadcast -a com.zzx.sdk --ei port 8888", "tcp:8888"]


def test_the_forward_is_removed_when_the_dock_ends(zzx: ZzxDock) -> None:
    zzx.rec.probe()
    assert isinstance(zzx.rec, ZzxJsonRecorder) and zzx.rec.adb is not None
    adb = zzx.rec.adb
    zzx.rec.close()
    assert adb.ran[-1][:2] == ["forward", "--remove"]
    assert "tcp:8888" not in adb._run("forward", "--list", device=False)


def test_before_the_broadcast_the_app_does_not_listen(zzx: ZzxDock) -> None:
    adbd = zzx.docked.adbd
    assert adbd is not None
    adb = Adb(adbd.serial, "test")
    adb.connect()
    local = adb.forward(8888)  # adb accepts the forward; the phone refuses the stream
    with socket.create_connection(("127.0.0.1", local), timeout=5) as s:
        s.settimeout(5)
        assert s.recv(1) == b""
    assert "tcp:8888" in adbd.services and not any(s.startswith("shell:") for s in adbd.services)


def test_a_broadcast_the_app_ignores_leaves_the_dock_a_typed_transient_error(tmp_path: Path,
                                                                             adb_server: str) -> None:
    d = ZzxDock(tmp_path)
    try:
        profile = d.rec.profile
        d.rec = ZzxJsonRecorder(d.device, profile.model_copy(update={
            "zzx": Zzx(action="com.other.sdk"),
            "tcp": profile.tcp.model_copy(update={"connect_timeout_ms": 500})}))
        with pytest.raises(DeviceGone) as e:
            d.rec.probe()
        assert not e.value.permanent and "broadcast" in str(e.value)
    finally:
        d.close()


def test_without_adb_installed_the_dock_fails_typed_and_says_which_package(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    d = ZzxDock(tmp_path)
    try:
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        with pytest.raises(DeviceGone, match="package adb"):
            d.rec.probe()
    finally:
        d.close()


def test_a_recording_recorder_refuses_storage_and_the_station_says_why(tmp_path: Path, adb_server: str) -> None:
    d = ZzxDock(tmp_path, "recording = true\n")
    try:
        d.rec.probe()
        d.rec.unlock("000000")
        with pytest.raises(StorageRefused) as e:
            d.rec.enter_storage()
        assert not e.value.permanent and e.value.reason == "storage_refused"
        assert "cut time" in str(e.value) and "video cut" in str(e.value)
    finally:
        d.close()


def test_the_p5x_build_keeps_the_user_and_model_numbers_out_of_name_and_unit(tmp_path: Path,
                                                                           adb_server: str) -> None:
    d = ZzxDock(tmp_path, 'zzx_build = "p5x_szlj"\n')
    try:
        profile = d.rec.profile
        d.rec = ZzxJsonRecorder(d.device, profile.model_copy(update={"zzx": Zzx(build="p5x_szlj")}))
        d.rec.probe()
        d.rec.unlock("000000")
        ident = d.rec.identify()
        assert (ident.serial, ident.officer, ident.officer_name, ident.unit) == ("12345", "065432", None,
                                                                                  "交警一中队")
    finally:
        d.close()


def test_the_standard_build_reads_every_field_where_the_source_puts_it() -> None:
    body = {"serial": "ZX12345", "policeNo": "065432", "policeName": "张三", "groupNo": "110100", "groupName": "西城"}
    rec = zzx_json.record(body)
    assert (rec.serial, rec.officer, rec.officer_name, rec.unit_no, rec.unit_name) == (
        "ZX12345", "065432", "张三", "110100", "西城")
