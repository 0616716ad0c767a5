"""Family B codec against the reference's vectors B1-B4 (recorder-protocols.md §3)."""

from __future__ import annotations

from datetime import datetime

import pytest

from drivers.base import MalformedReply
from drivers.codec import amba_ascii

T = datetime(2024, 3, 5, 14, 7, 9)  # host local


def test_b1_version_request_bytes() -> None:
    want = bytes.fromhex("40 56 65 72 3b 38 3b 30 30 30 30 30 30 30 30 3b 23")
    assert amba_ascii.version() == want == b"@Ver;8;00000000;#"
    assert len(want) == 17


def test_b1_version_reply_must_contain_ver_ok() -> None:
    assert amba_ascii.version_ok(b"@Ver;OK;#")
    assert not amba_ascii.version_ok(b"@Ver;ERROR;#")


def test_b2_device_id_request_and_reply() -> None:
    assert amba_ascii.device_id() == b"@Gdv;8;12345678;#"
    assert amba_ascii.parse_device_id(b"@Gdv;8;BC123456;#") == "BC123456"


def test_b2_reply_not_starting_with_gdv_is_malformed() -> None:
    with pytest.raises(MalformedReply):
        amba_ascii.parse_device_id(b"@Ver;OK;#")


def test_b3_set_date_and_time_in_local_time_with_the_declared_length_quirk() -> None:
    assert amba_ascii.set_date(T) == b"@Sdt;8;20240305;#"
    assert amba_ascii.set_time(T) == b"@Stm;6;14070900;#"


def test_b4_storage_request() -> None:
    assert amba_ascii.storage() == b"@ATH;8;12345678;#"


def test_b_frames_parse_back_on_the_device_side() -> None:
    assert amba_ascii.parse_frame(b"@Stm;6;14070900;#") == ("Stm", "14070900")
    with pytest.raises(MalformedReply):
        amba_ascii.parse_frame(b"BC+GBIDCODE?\r\n")
