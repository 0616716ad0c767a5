"""The catalog is the state machine and the queue: states move only the way
the machine allows, a state change and its events are one transaction,
states survive restarts, and a known hash is a sighting, never a second clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base import ClipRef, DockedDevice, UsbIds
from gateway.catalog import Catalog, ClipState, Event, ItemState, TransitionRefused, event
from gateway.catalog.reports import Reports
from gateway.catalog.states import CLIP_MOVES, ITEM_MOVES

SHA = "aa" * 32


def dev(slot: int = 1) -> DockedDevice:
    return DockedDevice(slot=slot, ids=UsbIds(0x1209, 1, "S1"), volume=None, source="sim")


class Recorded:
    """A journal that remembers what it saw, and when."""

    def __init__(self) -> None:
        self.recorded: list[str] = []
        self.announced: list[str] = []
        #: how many events had been recorded at each sync
        self.synced: list[int] = []

    def on_record(self, ev: Event) -> None:
        self.recorded.append(ev.type)

    def sync(self) -> None:
        self.synced.append(len(self.recorded))

    def announce(self, ev: Event) -> None:
        self.announced.append(ev.type)


def pulled(sha: str = SHA) -> dict[str, Event]:
    return {"pulled": event("pulled", 1, sha256=sha), "seen_again": event("seen_again", 1, sha256=sha)}


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "c.sqlite")


def one_item(cat: Catalog, name: bytes = b"a.mp4") -> int:
    dock = cat.open_dock(dev(), "generic-ums")
    (item,), _ = cat.discover(dock, "S1", "0001", [ClipRef(name, 10, 1)])
    return item.id


def staged_clip(cat: Catalog, sha: str = SHA) -> str:
    item = one_item(cat, sha.encode())
    cat.begin_pull(item)
    assert cat.finish_pull(item, sha, 10, f"media/{sha}", **pulled(sha))
    return sha


def stamped_clip(cat: Catalog) -> str:
    sha = staged_clip(cat)
    cat.stamped(sha, "k", "manifests/x", "ff" * 32, False, 1.0, None, event("stamped", sha256=sha))
    return sha


def test_a_clip_walks_the_pipeline_and_survives_a_restart(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    dock = cat.open_dock(dev(), "generic-ums")
    refs = [ClipRef(b"a.mp4", 10, 1), ClipRef(b"b.mp4", 20, 2)]
    pending, known = cat.discover(dock, "S1", "0001", refs)
    assert [p.ref for p in pending] == refs and known == 0
    cat.begin_pull(pending[0].id)
    assert cat.finish_pull(pending[0].id, SHA, 10, "media/aa/aa", **pulled())
    cat.begin_pull(pending[1].id)
    assert cat.counts()["pulling"] == 1
    assert cat.due_for_forward(now=1e12, limit=10) == []  # not stamped yet
    (clip,) = cat.due_for_stamp()
    cat.stamped(clip.sha256, "k", "manifests/x", "ff" * 32, False, 1.0, None)
    (clip,) = cat.due_for_forward(now=1e12, limit=10)
    cat.start_forward(clip.sha256, "k")
    cat.close()

    # kill -9 here: a reopened catalog carries on
    cat = Catalog(tmp_path / "c.sqlite")
    rec = cat.recover()
    assert rec["interrupted"] == 1 and rec["requeued"] == 1
    counts = cat.counts()
    assert counts["interrupted"] == 1 and counts["stamped"] == 1
    again = cat.clip(SHA)
    assert again is not None and again.archive_key == "k" and again.state == ClipState.STAMPED
    # the next dock pulls the interrupted clip again, not the pulled one
    dock2 = cat.open_dock(dev(), "generic-ums")
    pending, known = cat.discover(dock2, "S1", "0001", refs)
    assert [p.ref for p in pending] == [refs[1]] and known == 1


def test_known_content_is_a_sighting(cat: Catalog) -> None:
    dock = cat.open_dock(dev(), "p")
    pending, _ = cat.discover(dock, "S1", None, [ClipRef(b"a", 1, 1), ClipRef(b"copy-of-a", 1, 5)])
    for p in pending:
        cat.begin_pull(p.id)
    assert cat.finish_pull(pending[0].id, "ab" * 32, 1, "x", **pulled("ab" * 32))
    assert not cat.finish_pull(pending[1].id, "ab" * 32, 1, None, **pulled("ab" * 32))
    assert Reports(cat.path).sightings() == 1
    assert cat.counts()["staged"] == 1
    assert [e.type for e in cat.events()] == ["pulled", "seen_again"]


def test_events_outbox_keeps_order_and_ids(cat: Catalog) -> None:
    a = cat.emit("docked", 1, serial="S1")
    b = cat.emit("clip_archived", None, sha256="x")
    evs = cat.events()
    assert [e.id for e in evs] == [a, b] and evs[0].data == {"serial": "S1"}


def test_a_state_change_and_its_events_are_one_transaction(tmp_path: Path) -> None:
    journal = Recorded()
    cat = Catalog(tmp_path / "c.sqlite", journal=journal)
    sha = stamped_clip(cat)
    cat.start_forward(sha, "k")
    cat.archived(sha, event("forwarded", sha256=sha), event("clip_archived", sha256=sha))
    assert [e.type for e in cat.events()][-2:] == ["forwarded", "clip_archived"]
    # custody (on_record) hears of each event before listeners (announce) do
    assert journal.recorded == journal.announced == ["pulled", "stamped", "forwarded", "clip_archived"]


def test_a_transactions_custody_entries_are_synced_once_before_its_commit(tmp_path: Path) -> None:
    journal = Recorded()
    cat = Catalog(tmp_path / "c.sqlite", journal=journal)
    sha = stamped_clip(cat)
    cat.start_forward(sha, "k")
    journal.synced.clear()
    cat.archived(sha, event("forwarded", sha256=sha), event("verified", sha256=sha),
                 event("clip_archived", sha256=sha))
    assert journal.synced == [len(journal.recorded)]  # one sync, after all three entries


def test_a_refused_change_writes_neither_state_nor_event(tmp_path: Path) -> None:
    journal = Recorded()
    cat = Catalog(tmp_path / "c.sqlite", journal=journal)
    sha = staged_clip(cat)
    before = len(cat.events())
    with pytest.raises(TransitionRefused):
        cat.archived(sha, event("clip_archived", sha256=sha))
    clip = cat.clip(sha)
    assert clip is not None and clip.state == ClipState.STAGED
    assert len(cat.events()) == before and "clip_archived" not in journal.announced


# -- every move the machine does not allow is refused, with a typed error ------------------
def reach(cat: Catalog, state: ClipState) -> str:
    sha = staged_clip(cat)
    if state == ClipState.STAGED:
        return sha
    if state == ClipState.QUARANTINED:
        cat.quarantine(sha, "test")
        return sha
    cat.stamped(sha, "k", "m", "ff" * 32, False, 1.0, None)
    if state == ClipState.STAMPED:
        return sha
    cat.start_forward(sha, "k")
    if state == ClipState.ARCHIVED:
        cat.archived(sha)
    return sha


# a clip is created staged (finish_pull); no call moves an existing one back there
MOVES = {
    ClipState.STAMPED: lambda c, s: c.retry_later(s, "x", 0.0),
    ClipState.FORWARDING: lambda c, s: c.start_forward(s, "k"),
    ClipState.ARCHIVED: lambda c, s: c.archived(s),
    ClipState.QUARANTINED: lambda c, s: c.quarantine(s, "x"),
}
REFUSED = [(a, b) for a in ClipState for b in MOVES if b not in CLIP_MOVES[a]]


@pytest.mark.parametrize(("current", "wanted"), REFUSED, ids=[f"{a}-to-{b}" for a, b in REFUSED])
def test_a_clip_move_the_machine_does_not_allow_is_refused(cat: Catalog, current: ClipState,
                                                          wanted: ClipState) -> None:
    sha = reach(cat, current)
    with pytest.raises(TransitionRefused) as e:
        MOVES[wanted](cat, sha)
    assert (e.value.current, e.value.wanted) == (current, wanted)
    clip = cat.clip(sha)
    assert clip is not None and clip.state == current


def test_archived_and_quarantined_are_final() -> None:
    assert CLIP_MOVES[ClipState.ARCHIVED] == CLIP_MOVES[ClipState.QUARANTINED] == frozenset()
    assert ITEM_MOVES[ItemState.PULLED] == ITEM_MOVES[ItemState.SIGHTING] == frozenset()


def test_an_item_cannot_finish_a_pull_it_never_began(cat: Catalog) -> None:
    item = one_item(cat)
    with pytest.raises(TransitionRefused):
        cat.finish_pull(item, SHA, 10, "media/x", **pulled())
    assert not cat.has_clip(SHA)


def test_a_pulled_item_cannot_be_interrupted(cat: Catalog) -> None:
    item = one_item(cat)
    cat.begin_pull(item)
    cat.finish_pull(item, SHA, 10, "media/x", **pulled())
    with pytest.raises(TransitionRefused):
        cat.interrupt(item, "late")


def test_an_unknown_clip_cannot_move(cat: Catalog) -> None:
    with pytest.raises(TransitionRefused) as e:
        cat.start_forward("bb" * 32, "k")
    assert e.value.current is None


def test_a_station_fault_does_not_count_against_the_clip(cat: Catalog) -> None:
    sha = stamped_clip(cat)
    cat.start_forward(sha, "k")
    cat.retry_later(sha, "archive refused the station", 0.0, counts=False)
    cat.start_forward(sha, "k")
    cat.retry_later(sha, "read-back mismatch", 0.0)
    clip = cat.clip(sha)
    assert clip is not None and clip.attempts == 1


# -- group commit ------------------------------------------------------------------------
def test_a_group_of_changes_shares_one_custody_sync_and_is_heard_after_its_commit(tmp_path: Path) -> None:
    journal = Recorded()
    cat = Catalog(tmp_path / "c.sqlite", journal=journal)
    shas = [c * 64 for c in "abc"]
    for sha in shas:
        staged_clip(cat, sha)
    journal.synced.clear()
    before = len(journal.announced)
    with cat.group():
        for sha in shas:
            cat.stamped(sha, f"k/{sha}", "m", "ff" * 32, False, 1.0, None, event("stamped", sha256=sha))
        assert len(journal.announced) == before  # nothing heard before the commit
    assert journal.synced == [len(journal.recorded)]
    assert journal.announced[before:] == ["stamped"] * 3
    assert all(c.state == ClipState.STAMPED for c in map(cat.clip, shas) if c)


def test_a_refused_change_in_a_group_undoes_only_itself(cat: Catalog) -> None:
    a, b = staged_clip(cat, "a" * 64), staged_clip(cat, "b" * 64)
    with cat.group():
        cat.stamped(a, "k/a", "m", "ff" * 32, False, 1.0, None, event("stamped", sha256=a))
        with pytest.raises(TransitionRefused):
            cat.archived(b, event("clip_archived", sha256=b))
    assert [cat.clip(s).state for s in (a, b)] == [ClipState.STAMPED, ClipState.STAGED]  # type: ignore[union-attr]
    assert [e.type for e in cat.events()].count("clip_archived") == 0


def test_an_error_escaping_a_group_undoes_the_group_and_announces_nothing(tmp_path: Path) -> None:
    journal = Recorded()
    cat = Catalog(tmp_path / "c.sqlite", journal=journal)
    sha = staged_clip(cat)
    before = len(journal.announced)
    with pytest.raises(RuntimeError), cat.group():
        cat.stamped(sha, "k", "m", "ff" * 32, False, 1.0, None, event("stamped", sha256=sha))
        raise RuntimeError("the batch's files could not be written")
    assert cat.clip(sha).state == ClipState.STAGED  # type: ignore[union-attr]
    assert len(journal.announced) == before


def test_the_forwarding_queue_serves_important_clips_first_then_oldest_first(cat: Catalog) -> None:
    a, b, c = (staged_clip(cat, ch * 64) for ch in "abc")
    important = cat.add_assignment("0001", 0.0, 1e10, "CASE-1", None, None, True)
    for sha in (a, b, c):
        cat.stamped(sha, f"k/{sha[0]}", "manifests/x", "ff" * 32, False, 1.0, important if sha == c else None)
    assert [x.sha256 for x in cat.due_for_forward(now=1e12, limit=10)] == [c, a, b]
    assert [x.sha256 for x in cat.due_for_forward(now=1e12, limit=2)] == [c, a]
    cat.start_forward(a, "k/a")
    cat.retry_later(a, "archive down", at=2e12)
    assert [x.sha256 for x in cat.due_for_forward(now=1e12, limit=10)] == [c, b]


def test_an_assignment_set_aside_is_never_applied_and_an_older_one_covering_the_time_is(cat: Catalog) -> None:
    older = cat.add_assignment("0123", 1.7e9, 1.7e9 + 3600, "A-1", None, None, None)
    newer = cat.add_assignment("0123", 1.7e9, 1.7e9 + 3600, "A-2", None, None, None)
    cat.assignment_set_aside(newer, event("assignment_set_aside", assignment=newer, reason="test"))
    got = cat.assignment_for("0123", 1.7e9 + 60)
    assert got is not None and got.id == older and got.case_number == "A-1"
    assert [a.id for a in cat.new_assignments()] == [older]
    assert cat.events()[-1].type == "assignment_set_aside"


def test_two_clips_restored_under_one_name_and_size_keep_their_own_items_and_locks(cat: Catalog) -> None:
    """A recorder formatted between two docks can write a second clip of the same size under
    the same name; a catalog rebuilt from the custody log then restores both. A clip's lock is
    keyed by its item: sharing one, the second clip's lock would overwrite the first's."""
    a, b = "aa" * 32, "bb" * 32
    for sha in (a, b):
        assert cat.restore_clip(sha, "S1", b"DCIM/0001.MP4", 100, None, None, f"k/{sha[:8]}.MP4", None, None,
                                archived=True)
    items = {sha: cat.db.execute("SELECT item_id FROM clips WHERE sha256=?", (bytes.fromhex(sha),)).fetchone()[0]
             for sha in (a, b)}
    assert items[a] != items[b]
    cat.raise_clip_lock(a, f"k/{a[:8]}.MP4", "", 1000.0, "CASE-A")
    cat.raise_clip_lock(b, f"k/{b[:8]}.MP4", "", 2000.0, "CASE-B")
    la, lb = cat.clip_lock(a), cat.clip_lock(b)
    assert la is not None and lb is not None
    assert (la.until, la.case_number, lb.until, lb.case_number) == (1000.0, "CASE-A", 2000.0, "CASE-B")
    assert not cat.restore_clip(a, "S1", b"DCIM/0001.MP4", 100, None, None, "k/x.MP4", None, None, archived=True)
