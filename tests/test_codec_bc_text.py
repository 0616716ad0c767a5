"""Family D codec against the reference's vectors D1-D8 (recorder-protocols.md §3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.base import CommandFailed, MalformedReply, WrongPassword
from drivers.codec import bc_text
from drivers.codec.record import OfficerRecord


def test_d1_idcode_probe_request_and_reply() -> None:
    req = bc_text.command("GBIDCODE?")
    assert req == bytes.fromhex("42 43 2b 47 42 49 44 43 4f 44 45 3f 0d 0a")
    assert bc_text.parse_idcode(b"+GBIDCODE:BC004\r\nOK\r\n") == "BC004"


def test_d2_login_sends_md5_as_32_uppercase_hex_digits() -> None:
    req = bc_text.login("123456")
    assert req == b"BC+LOGIN=admin:E10ADC3949BA59ABBE56E057F20F883E\r\n"
    assert len(req) == 49
    bc_text.parse_login(b"+LOGIN:Sucess\r\nOK\r\n")


def test_d3_officer_record() -> None:
    assert bc_text.command("GBCFG?") == b"BC+GBCFG?\r\n"
    rec = bc_text.parse_record(b"+GBCFG:1234567,012345,ZHANG SAN,110100000000,WEST STATION\r\nOK\r\n")
    assert rec == OfficerRecord("1234567", "012345", "ZHANG SAN", "110100000000", "WEST STATION")


def test_d4_set_clock_sends_utc() -> None:
    local = datetime(2024, 3, 5, 14, 7, 9).astimezone()  # any zone: UTC goes out
    utc = datetime(2024, 3, 5, 6, 7, 9, tzinfo=UTC)
    assert bc_text.set_clock(utc) == b"BC+SYSTIME=20240305060709\r\n"
    assert bc_text.set_clock(local) == f"BC+SYSTIME={local.astimezone(UTC):%Y%m%d%H%M%S}\r\n".encode()
    reply = b"+SYSTIME:20240305060709\r\nOK\r\n"
    assert bc_text.complete(reply)
    assert bc_text.check(reply, "set_clock")


def test_d5_read_clock_is_local_time_with_its_zone_offset() -> None:
    assert bc_text.command("SYSTIME?") == b"BC+SYSTIME?\r\n"
    t = bc_text.parse_clock(b"+SYSTIME:20240305140709,480,0,Asia/Shanghai\r\nOK\r\n")
    assert t == datetime(2024, 3, 5, 6, 7, 9, tzinfo=UTC)


def test_d6_battery_percentage() -> None:
    assert bc_text.command("BATVAL?") == b"BC+BATVAL?\r\n"
    assert bc_text.parse_battery(b"+BATVAL:85\r\nOK\r\n") == 85


def test_d7_enter_storage() -> None:
    assert bc_text.command("UDISKEN=1") == b"BC+UDISKEN=1\r\n"
    assert bc_text.check(b"+UDISKEN:1\r\nOK\r\n", "storage")


def test_d8_wrong_password_error_line_is_refused() -> None:
    reply = b"Error: password\r\n"
    assert bc_text.complete(reply)
    with pytest.raises(WrongPassword):
        bc_text.parse_login(reply)


def test_d_a_bare_ok_never_completes_a_read() -> None:
    assert not bc_text.complete(b"OK\r\n")
    assert not bc_text.complete(b"+X:1\r\n")
    assert not bc_text.complete(b"Error: p")
    assert bc_text.complete(b"+X:1\r\nOK\r\n")


def test_d_text_after_a_nul_does_not_count() -> None:
    assert not bc_text.complete(b"+X\0:1\r\nOK\r\n")


def test_d_error_line_is_a_command_failure() -> None:
    with pytest.raises(CommandFailed, match="para is error"):
        bc_text.check(b"Error: para is error\r\n", "storage")


def test_d_reply_without_its_field_is_malformed() -> None:
    with pytest.raises(MalformedReply):
        bc_text.parse_battery(b"+SOMETHING:85\r\nOK\r\n")


def test_d_serial_string_carries_the_storage_flag() -> None:
    assert bc_text.parse_serial_string("SN0042_1") == ("SN0042", True)
    assert bc_text.parse_serial_string("SN0042") == ("SN0042", None)


def test_d_a_32_character_password_is_sent_as_already_hashed() -> None:
    assert bc_text.password_hash("E10ADC3949BA59ABBE56E057F20F883E") == "E10ADC3949BA59ABBE56E057F20F883E"


# -- reference §5: the SDK's verdict order, the offset sign as a setting ------------
def test_d_a_reply_with_both_ok_and_error_is_a_success_as_the_sdk_judges_it() -> None:
    for reply in (b"Error: busy\r\n+UDISKEN:1\r\nOK\r\n", b"+UDISKEN:1\r\nOK\r\nError: busy\r\n"):
        assert "OK\r\n" in bc_text.check(reply, "storage")


def test_d_an_error_without_ok_is_still_a_command_failure() -> None:
    with pytest.raises(CommandFailed):
        bc_text.check(b"+UDISKEN:0\r\nError: busy\r\n", "storage")


def test_d_ok_after_a_nul_does_not_count_as_the_sdk_reads_a_c_string() -> None:
    with pytest.raises(CommandFailed):
        bc_text.check(b"Error: busy\r\n\0OK\r\n", "storage")


def test_d_systime_offset_east_is_the_default_reading() -> None:
    reply = b"+SYSTIME:20240305140709,480,0,Asia/Shanghai\r\nOK\r\n"
    assert bc_text.parse_clock(reply) == datetime(2024, 3, 5, 6, 7, 9, tzinfo=UTC)


def test_d_systime_offset_west_reads_the_same_reply_the_other_way() -> None:
    reply = b"+SYSTIME:20240305140709,-480,0,Asia/Shanghai\r\nOK\r\n"
    assert bc_text.parse_clock(reply, "west") == datetime(2024, 3, 5, 6, 7, 9, tzinfo=UTC)
