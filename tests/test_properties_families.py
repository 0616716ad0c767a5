"""Malformed replies, property-based, for the gaps re-read in the sources
(reference §5): whatever bytes an E12 recorder sends around its silence, and
whatever mixture of ``OK`` and ``Error:`` a BC+ recorder answers, the driver
gives a value or a typed ``DriverError``; never another exception, never a
hang."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import DockedDevice, DriverError, UsbIds
from drivers.codec import bc_text, e12_tcp, record
from drivers.e12_tcp import E12TcpRecorder
from drivers.profiles import Registry, Tcp
from drivers.transport import TcpLink

REGISTRY = Registry.load()
E12 = REGISTRY.default_for("e12-tcp").model_copy(
    update={"tcp": Tcp(port=10086, read_timeout_ms=60, optional_timeout_ms=30)})
RECORD = record.pack(record.OfficerRecord("1234567", "012345", "ZHANG SAN", "110100000000", "WEST"), record.E12,
                     "gbk")


def _peer(sock: socket.socket, junk: bytes, where: str) -> None:
    """An E12 app that answers the probe and the officer record as the
    source does, and the battery read with *junk*: instead of E12DATR880, or
    after it; then silence."""
    def send(payload: bytes) -> None:
        sock.sendall(e12_tcp.frame(payload))

    buf = b""
    with contextlib.suppress(OSError):
        while True:
            while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
                chunk = sock.recv(4096)
                if not chunk:
                    return
                buf += chunk
            n = int.from_bytes(buf[:4], "big")
            msg, buf = buf[4:4 + n], buf[4 + n:]
            code = msg[6:].decode("ascii", "replace")
            if code == "F808":
                send(e12_tcp.PONG)
            elif code == "S009":
                send(e12_tcp.DATA_FOLLOWS)
                send(b"ABCDE")
            elif code == "S004":
                send(e12_tcp.DATA_FOLLOWS)
                send(RECORD)
            elif code == "S007":
                if where == "after_880":
                    send(e12_tcp.DATA_FOLLOWS)
                sock.sendall(junk)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.one_of(st.binary(max_size=40), st.binary(max_size=20).map(e12_tcp.frame),
                      st.sampled_from([b"", e12_tcp.frame(b"85"), e12_tcp.frame(b"E12DATR140"),
                                       e12_tcp.frame(b"101"), b"\x00\x00\x00\x05E1", b"\xff\xff\xff\xff"])),
       where=st.sampled_from(["after_880", "instead_of_880"]))
def test_e12_battery_read_gives_a_number_unknown_or_a_typed_error_on_any_bytes(junk: bytes, where: str) -> None:
    ours, theirs = socket.socketpair()
    peer = threading.Thread(target=_peer, args=(theirs, junk, where), daemon=True)
    peer.start()
    device = DockedDevice(slot=1, ids=UsbIds(0x1209, 0xE120), volume=None, source="test")
    rec = E12TcpRecorder(device, E12)
    rec.link = TcpLink("", 0, rec.label, read_timeout_ms=60, sock=ours)
    start = time.monotonic()
    try:
        rec.probe()
        ident = rec.identify()
        assert ident.battery_pct is None or 0 <= ident.battery_pct <= 100
    except DriverError as e:
        assert str(e)
    finally:
        rec.close()
        theirs.close()
        peer.join(5)
    assert time.monotonic() - start < 3.0


mixed_lines = st.lists(st.one_of(
    st.sampled_from([b"OK\r\n", b"Error: para is error\r\n", b"Error:", b"+UDISKEN:1\r\n", b"+SYSTIME:",
                     b"20240305140709,480,0,CN/Asia/Shanghai\r\n", b"+BATVAL:85\r\n", b"+GBIDCODE:BC004\r\n",
                     b"+GBCFG:1,2,3,4,5\r\n", b"+LOGIN:Sucess\r\n", b"\0", b"\r\n", b"OK", b","]),
    st.binary(max_size=12)), max_size=8).map(b"".join)


@settings(max_examples=400)
@given(reply=mixed_lines, sign=st.sampled_from(["east", "west"]))
def test_bc_replies_mixing_ok_and_error_give_a_value_or_a_typed_error(reply: bytes, sign: str) -> None:
    bc_text.complete(reply)
    for parse in (lambda r: bc_text.check(r, "storage"), bc_text.parse_idcode, bc_text.parse_login,
                  bc_text.parse_record, bc_text.parse_battery,
                  lambda r: bc_text.parse_clock(r, "east" if sign == "east" else "west")):
        try:
            value = parse(reply)
        except DriverError as e:
            assert str(e)
            continue
        if isinstance(value, datetime):
            assert value.tzinfo is not None


@settings(max_examples=200)
@given(chunks=st.lists(mixed_lines, min_size=1, max_size=20))
def test_bc_reply_reading_ends_on_any_byte_stream(chunks: list[bytes]) -> None:
    """The read-until rule over any sequence of transfers: it completes, or
    the stream ends; the verdict is a value or a typed error."""
    buf = b""
    for c in chunks:
        buf += c
        if bc_text.complete(buf):
            try:
                bc_text.check(buf, "storage")
            except DriverError:
                pass
            break
