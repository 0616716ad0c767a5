"""ZFY_INFO and the wire protocols: round trips, and malformed input gives a
typed error, never a crash (property-based)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import amba_proto, zfy_info, zfy_proto
from drivers.base import DriverError, MalformedReply
from drivers.detect.sim import SimDetector
from drivers.families import open_recorder
from drivers.profiles import Registry
from drivers.sim.firmware import SimZfyFirmware
from drivers.sim.make import make_recorder
from drivers.zfy_info import ZfyInfo

CJK = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), max_size=10)
DIGITS = st.text("0123456789", min_size=1, max_size=6)


@pytest.mark.parametrize("size", [94, 89])
def test_zfy_info_round_trips_in_both_layouts_with_gbk_names(size: int) -> None:
    info = ZfyInfo("A123456", "012345", "张三", "3201001", "南京市公安局交通警察支队")
    raw = zfy_info.pack(info, size, "gbk")
    assert len(raw) == size
    assert zfy_info.unpack(raw) == info
    short = ZfyInfo("A123456", "012345", "张三", "3201001", "交警支队")
    assert zfy_info.unpack(zfy_info.pack(short, size, "utf-8")) == short


@given(serial=st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=7), officer=DIGITS,
       name=CJK, unit=CJK, size=st.sampled_from([94, 89]), encoding=st.sampled_from(["gbk", "utf-8"]))
def test_zfy_info_round_trip_property(serial: str, officer: str, name: str, unit: str, size: int,
                                      encoding: str) -> None:
    info = ZfyInfo(serial, officer, name, "", unit[:5])
    assert zfy_info.unpack(zfy_info.pack(info, size, encoding), encoding) == info


@pytest.mark.parametrize("text", ["一", "张三", "南京市公安局", "交警一中队", "王", "李四光"])
@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_zfy_info_guesses_the_encoding_of_real_names(text: str, encoding: str) -> None:
    raw = zfy_info.pack(ZfyInfo("A1", "1", text, "", ""), 94, encoding)
    assert zfy_info.unpack(raw).officer_name == text


@given(st.binary(max_size=200))
def test_zfy_info_garbage_is_a_typed_error(data: bytes) -> None:
    try:
        zfy_info.unpack(data)
    except zfy_info.ZfyInfoError:
        pass


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_reply_decoders_never_crash(data: bytes) -> None:
    for decode, err in ((zfy_proto.decode_reply, zfy_proto.FrameError),
                        (amba_proto.decode_reply, amba_proto.FrameError),
                        (zfy_proto.decode_request, zfy_proto.FrameError),
                        (amba_proto.decode_request, amba_proto.FrameError)):
        try:
            decode(data)
        except err:
            pass


def test_frames_round_trip_and_checksum_is_checked() -> None:
    frame = zfy_proto.encode_reply("S002", 1, b"\x00\x01abc")
    assert zfy_proto.decode_reply(frame) == zfy_proto.Reply("S002", 1, b"\x00\x01abc")
    bad = frame[:-3] + (b"00" if frame[-3:-1] != b"00" else b"01") + b"#"
    with pytest.raises(zfy_proto.FrameError, match="checksum"):
        zfy_proto.decode_reply(bad)
    assert amba_proto.decode_reply(amba_proto.encode_reply("Gdv", True, b"X1")).data == b"X1"
    with pytest.raises(amba_proto.FrameError, match="length"):
        amba_proto.decode_reply(b"@Gdv;OK;5;X1;#")


class Liar(SimZfyFirmware):
    """Firmware answering get_info with whatever the test sets."""

    answer = b""

    def handle(self, frame: bytes) -> bytes:
        if zfy_proto.decode_request(frame).cmd == zfy_proto.COMMANDS["get_info"]:
            return self.answer
        return super().handle(frame)


@pytest.mark.parametrize("answer", [
    b"E12RSPS002;1;00;",                                            # short: no checksum, no terminator
    b"\xff\xfe garbage #",                                          # garbage
    zfy_proto.encode_reply("S002", 1, b"x" * 94)[:-3] + b"00#",     # wrong checksum
    zfy_proto.encode_reply("S002", 99, b""),                        # unknown result code
    zfy_proto.encode_reply("S001", 1, b""),                         # reply to another command
    zfy_proto.encode_reply("S002", 1, b"\x00" * 94),                # no serial in ZFY_INFO
    zfy_proto.encode_reply("S002", 1, b"A" * 50),                   # wrong struct size
])
def test_malformed_device_replies_are_typed_errors(tmp_path: Path, answer: bytes) -> None:
    reg = Registry.load()
    folder = tmp_path / "rec"
    make_recorder(folder, clips=1, size=100, serial="S1", officer="1", protocol="zfy")
    det = SimDetector(tmp_path / "dock", 2, reg)
    device = det.describe(1, folder)
    # swap the simulated firmware for the liar, on the same simulated USB device
    from drivers.sim.usb_backend import SIM_USB

    usb_dev = next(d for d in SIM_USB.enumerate_devices() if str(d.address) == device.hints["usb_address"])
    liar = Liar(usb_dev.firmware.dev)
    liar.answer = answer
    usb_dev.firmware = liar
    rec = open_recorder(device, reg.match(device.ids))  # type: ignore[arg-type]
    try:
        rec.unlock("000000")
        with pytest.raises(DriverError) as e:
            rec.identify()
        assert isinstance(e.value, MalformedReply) or "answered" in str(e.value) or e.value.reason == "timeout"
    finally:
        rec.close()
        det._unplug_slot(1)
