"""Family E codec against the reference's vectors E1-E3 (recorder-protocols.md §3)."""

from __future__ import annotations

from datetime import datetime

import pytest

from drivers.base import CommandFailed, MalformedReply
from drivers.codec import e12_tcp, record


@pytest.mark.parametrize("order", ["big", "little"])
def test_e1_ping_and_pong_with_either_length_order(order: e12_tcp.ByteOrder) -> None:
    req = e12_tcp.frame(e12_tcp.command("F808"), order)
    assert req == (b"\x00\x00\x00\x0a" if order == "big" else b"\x0a\x00\x00\x00") + b"E12CMDF808"
    reply = e12_tcp.frame(b"E12CMDF809", order)
    assert e12_tcp.length(reply[:4], order) == 10 and reply[4:] == e12_tcp.PONG


def test_e2_set_clock_sends_local_time_text_after_data_follows() -> None:
    assert e12_tcp.frame(e12_tcp.command("S003")) == b"\x00\x00\x00\x0aE12CMDS003"
    text = e12_tcp.time_text(datetime(2024, 3, 5, 14, 7, 9))
    assert e12_tcp.frame(text) == b"\x00\x00\x00\x13" + b"2024-03-05 14:07:09"
    e12_tcp.expect_data(b"E12DATR880", "set_clock")
    e12_tcp.expect_result(b"E12DATR001", e12_tcp.SET_CLOCK_OK, e12_tcp.SET_CLOCK_FAILED, "set_clock")


def test_e2_hour_is_not_zero_padded() -> None:
    assert e12_tcp.time_text(datetime(2017, 5, 15, 8, 0, 0)) == b"2017-05-15 8:00:00"
    assert e12_tcp.parse_time(b"2017-05-15 8:00:00") == datetime(2017, 5, 15, 8, 0, 0)


def test_e3_officer_record_is_89_bytes_after_data_follows() -> None:
    assert e12_tcp.frame(e12_tcp.command("S004")) == b"\x00\x00\x00\x0aE12CMDS004"
    e12_tcp.expect_data(b"E12DATR880", "read_record")
    rec = record.OfficerRecord("1234567", "012345", "张三", "110100000000", "西城分局")
    body = record.pack(rec, record.E12, "gbk")
    msg = e12_tcp.frame(body)
    assert msg[:4] == b"\x00\x00\x00\x59" and len(msg) == 4 + 89
    assert record.unpack(msg[4:], record.E12) == rec


def test_e_refusal_instead_of_data_is_a_command_failure() -> None:
    with pytest.raises(CommandFailed):
        e12_tcp.expect_data(b"E12DATR120", "read_record")


def test_e_storage_failed_result_is_a_command_failure() -> None:
    with pytest.raises(CommandFailed):
        e12_tcp.expect_result(b"E12DATR010", e12_tcp.STORAGE_OK, e12_tcp.STORAGE_FAILED, "storage")


def test_e_absurd_length_is_malformed_rather_than_read() -> None:
    with pytest.raises(MalformedReply):
        e12_tcp.length(b"\x0a\x00\x00\x00", "big")


def test_e_text_replies_are_utf8_as_androids_string_getbytes() -> None:
    assert e12_tcp.parse_text("执法仪A".encode(), "idcode") == "执法仪A"


def test_e_text_that_is_not_utf8_is_malformed_not_guessed() -> None:
    with pytest.raises(MalformedReply):
        e12_tcp.parse_text("执法".encode("gbk"), "idcode")
