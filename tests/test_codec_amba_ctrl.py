"""Family A codec against the reference's vectors A1-A3 (recorder-protocols.md §3)."""

from __future__ import annotations

import pytest

from drivers.base import CommandFailed, MalformedReply
from drivers.codec import amba_ctrl


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_a1_login_request_setup_and_packet() -> None:
    assert str(amba_ctrl.LOGIN_SETUP) == "40 55 0080 0000 0040"
    assert amba_ctrl.login_packet("123456") == h("a1 12 00 12 31 32 33 34 35 36") + bytes(54)


def test_a1_reply_byte_2_is_01_means_accepted() -> None:
    assert str(amba_ctrl.REPLY_SETUP) == "c0 55 0080 0000 000a"
    assert amba_ctrl.login_accepted(h("00 00 01 00 00 00 00 00 00 00"))


def test_a2_wrong_password_reply_is_refused() -> None:
    assert not amba_ctrl.login_accepted(h("00 00 00 00 00 00 00 00 00 00"))


def test_a3_storage_request_uses_brequest_0x50() -> None:
    assert str(amba_ctrl.STORAGE_SETUP) == "40 50 0080 0000 0040"
    assert amba_ctrl.storage_packet() == h("a1 23 00 23") + bytes(60)


def test_a_reply_too_short_for_the_verdict_is_malformed() -> None:
    with pytest.raises(MalformedReply):
        amba_ctrl.login_accepted(h("00 00"))


def test_a_password_longer_than_60_bytes_does_not_fit() -> None:
    with pytest.raises(CommandFailed):
        amba_ctrl.login_packet("x" * 61)
