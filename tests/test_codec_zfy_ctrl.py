"""Family C codec against the reference's vectors C1-C9 (recorder-protocols.md §3)."""

from __future__ import annotations

from datetime import datetime

import pytest

from drivers.base import CommandFailed, MalformedReply
from drivers.codec import record, zfy_ctrl


def h(text: str) -> bytes:
    return bytes.fromhex(text)


C3_REPLY = h("a1 b2 c3 d4 00 e1 80 30 00 31 32 33 34 35 36 37 00 00 30 31 32 33 34 35 00 00"
             "5a 48 41 4e 47 20 53 41 4e") + bytes(26) + h("31 31 30 31 30 30 30 30 30 30 30 30") + bytes(4) \
    + h("57 45 53 54 20 53 54 41 54 49 4f 4e") + bytes(20)


def test_c1_idcode_request_and_reply() -> None:
    req = zfy_ctrl.idcode_request()
    assert req == h("a1 b2 c3 d4 00 e1 00 20 00 00 00 00 00 00")
    assert len(req) == 0x0E
    assert (zfy_ctrl.OUT_SETUP.request_type, zfy_ctrl.OUT_SETUP.request, zfy_ctrl.OUT_SETUP.value) == (0x40, 0x55, 0xAA)
    assert (zfy_ctrl.IN_SETUP.request_type, zfy_ctrl.IN_SETUP.request, zfy_ctrl.IN_SETUP.value) == (0xC0, 0x55, 0xAA)
    payload = zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 80 20 00 41 42 43 44 45"), 0x20, "idcode")
    assert zfy_ctrl.parse_idcode(payload) == "ABCDE"


def test_c2_admin_login_request_and_reply() -> None:
    assert zfy_ctrl.login_request("123456") == h("a1 b2 c3 d4 00 e1 00 10 00 31 32 33 34 35 36")
    assert zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 80 10 00 00 00 00 00 00 00"), 0x10, "login") == bytes(6)


def test_c3_officer_record_request_and_reply_in_the_100_byte_layout() -> None:
    assert zfy_ctrl.record_request() == h("a1 b2 c3 d4 00 e1 00 30 00") + bytes(100)
    assert len(C3_REPLY) == 109
    payload = zfy_ctrl.parse_reply(C3_REPLY, 0x30, "read_record")
    rec = record.unpack(payload, record.ZFY_CTRL)
    assert rec == record.OfficerRecord("1234567", "012345", "ZHANG SAN", "110100000000", "WEST STATION")
    assert record.pack(rec, record.ZFY_CTRL) == payload


def test_c4_set_clock_request_in_local_time_and_echo() -> None:
    req = zfy_ctrl.clock_request(datetime(2024, 3, 5, 14, 7, 9))
    assert req == h("a1 b2 c3 d4 00 e1 00 41 00 07 e8 03 05 0e 07 09")
    payload = zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 80 41 00 07 e8 03 05 0e 07 09"), 0x41, "set_clock")
    assert zfy_ctrl.parse_clock(payload) == datetime(2024, 3, 5, 14, 7, 9)


def test_c5_resolution_index_1_is_1920x1080() -> None:
    assert zfy_ctrl.resolution_request() == h("a1 b2 c3 d4 00 e1 00 60 00 00")
    payload = zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 80 60 00 01"), 0x60, "resolution")
    assert zfy_ctrl.parse_resolution(payload) == (1920, 1080)


def test_c6_battery_is_a_percentage_byte() -> None:
    assert zfy_ctrl.battery_request() == h("a1 b2 c3 d4 00 e1 00 70 00 00")
    assert zfy_ctrl.parse_battery(zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 80 70 00 55"), 0x70, "battery")) == 85


def test_c7_enter_storage_request_and_reply() -> None:
    assert zfy_ctrl.storage_request() == h("a1 b2 c3 d4 00 e1 00 51 00")
    assert zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 80 51 00"), 0x51, "storage") == b""


def test_c8_set_admin_password_request_and_reply() -> None:
    assert zfy_ctrl.set_password_request("654321") == h("a1 b2 c3 d4 00 e1 00 a2 00 36 35 34 33 32 31")
    assert zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 80 a2 00 00 00 00 00 00 00"), 0xA2, "set_admin_password") \
        == bytes(6)


def test_c9_status_other_than_80_is_a_failure() -> None:
    with pytest.raises(CommandFailed):
        zfy_ctrl.parse_reply(h("a1 b2 c3 d4 00 e1 00 10 00 00 00 00 00 00 00"), 0x10, "login")
    assert zfy_ctrl.reply(0x10, bytes(6), ok=False)[6] == 0x00


def test_c_reply_shorter_than_5_bytes_is_a_failure() -> None:
    with pytest.raises(CommandFailed):
        zfy_ctrl.parse_reply(h("a1 b2 c3"), 0x20, "idcode")


@pytest.mark.parametrize("raw", [
    h("00 00 00 00 00 e1 80 20 00 41 42 43 44 45"),   # magic
    h("a1 b2 c3 d4 00 e2 80 20 00 41 42 43 44 45"),   # class
    h("a1 b2 c3 d4 00 e1 80 30 00 41 42 43 44 45"),   # command
    h("a1 b2 c3 d4 00 e1"),                           # header cut short
])
def test_c_reply_breaking_the_frame_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedReply):
        zfy_ctrl.parse_reply(raw, 0x20, "idcode")


def test_c_password_can_be_zero_padded_to_6_as_the_second_tool_does() -> None:
    assert zfy_ctrl.login_request("1234", pad_to=6) == h("a1 b2 c3 d4 00 e1 00 10 00 31 32 33 34 00 00")
