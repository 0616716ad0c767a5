"""A simulated serial/CDC recorder: firmware served on a pseudo-terminal.

The driver opens the pty's slave side with pyserial exactly as it would open
/dev/ttyACM0; frames end with '#', replies are written back."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty

from drivers.sim.firmware import SimFirmware

log = logging.getLogger(__name__)


class PtyServer:
    def __init__(self, firmware: SimFirmware) -> None:
        self.firmware = firmware
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open so the pty survives between driver opens
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sim-pty-{self.path}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.1)
            if not r:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            buf += chunk
            while b"#" in buf:
                frame, _, buf = buf.partition(b"#")
                try:
                    reply = self.firmware.handle(frame.lstrip(b"\r\n") + b"#")
                except Exception:  # a firmware bug must not silently kill the port
                    log.exception("simulated firmware failed on %r", frame[:64])
                    continue
                with contextlib.suppress(OSError):
                    os.write(self.master, reply)
            if len(buf) > 8192:  # garbage without a terminator: drop it as firmware would
                buf = b""

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
