"""A simulated Android recorder's command server: a real TCP socket on
127.0.0.1 (one per docked recorder), served by the simulated firmware. After
the storage switch the server closes, as the recorder app does when the
phone becomes a USB disk: later connections are refused."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from drivers.sim.firmware import TcpFirmware

log = logging.getLogger(__name__)


class SimTcpServer:
    def __init__(self, firmware: TcpFirmware, host: str = "127.0.0.1") -> None:
        self.firmware = firmware
        self.listener = socket.create_server((host, 0))
        self.host, self.port = self.listener.getsockname()[:2]
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"sim-tcp-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name=f"sim-tcp-{self.port}-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.firmware.serve(conn)
        except OSError:
            pass
        except Exception:  # a firmware bug must not silently kill the server
            log.exception("simulated firmware failed")
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()
            if self.firmware.switched.is_set():
                self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.listener.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()
