"""Under systemd, log lines reach the journal with fields an admin filters
on: the slot, the recorder serial, the clip and the event."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from gateway.catalog import event
from gateway.pipeline.events import Journal
from gateway.process import logsetup


def test_events_carry_slot_serial_and_clip_as_journal_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "journal.sock")
    journald = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journald.bind(path)
    journald.settimeout(5)
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    monkeypatch.setenv("DOCKGATE_JOURNAL_SOCKET", path)
    try:
        logsetup.setup("INFO")
        Journal().announce(event("quarantined", 3, serial="SN0001", sha256="ab" * 32, error="line one\nline two"))
        fields = journald.recv(65536)
    finally:
        logging.getLogger().handlers.clear()
        journald.close()
    assert b"DOCKGATE_SLOT=3\n" in fields and b"DOCKGATE_SERIAL=SN0001\n" in fields
    assert b"DOCKGATE_CLIP=" + b"ab" * 32 + b"\n" in fields and b"DOCKGATE_EVENT=quarantined\n" in fields
    assert b"PRIORITY=4\n" in fields  # a warning
    assert b"MESSAGE\n" in fields  # a message with a newline travels in the protocol's binary form
