"""The catalog is the queue: states move forward, survive restarts, and a
known hash is a sighting, never a second clip."""

from __future__ import annotations

from pathlib import Path

from drivers.base import ClipRef, DockedDevice, UsbIds
from gateway.catalog import Catalog


def dev(slot: int = 1) -> DockedDevice:
    return DockedDevice(slot=slot, ids=UsbIds(0x1209, 1, "S1"), volume=None, source="sim")


def test_lifecycle_and_recovery(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    dock = cat.open_dock(dev(), "generic-ums")
    refs = [ClipRef(b"a.mp4", 10, 1), ClipRef(b"b.mp4", 20, 2)]
    pending, known = cat.discover(dock, "S1", "0001", refs)
    assert [p.ref for p in pending] == refs and known == 0
    cat.mark_pulling(pending[0].id)
    assert cat.mark_pulled(pending[0].id, "aa" * 32, 10, "media/aa/aa")
    cat.mark_pulling(pending[1].id)
    assert cat.counts()["pulling"] == 1
    assert cat.due_for_forward(now=1e12, limit=10) == []  # not stamped yet
    (clip,) = cat.due_for_stamp()
    cat.mark_stamped(clip.sha256, "k", "manifests/x", "ff" * 32, False, 1.0, None)
    (clip,) = cat.due_for_forward(now=1e12, limit=10)
    cat.mark_forwarding(clip.sha256, "k")
    cat.close()

    # kill -9 here: a reopened catalog carries on
    cat = Catalog(tmp_path / "c.sqlite")
    rec = cat.recover()
    assert rec["interrupted"] == 1 and rec["requeued"] == 1
    counts = cat.counts()
    assert counts["interrupted"] == 1 and counts["stamped"] == 1
    again = cat.clip("aa" * 32)
    assert again is not None and again.archive_key == "k"
    # the next dock pulls the interrupted clip again, not the pulled one
    dock2 = cat.open_dock(dev(), "generic-ums")
    pending, known = cat.discover(dock2, "S1", "0001", refs)
    assert [p.ref for p in pending] == [refs[1]] and known == 1


def test_known_content_is_a_sighting(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    dock = cat.open_dock(dev(), "p")
    pending, _ = cat.discover(dock, "S1", None, [ClipRef(b"a", 1, 1), ClipRef(b"copy-of-a", 1, 5)])
    assert cat.mark_pulled(pending[0].id, "ab" * 32, 1, "x")
    assert not cat.mark_pulled(pending[1].id, "ab" * 32, 1, None)
    assert cat.sightings() == 1
    assert cat.counts()["staged"] == 1


def test_events_outbox_keeps_order_and_ids(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    a = cat.add_event("docked", 1, {"serial": "S1"})
    b = cat.add_event("clip_archived", None, {"sha256": "x"})
    evs = cat.events()
    assert [e["id"] for e in evs] == [a, b] and evs[0]["data"] == {"serial": "S1"}
