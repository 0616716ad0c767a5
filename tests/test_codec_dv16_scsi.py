"""DV16 codec against the CDBs the JieLi SDK builds (reference §2G, source [I]
``USBJL.cpp``: ``USB_WriteToData``, ``GetJL_Password``, ``Init_Device``,
``GetIDCode``, ``GetZFYInfo``, ``SyncDevTime``, ``SetMSDC``,
``ReadDeviceResolution``, ``ReadDeviceBatteryDumpEnergy``, ``SetPassword``,
``SetIDCode``, ``get_cdb_return_status``). Values in replies are ours
(password "123456", clock 2024-03-05 14:07:09 local, as §3); layouts are the
source's. And no parser crashes untyped or hangs on any bytes."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import CommandFailed, DriverError, MalformedReply
from drivers.codec import dv16_scsi as d
from drivers.codec import record


def h(text: str) -> bytes:
    return bytes.fromhex(text)


Z8 = bytes(8)
RECORD_89 = (b"1234567" + b"012345" + b"ZHANG SAN".ljust(32, b"\0") + b"110100000000"
             + b"WEST STATION".ljust(32, b"\0"))


def test_usb_write_to_data_puts_the_value_big_endian_in_2_to_5_and_the_length_in_6_7() -> None:
    assert d.cdb(0xFB, 0x82, 0x01020304, 0x0506) == h("fb 82 01 02 03 04 05 06") + Z8
    assert len(d.cdb(0xFD, 0x81)) == 16


def test_init_device_sends_sub_command_1_with_no_data() -> None:
    assert d.write_cdb("init") == h("fb 82 00 00 00 01 00 00") + Z8


def test_get_idcode_reads_6_bytes_of_sub_command_2() -> None:
    assert d.read_cdb("idcode") == h("fd 81 00 00 00 02 00 06") + Z8
    assert d.parse_idcode(b"ABCDE\0") == "ABCDE"


def test_get_zfy_info_reads_the_89_byte_record_of_sub_command_3() -> None:
    assert d.read_cdb("read_record") == h("fd 81 00 00 00 03 00 59") + Z8
    assert d.write_cdb("write_record") == h("fb 82 00 00 00 04 00 59") + Z8
    assert len(RECORD_89) == 89
    rec = d.parse_record(RECORD_89)
    assert rec == record.OfficerRecord("1234567", "012345", "ZHANG SAN", "110100000000", "WEST STATION")
    assert record.pack(rec, d.RECORD) == RECORD_89


def test_sync_dev_time_writes_sys_time_little_endian_in_local_time() -> None:
    assert d.write_cdb("set_clock") == h("fb 82 00 00 00 05 00 07") + Z8
    payload = d.clock_payload(datetime(2024, 3, 5, 14, 7, 9))
    assert payload == h("e8 07 03 05 0e 07 09")
    assert d.clock_payload(datetime(2024, 3, 5, 14, 7, 9), 8) == payload + b"\0"  # without pack(1)
    assert d.parse_clock(payload) == datetime(2024, 3, 5, 14, 7, 9)


def test_set_msdc_reads_the_sd_status_then_writes_sub_command_6() -> None:
    assert d.read_cdb("sd_status") == h("fd 81 00 00 00 0c 00 04") + Z8
    assert d.parse_sd_status(h("01 00 00 00")) is True
    assert d.parse_sd_status(h("00 00 00 00")) is False  # "sd card offline": the SDK refuses
    assert d.write_cdb("storage") == h("fb 82 00 00 00 06 00 00") + Z8


def test_read_device_resolution_is_two_little_endian_ints() -> None:
    assert d.read_cdb("resolution") == h("fd 81 00 00 00 07 00 08") + Z8
    assert d.parse_resolution(h("80 07 00 00 38 04 00 00")) == (1920, 1080)


def test_battery_is_one_little_endian_int() -> None:
    assert d.read_cdb("battery") == h("fd 81 00 00 00 08 00 04") + Z8
    assert d.parse_battery(h("55 00 00 00")) == 85


def test_get_jl_password_reads_16_bytes_that_the_station_compares_itself() -> None:
    assert d.read_cdb("admin_password") == h("fd 81 00 00 00 0d 00 10") + Z8
    reply = b"123456" + bytes(10)
    assert d.password_payload("123456") == reply
    device = d.parse_password(reply)
    assert d.password_matches(device, "123456")
    assert not d.password_matches(device, "1234567") and not d.password_matches(device, "12345")


def test_a_16_character_password_has_no_nul_and_is_all_16_bytes() -> None:
    assert d.parse_password(b"0123456789abcdef") == b"0123456789abcdef"


def test_the_return_status_is_the_first_of_4_bytes_and_0_is_ok() -> None:
    assert d.read_cdb("return_status") == h("fd 81 00 00 00 0e 00 04") + Z8
    d.check_status(h("00 00 00 00"), "idcode")
    with pytest.raises(CommandFailed) as e:
        d.check_status(h("01 00 00 00"), "idcode")
    assert e.value.permanent


def test_set_password_and_set_idcode_lengths() -> None:
    assert d.write_cdb("set_password") == h("fb 82 00 00 00 0a 00 10") + Z8
    assert d.write_cdb("set_idcode") == h("fb 82 00 00 00 0b 00 20") + Z8


def test_inquiry_matches_as_the_sdk_compares_vendor_and_product() -> None:
    assert d.inquiry_cdb() == h("12 00 00 00 24 00")
    data = d.inquiry_data("DV16", "DEVICE V1.00")
    assert data[8:32] == b"DV16    DEVICE V1.00    "
    inq = d.parse_inquiry(data)
    assert (inq.vendor, inq.product, inq.key) == ("DV16", "DEVICE V1.00", "dv16devicev1.00")
    assert d.DV16_KEY == "dv16devicev1.00"
    # only the concatenation is compared: the split between the fields does not matter
    assert d.parse_inquiry(d.inquiry_data("DV16 DEV", "ICE V1.00")).key == d.DV16_KEY
    assert d.parse_inquiry(d.inquiry_data("Generic", "Flash Disk")).key != d.DV16_KEY


def test_sense_fixed_and_descriptor_formats() -> None:
    assert d.parse_sense(d.sense_data(d.ILLEGAL_REQUEST, 0x20)) == d.Sense(5, 0x20, 0)
    assert d.parse_sense(h("72 02 04 01 00 00 00 00")) == d.Sense(2, 4, 1)
    assert d.parse_sense(b"") is None


@pytest.mark.parametrize(("parse", "raw"), [
    (d.parse_idcode, b"ABCDE"), (d.parse_idcode, b"\0" * 6), (d.parse_idcode, b"AB\xffDE\0"),
    (d.parse_record, RECORD_89[:88]), (d.parse_record, b"\0" * 89),
    (d.parse_clock, h("e8 07 0d 05 0e 07 09")), (d.parse_clock, b"\0" * 6),
    (d.parse_battery, h("65 00 00 00")), (d.parse_battery, h("ff ff ff ff")), (d.parse_battery, b"\0"),
    (d.parse_resolution, bytes(8)), (d.parse_resolution, bytes(4)),
    (d.parse_password, b"123456"), (d.parse_sd_status, b""), (d.parse_status, b"\0" * 5),
    (d.parse_inquiry, bytes(31)), (d.parse_inquiry, bytes(8) + b"DV16\x01   " + bytes(20)),
    (d.parse_sense, h("00 11 22")), (d.parse_cdb, bytes(10)),
])
def test_bad_bytes_are_a_typed_malformed_reply(parse: object, raw: bytes) -> None:
    with pytest.raises(MalformedReply) as e:
        parse(raw)  # type: ignore[operator]
    assert e.value.permanent


PARSERS = [d.parse_idcode, d.parse_record, d.parse_clock, d.parse_battery, d.parse_resolution,
           d.parse_status, d.parse_sd_status, d.parse_password, d.parse_inquiry, d.parse_sense, d.parse_cdb,
           d.parse_read_capacity, lambda b: d.check_status(b, "x")]


@settings(max_examples=400, deadline=200)
@given(parser=st.sampled_from(PARSERS), raw=st.one_of(
    st.binary(max_size=120),
    st.sampled_from([4, 6, 7, 8, 16, 36, 89]).flatmap(lambda n: st.binary(min_size=n, max_size=n))))
def test_no_dv16_parser_crashes_untyped_or_hangs_on_any_bytes(parser: object, raw: bytes) -> None:
    try:
        parser(raw)  # type: ignore[operator]
    except DriverError:
        pass
