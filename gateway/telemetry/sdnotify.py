"""systemd's notify protocol, by hand (a datagram to $NOTIFY_SOCKET): no
dependency for four messages."""

from __future__ import annotations

import os
import select
import socket


def _send(message: str, fds: list[int] | None = None) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            if fds:
                socket.send_fds(s, [message.encode()], fds)
            else:
                s.sendall(message.encode())
    except OSError:
        return False
    return True


def notify(message: str) -> bool:
    return _send(message)


def notify_before_exit(message: str, timeout: float = 5.0) -> bool:
    """*message*, then wait until systemd has taken it (``BARRIER=1``,
    systemd 246+): a process about to exit would otherwise race its own
    STATUS= line, which systemd drops once the main PID is gone."""
    if not _send(message):
        return False
    r, w = os.pipe()
    try:
        sent = _send("BARRIER=1", [w])
        os.close(w)
        w = -1
        if sent:  # systemd closes its copy once every earlier message is processed: EOF here
            select.select([r], [], [], timeout)
        return sent
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd set for us, in seconds."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
