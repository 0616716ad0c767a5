"""A minimal simulated adbd: the Android side of adb's public wire protocol
over TCP, enough for the real ``adb`` client to ``adb connect`` to it, send
the ZZX app's port broadcast (``shell:am broadcast -a com.zzx.sdk --ei port
N``) and forward a station port to the app's JSON server (``tcp:N``).

Messages are a 24-byte little-endian header (command, arg0, arg1, data
length, data checksum, command XOR 0xffffffff) and the data. The device
answers the host's CNXN with its own, with no AUTH (a device without
``ro.adb.secure``); streams are OPEN -> OKAY, WRTE -> OKAY, CLSE. Only what
the station uses is served: any other service is refused with CLSE.

The app listens only after the broadcast (reference §2F, §5): until a
broadcast named a port, a ``tcp:`` stream to it is refused, as a phone whose
app has no server socket refuses the connection."""

from __future__ import annotations

import contextlib
import logging
import shlex
import socket
import struct
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

CNXN, OPEN, OKAY, WRTE, CLSE = (int.from_bytes(c, "little") for c in (b"CNXN", b"OPEN", b"OKAY", b"WRTE", b"CLSE"))
VERSION = 0x01000001  # skips data checksums
MAX_DATA = 4096
HEADER = struct.Struct("<6I")
BANNER = b"device::ro.product.name=dockgate-sim;ro.product.model=ZZX2080;ro.product.device=zzx;features=\0"


def message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return HEADER.pack(command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF) + data


class _Stream:
    """One device-side stream relaying a TCP connection to the host."""

    def __init__(self, conn: _Connection, local: int, remote: int, sock: socket.socket) -> None:
        self.conn, self.local, self.remote, self.sock = conn, local, remote, sock
        self.acked = threading.Event()
        self.closed = False
        threading.Thread(target=self._pump, name=f"sim-adbd-stream-{local}", daemon=True).start()

    def _pump(self) -> None:
        try:
            while not self.closed:
                data = self.sock.recv(MAX_DATA)
                if not data:
                    break
                self.acked.clear()
                self.conn.send(message(WRTE, self.local, self.remote, data))
                if not self.acked.wait(10):
                    break
        except OSError:
            pass
        self.close(tell=True)

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def close(self, tell: bool) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
        if tell:
            self.conn.send(message(CLSE, self.local, self.remote))
        self.conn.streams.pop(self.local, None)


class _Connection:
    def __init__(self, adbd: SimAdbd, sock: socket.socket) -> None:
        self.adbd, self.sock = adbd, sock
        self.lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1

    def send(self, data: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):
            self.sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def serve(self) -> None:
        try:
            while True:
                head = self._recv_exact(HEADER.size)
                if head is None:
                    return
                command, arg0, arg1, length, _check, magic = HEADER.unpack(head)
                if magic != command ^ 0xFFFFFFFF or length > 1 << 20:
                    return
                data = self._recv_exact(length) if length else b""
                if data is None:
                    return
                self._handle(command, arg0, arg1, data)
        except OSError:
            return
        finally:
            for s in list(self.streams.values()):
                s.close(tell=False)
            with contextlib.suppress(OSError):
                self.sock.close()

    def _handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == CNXN:
            self.send(message(CNXN, VERSION, MAX_DATA, BANNER))
        elif command == OPEN:
            self._open(arg0, data.rstrip(b"\0").decode("utf-8", "replace"))
        elif command == WRTE:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.write(data)
                self.send(message(OKAY, arg1, arg0))
        elif command == OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.acked.set()
        elif command == CLSE:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.close(tell=False)

    def _open(self, remote: int, service: str) -> None:
        local = self.next_id
        self.next_id += 1
        self.adbd.services.append(service)
        if service.startswith("shell:"):
            output = self.adbd.shell(service[len("shell:"):])
            if output is None:
                self.send(message(CLSE, 0, remote))
                return
            # a one-shot service: its output, then the close (the host acknowledges the write)
            self.send(message(OKAY, local, remote) + message(WRTE, local, remote, output)
                      + message(CLSE, local, remote))
            return
        if service.startswith("tcp:") and service[4:].isdigit():
            target = self.adbd.listening.get(int(service[4:]))
            if target is None:
                self.send(message(CLSE, 0, remote))  # nothing listens on the phone: refused
                return
            try:
                sock = socket.create_connection(target, timeout=3)
            except OSError:
                self.send(message(CLSE, 0, remote))
                return
            sock.settimeout(None)
            self.streams[local] = _Stream(self, local, remote, sock)
            self.send(message(OKAY, local, remote))
            return
        self.send(message(CLSE, 0, remote))


class SimAdbd:
    """A simulated phone's adbd on 127.0.0.1 (``adb connect 127.0.0.1:<port>``).

    *on_broadcast(action, int_extras)* returns the (host, port) the app now
    listens on for a broadcast it accepts, or None; the port the broadcast
    named then accepts ``tcp:`` streams."""

    def __init__(self, on_broadcast: Callable[[str, dict[str, int]], tuple[str, int] | None]) -> None:
        self.on_broadcast = on_broadcast
        #: phone port -> where the simulated app really listens
        self.listening: dict[int, tuple[str, int]] = {}
        #: every service the host opened, in order (for tests)
        self.services: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self.listener.getsockname()[:2]
        self.serial = f"{self.host}:{self.port}"
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, name=f"sim-adbd-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._conns.append(sock)
            threading.Thread(target=_Connection(self, sock).serve, name=f"sim-adbd-{self.port}-conn",
                             daemon=True).start()

    def shell(self, command: str) -> bytes | None:
        """``am broadcast -a <action> [--ei <key> <int>]...``; other commands: None (refused)."""
        try:
            words = shlex.split(command)
        except ValueError:
            return None
        if words[:2] != ["am", "broadcast"]:
            return None
        action, extras, i = "", {}, 2
        while i < len(words):
            if words[i] == "-a" and i + 1 < len(words):
                action, i = words[i + 1], i + 2
            elif words[i] == "--ei" and i + 2 < len(words) and words[i + 2].lstrip("-").isdigit():
                extras[words[i + 1]], i = int(words[i + 2]), i + 3
            else:
                i += 1
        target = self.on_broadcast(action, extras)
        port = extras.get("port")
        if target is not None and port is not None:
            self.listening[port] = target
        return f"Broadcasting: Intent {{ act={action} flg=0x400000 (has extras) }}\nBroadcast completed: result=0\n" \
            .encode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()
