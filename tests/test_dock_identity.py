"""The dock record holds the recorder's GA/T 947 IDCode and the label of the
storage volume it was paired with, and shows them where docks are shown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from drivers.base import DockedDevice, Identity, UsbIds
from gateway.catalog import Catalog
from gateway.catalog.reports import Reports
from gateway.catalog.schema import MIGRATIONS

DEVICE = DockedDevice(slot=1, ids=UsbIds(0x1D70, 0x01D4, "SN1"), volume=None, source="sim")


def test_the_idcode_and_volume_label_are_stored_with_the_dock(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    dock = cat.open_dock(DEVICE, "bc-text")
    cat.identify_dock(dock, Identity(serial="SN1", idcode="BC004"), volume_label="BC123456")
    row = cat.dock(dock)
    assert row is not None and (row.idcode, row.volume_label) == ("BC004", "BC123456")


def test_recent_docks_show_the_idcode_and_volume_label(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    dock = cat.open_dock(DEVICE, "bc-text")
    cat.identify_dock(dock, Identity(serial="SN1", idcode="BC004"))
    (summary,) = Reports(tmp_path / "c.sqlite").recent_docks()
    assert summary["idcode"] == "BC004" and summary["volume_label"] is None


def test_docks_recorded_before_the_upgrade_read_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    mine = next(i for i, m in enumerate(MIGRATIONS) if "ADD COLUMN idcode" in m)
    db = sqlite3.connect(path, isolation_level=None)
    for step, script in enumerate(MIGRATIONS[:mine]):
        db.executescript(f"BEGIN;{script}PRAGMA user_version={step + 1};COMMIT;")
    db.execute("INSERT INTO docks (slot, serial, docked_at) VALUES (1, 'OLD1', 0)")
    db.close()
    row = Catalog(path).dock(1)
    assert row is not None and row.serial == "OLD1" and (row.idcode, row.volume_label) == (None, None)
