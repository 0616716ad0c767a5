"""Family F codec against the reference's vector F1 (recorder-protocols.md §3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.base import CommandFailed, MalformedReply, WrongPassword
from drivers.codec import zzx_json

F1_REPLY = b'{"header":{"version":"1.0","id":5,"device":"ZZX2080"},"body":{"password":"true","Result":"true"}}\r\n'


def test_f1_set_clock_request_in_epoch_milliseconds() -> None:
    utc = datetime(2024, 3, 5, 6, 7, 9, tzinfo=UTC)  # 14:07:09 at UTC+8
    req = zzx_json.request(5, {"password": "123456", "Time": zzx_json.epoch_ms(utc)})
    assert req == b'{"header":{"id":"5"},"body":{"password":"123456","Time":"1709618829000"}}\n'


def test_f1_reply_accepted() -> None:
    body = zzx_json.parse_reply(F1_REPLY, 5, "set_clock")
    zzx_json.check_result(body, "set_clock")


def test_f1_reply_is_what_the_device_side_writes() -> None:
    assert zzx_json.reply(5, {"password": "true", "Result": "true"}) == F1_REPLY


def test_f_wrong_password_reply_is_refused() -> None:
    body = zzx_json.parse_reply(b'{"header":{"version":"1.0","id":3,"device":"ZZX2080"},"body":{"password":"false"}}\r\n',
                                3, "read_record")
    with pytest.raises(WrongPassword):
        zzx_json.check_password(body)


def test_f_storage_refused_while_recording_is_transient() -> None:
    with pytest.raises(CommandFailed) as e:
        zzx_json.check_result({"password": "true", "Result": "false"}, "storage", permanent=False)
    assert not e.value.permanent


def test_f_reply_for_another_id_is_malformed() -> None:
    with pytest.raises(MalformedReply):
        zzx_json.parse_reply(F1_REPLY, 6, "storage")


def test_f_device_drops_text_before_the_first_brace() -> None:
    assert zzx_json.parse_request(b'xx{"header":{"id":"2"},"body":{}}\n') == (2, {})


def test_f_read_clock_is_epoch_seconds() -> None:
    assert zzx_json.parse_epoch_s("1709618829") == datetime(2024, 3, 5, 6, 7, 9, tzinfo=UTC)
