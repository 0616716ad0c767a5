"""Logging that reads well on a terminal and in the journal.

Under systemd (``$JOURNAL_STREAM`` set) records go to journald through its
native protocol, so that each carries fields an admin can filter on:
``journalctl -u dockgate DOCKGATE_SLOT=3``, ``DOCKGATE_SERIAL=…``,
``DOCKGATE_CLIP=<sha256>``, ``DOCKGATE_EVENT=quarantined``. Events put those
in ``extra={"journal": {...}}``; if the journal socket is not there, the
same records go to stderr with a priority prefix.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from typing import Any

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    # journald reads a "<N>" prefix as the syslog priority and adds its own time
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{record.name}: {super().format(record)}"


JOURNAL_SOCKET = "/run/systemd/journal/socket"


def _field(name: str, value: object) -> bytes:
    data = str(value).encode("utf-8", "replace")
    if b"\n" in data:  # the protocol's binary form: name, newline, 64-bit LE length, data
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


class JournalHandler(logging.Handler):
    """Records as journal entries with structured fields (native protocol)."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.connect(path)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {
                "MESSAGE": self.format(record), "PRIORITY": _PRIORITY.get(record.levelno, 6),
                "SYSLOG_IDENTIFIER": "dockgate", "DOCKGATE_LOGGER": record.name}
            for key, value in (getattr(record, "journal", None) or {}).items():
                if value is not None:
                    fields[f"DOCKGATE_{key.upper()}"] = value
            if record.exc_info:
                fields["MESSAGE"] += "\n" + logging.Formatter().formatException(record.exc_info)
            self.sock.send(b"".join(_field(k, v) for k, v in fields.items()))
        except OSError:
            self.handleError(record)


def setup(level: str = "INFO", file: str | None = None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    handler: logging.Handler
    if file:
        handler = logging.FileHandler(file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    elif os.environ.get("JOURNAL_STREAM"):
        try:
            handler = JournalHandler(os.environ.get("DOCKGATE_JOURNAL_SOCKET", JOURNAL_SOCKET))
            handler.setFormatter(logging.Formatter("%(message)s"))
        except OSError:  # no journald socket: the priority prefix on stderr still reaches it
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
