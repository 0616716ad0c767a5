"""The officer record in both wire layouts, and what a recorder may answer:
any bytes a device sends give a typed driver error, never a crash
(property-based), and a lying firmware behind the real transport gives a
typed, permanent error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import DriverError, MalformedReply
from drivers.codec import amba_ascii, amba_ctrl, bc_text, e12_tcp, record, zfy_ctrl, zzx_json
from drivers.codec.record import OfficerRecord
from drivers.detect.sim import SimDetector
from drivers.families import open_recorder
from drivers.profiles import Registry
from drivers.sim.firmware import SimFirmware
from drivers.sim.make import make_recorder

CJK = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), max_size=10)
DIGITS = st.text("0123456789", min_size=1, max_size=6)
LAYOUTS = [record.ZFY_CTRL, record.E12]


@pytest.mark.parametrize("layout", LAYOUTS, ids=["zfy-ctrl-100", "e12-89"])
def test_officer_record_round_trips_with_gbk_names(layout: record.Layout) -> None:
    rec = OfficerRecord("A123456", "012345", "张三", "3201001", "南京市公安局交通警察支队")
    raw = record.pack(rec, layout, "gbk")
    assert len(raw) == layout.size
    assert record.unpack(raw, layout) == rec


@given(serial=st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=7), officer=DIGITS,
       name=CJK, unit=CJK, layout=st.sampled_from(LAYOUTS), encoding=st.sampled_from(["gbk", "utf-8"]))
def test_officer_record_round_trip_property(serial: str, officer: str, name: str, unit: str,
                                            layout: record.Layout, encoding: str) -> None:
    rec = OfficerRecord(serial, officer, name, "", unit[:5])
    assert record.unpack(record.pack(rec, layout, encoding), layout, encoding) == rec


@pytest.mark.parametrize("text", ["一", "张三", "南京市公安局", "交警一中队", "王", "李四光"])
@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_officer_record_guesses_the_encoding_of_real_names(text: str, encoding: str) -> None:
    raw = record.pack(OfficerRecord("A1", "1", text, "", ""), record.ZFY_CTRL, encoding)
    assert record.unpack(raw, record.ZFY_CTRL).officer_name == text


@given(st.binary(max_size=200), st.sampled_from(LAYOUTS))
def test_officer_record_garbage_is_a_typed_error(data: bytes, layout: record.Layout) -> None:
    try:
        record.unpack(data, layout)
    except MalformedReply:
        pass


PARSERS: list[Callable[[bytes], object]] = [
    amba_ctrl.login_accepted, amba_ascii.version_ok, amba_ascii.parse_device_id,
    amba_ascii.parse_frame, lambda b: zfy_ctrl.parse_reply(b, 0x30, "read_record"), zfy_ctrl.parse_request,
    zfy_ctrl.parse_clock, zfy_ctrl.parse_idcode, bc_text.parse_idcode, bc_text.parse_login, bc_text.parse_record,
    bc_text.parse_clock, bc_text.parse_battery, bc_text.parse_command,
    lambda b: e12_tcp.expect_data(b, "read_record"), e12_tcp.parse_time, lambda b: e12_tcp.length(b[:4]),
    lambda b: zzx_json.parse_reply(b, 3, "read_record"), zzx_json.parse_request,
]


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_no_reply_parser_crashes_on_any_bytes(data: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(data)
        except DriverError:
            pass


@given(st.text(max_size=80))
def test_bc_text_replies_as_text_never_crash(text: str) -> None:
    for parse in (bc_text.parse_idcode, bc_text.parse_record, bc_text.parse_clock, bc_text.parse_battery):
        try:
            parse((text + "\r\nOK\r\n").encode("utf-8", "surrogateescape"))
        except DriverError:
            pass


# -- lying firmware behind the real transports ---------------------------------------------------

def liar(protocol: str, command: str, answer: bytes) -> Callable[[SimFirmware], None]:
    """Make *protocol*'s firmware answer *command* with *answer*."""
    def install(fw: SimFirmware) -> None:
        if protocol == "zfy-ctrl":
            real = fw.control_in  # type: ignore[attr-defined]

            def control_in(setup: object) -> bytes:
                out: bytes = real(setup)
                return answer if out[7:8] == bytes([int(command, 16)]) else out
            fw.control_in = control_in  # type: ignore[attr-defined]
        elif protocol == "bc-text":
            real_answer = fw._answer  # type: ignore[attr-defined]
            fw._answer = (lambda text: answer.decode("latin-1")  # type: ignore[attr-defined]
                          if text.startswith(command) else real_answer(text))
        else:
            real_z = fw._answer  # type: ignore[attr-defined]
            fw._answer = (lambda msg_id, body: {"raw": answer.decode("latin-1")}  # type: ignore[attr-defined]
                          if str(msg_id) == command else real_z(msg_id, body))
    return install


@pytest.mark.parametrize(("protocol", "command", "answer"), [
    ("zfy-ctrl", "30", bytes.fromhex("a1b2c3d4 00e1 8031 00") + bytes(100)),        # reply for another command
    ("zfy-ctrl", "30", bytes.fromhex("00000000 00e1 8030 00") + bytes(100)),        # no magic
    ("zfy-ctrl", "30", bytes.fromhex("a1b2c3d4 00e1 8030 00") + bytes(100)),        # no serial in the record
    ("bc-text", "GBCFG?", b"+GBCFG:1,2\r\nOK\r\n"),                                 # too few fields
    ("bc-text", "GBCFG?", b"+OTHER:1\r\nOK\r\n"),                                    # no +GBCFG:
    ("zzx-json", "3", b"x"),                                                         # no serial in the body
])
def test_a_malformed_device_reply_is_a_typed_permanent_error(tmp_path: Path, protocol: str, command: str,
                                                             answer: bytes) -> None:
    reg = Registry.load()
    folder = tmp_path / "rec"
    make_recorder(folder, clips=1, size=100, serial="S1", officer="1", protocol=protocol)
    det = SimDetector(tmp_path / "dock", 2, reg)
    device = det.describe(1, folder)
    docked = det.docked(1)
    assert docked is not None and docked.firmware is not None
    liar(protocol, command, answer)(docked.firmware)
    rec = open_recorder(device, reg.match(device.ids))  # type: ignore[arg-type]
    try:
        rec.probe()
        rec.unlock("000000")
        with pytest.raises(DriverError) as e:
            rec.identify()
        assert e.value.permanent and e.value.reason in ("malformed_reply", "command_failed")
        assert e.value.device  # names the slot and device
    finally:
        rec.close()
        det._unplug_slot(1)
