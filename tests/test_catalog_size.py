"""The catalog stays small at a year's history, and loses nothing by it
(issue 30): the event outbox forgets only events whose custody entries the
archive holds (and the broker took, with MQTT), and a forgotten event stays
on its clip's trail, read from the custody log; ``events --since`` says
where the rest is. A catalog from before keeps every clip's custody entries
through the migration; free pages go back to the file system."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.base import ClipRef, DockedDevice, UsbIds
from gateway.catalog import Catalog, event
from gateway.catalog.reports import Reports
from gateway.catalog.schema import MIGRATIONS
from gateway.catalog.store import catalog_functions
from gateway.cli.status import pruned_since
from gateway.config import Config, config_from_dict
from gateway.evidence.custody import CustodyLog
from gateway.evidence.signing import keygen
from gateway.pipeline import housekeep
from gateway.pipeline.events import Journal
from gateway.pipeline.housekeep import Housekeeper
from gateway.pipeline.staging import Staging
from gateway.web.queries import Reader


@dataclass
class Station:
    root: Path
    cat: Catalog
    log: CustodyLog
    #: clip -> its hash: a, b in the archived segment, c in a sealed one not yet archived, d in the open one
    sha: dict[str, str]

    @property
    def custody(self) -> Path:
        return self.root / "state" / "custody"


def _clip(st: Station, name: str) -> None:
    sha = st.sha[name] = name * 64
    dock = st.cat.open_dock(DockedDevice(slot=1, ids=UsbIds(0x1209, 1, "S1"), volume=None, source="sim"),
                            "generic-ums", event("docked", 1))
    (item,), _ = st.cat.discover(dock, "S1", "0001", [ClipRef(f"{name}.mp4".encode(), 10, 1)])
    st.cat.begin_pull(item.id)
    st.cat.finish_pull(item.id, sha, 10, f"media/{sha}", event("pulled", 1, sha256=sha),
                       event("seen_again", 1, sha256=sha))
    st.cat.stamped(sha, f"k/{name}", f"manifests/{sha}", "ff" * 32, False, 1.0, None, event("stamped", sha256=sha))


def _seal(st: Station, archived: bool) -> None:
    st.log.seal()
    (seg, cp), = st.log.sealed_pending
    st.log.sealed_pending.clear()
    for name in (seg.name, cp.name, cp.name + ".sig"):
        st.cat.add_segment(name)
        if archived:
            st.cat.segment_archived(name)


@pytest.fixture
def st(tmp_path: Path) -> Station:
    log = CustodyLog(tmp_path / "state" / "custody", keygen(tmp_path / "k.key"), "s1", rotate_s=1e9)
    cat = Catalog(tmp_path / "state" / "catalog.sqlite", journal=Journal(log))
    s = Station(tmp_path, cat, log, {})
    _clip(s, "a")
    _clip(s, "b")
    cat.emit("wrong_password", 1, serial="S1")  # an alarm the statistics count
    cat.emit("dock_done", 1)  # the daemon's own news: no custody entry
    _seal(s, archived=True)
    _clip(s, "c")
    _seal(s, archived=False)
    _clip(s, "d")
    return s


def _types(cat: Catalog) -> list[tuple[str, str | None]]:
    return [(e.type, e.data.get("sha256", "")[:1] or None) for e in cat.events()]


def test_only_events_whose_custody_entries_are_archived_are_forgotten(st: Station) -> None:
    before = _types(st.cat)
    assert st.cat.prune_events(time.time() + 1, published=False) == 7  # a, b: docked, pulled, stamped; dock_done
    kept = _types(st.cat)
    assert ("wrong_password", None) in kept  # the statistics count alarms
    assert not any(sha in ("a", "b") for _, sha in kept)
    assert [k for k in before if k[1] in ("c", "d")] == [k for k in kept if k[1] in ("c", "d")]
    assert st.cat.prune_events(time.time() + 1, published=False) == 0


def test_an_event_the_broker_has_not_taken_or_too_young_stays(st: Station) -> None:
    n = len(st.cat.events())
    assert st.cat.prune_events(time.time() - 3600, published=False) == 0  # an hour old at most: too young
    assert st.cat.prune_events(time.time() + 1, published=True) == 0  # none published
    for ev in st.cat.unpublished(3):
        st.cat.mark_published(ev.seq)
    assert st.cat.prune_events(time.time() + 1, published=True) == 3
    assert len(st.cat.events()) == n - 3


def test_the_newest_custody_event_is_kept_where_the_catalog_follows_the_log(st: Station) -> None:
    high = st.cat.custody_high()
    for name in st.cat.due_segments():  # the archive catches up ...
        st.cat.segment_archived(name)
    _seal(st, archived=True)  # ... and takes the rest: every entry is archived
    st.cat.prune_events(time.time() + 1, published=False)
    assert st.cat.custody_high() == high
    assert len(st.cat.events()) == 2  # the alarm and the newest with a custody entry


def test_a_forgotten_event_stays_on_its_clips_trail(st: Station) -> None:
    reader = Reader(st.cat.path, Staging(st.root / "staging", 0), st.custody)
    trail = reader.trail(st.sha["a"])
    st.cat.prune_events(time.time() + 1, published=False)
    reader = Reader(st.cat.path, Staging(st.root / "staging", 0), st.custody)
    again = reader.trail(st.sha["a"])
    assert [(e["type"], e["data"], e["custody_seq"]) for e in again] == \
        [(e["type"], e["data"], e["custody_seq"]) for e in trail] != []
    assert all(e["seq"] is None and e["ts"] is not None for e in again)
    # its segment left the station (evidence.custody_keep_days): the page says where the entries are
    for seg in st.custody.glob("custody-s1-0000000001.jsonl"):
        seg.chmod(0o644)
        seg.unlink()
    gone = Reader(st.cat.path, Staging(st.root / "staging", 0), st.custody).trail(st.sha["a"])
    assert [e["type"] for e in gone] == ["archived"] * len(trail)
    assert [e["data"]["custody_seq"] for e in gone] == [e["custody_seq"] for e in trail]  # type: ignore[index]


def _cfg(st: Station, **more: object) -> Config:
    return config_from_dict({"station": {"id": "s1"}, "archive": {"backend": "directory", "path": "/srv/a"},
                             "evidence": {"signing_key_file": "k.pem"}, "paths": {"state_dir": str(st.root / "state")},
                             **more}, st.root / "dockgate.toml")


def test_the_housekeeper_prunes_what_the_broker_took_and_never_while_a_slot_pulls(
        st: Station, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(housekeep, "DAY", -1.0)  # every event is past the setting's days
    pulling = True
    hk = Housekeeper(_cfg(st, mqtt={"enabled": True}), st.cat, lambda: pulling)
    asyncio.run(hk.catalog_size())
    assert hk.events_pruned == 0  # a slot pulls
    pulling = False
    asyncio.run(hk.catalog_size())
    assert hk.events_pruned == 0  # the broker took none
    for ev in st.cat.unpublished(1000):
        st.cat.mark_published(ev.seq)
    asyncio.run(hk.catalog_size())
    assert hk.events_pruned == 7


def test_the_housekeeper_compacts_the_catalog_weekly_and_never_while_a_slot_pulls(st: Station) -> None:
    """A year's randomly keyed indexes keep their pages part empty as clips arrive: once a week the
    housekeeper rewrites the file whole, while no slot pulls, and says when in the metrics."""
    made = st.cat.compacted_at()
    assert made is not None and abs(made - time.time()) < 600  # a new file: made compact
    with st.cat.tx() as w:
        w.execute("UPDATE catalog_compacted SET at = ?", (time.time() - housekeep.COMPACT_EVERY_S - 1,))
    pulling = True
    hk = Housekeeper(_cfg(st), st.cat, lambda: pulling)
    asyncio.run(hk.catalog_size())
    assert time.time() - (st.cat.compacted_at() or 0) > housekeep.COMPACT_EVERY_S  # a slot pulls: not now
    pulling = False
    asyncio.run(hk.catalog_size())
    assert time.time() - (st.cat.compacted_at() or 0) < 60
    asyncio.run(hk.step())
    assert hk.disk["catalog_compacted"] == int(st.cat.compacted_at() or 0)


def test_events_since_says_where_the_forgotten_ones_are(st: Station) -> None:
    cfg = _cfg(st)
    assert pruned_since(cfg, 0) is None
    st.cat.prune_events(time.time() + 1, published=False)
    r = Reports(st.cat.path)
    p = r.pruned()
    r.close()
    assert p is not None and p["events"] == 7
    said = pruned_since(cfg, 0)
    assert said is not None and f"#{p['upto_seq']}" in said and str(st.custody) in said
    assert pruned_since(cfg, p["upto_seq"]) is None


def test_the_migration_keeps_every_clips_custody_entries(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for step, script in enumerate(MIGRATIONS[:9]):
        db.executescript(f"BEGIN;{script}PRAGMA user_version={step + 1};COMMIT;")
    for i, sha in enumerate(("a" * 64, "b" * 64), start=1):
        db.execute("INSERT INTO items (id, serial, path, size, mtime_ns, state, sha256, discovered_at, updated_at) "
                   "VALUES (?, 'S1', ?, 1, 1, 'pulled', ?, 0, 0)", (i, f"{i}.mp4".encode(), sha))
        db.execute("INSERT INTO clips (sha256, size, state, item_id, created_at, updated_at, archive_key) "
                   "VALUES (?, 1, 'archived', ?, 0, 0, ?)", (sha, i, f"k{i}"))
        for seq in (i, i + 10):
            db.execute("INSERT INTO events (id, ts, type, data, custody_seq) VALUES (?, 0, 'pulled', ?, ?)",
                       (f"{sha[0]}{seq}", f'{{"sha256": "{sha}"}}', seq))
            db.execute("INSERT INTO clip_custody (sha256, seq) VALUES (?, ?)", (sha, seq))
    db.execute("INSERT INTO clip_custody (sha256, seq) VALUES (?, 99)", ("f" * 64,))  # no clip: not carried
    db.execute("INSERT INTO clip_locks (sha256, archive_key, until) VALUES (?, 'k2', 0)", ("b" * 64,))
    db.close()
    cat = Catalog(path)
    assert cat.custody_seqs("a" * 64) == [1, 11]
    assert cat.custody_seqs("b" * 64) == [2, 12]
    assert [c.sha256 for c in cat.clips_with_entries(12, None)] == ["b" * 64]
    assert cat.clips_with_entries(13, None) == []
    r = Reports(path)
    assert [(e["seq"], e["custody_seq"]) for e in r.trail("a" * 64)] == [(1, 1), (2, 11)]
    r.close()


def test_free_pages_go_back_to_the_file_system(tmp_path: Path) -> None:
    new = Catalog(tmp_path / "new.sqlite")
    assert new.file_pages()[3]  # a new file is in incremental auto-vacuum mode
    new.close()
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(f"BEGIN;{MIGRATIONS[0]}PRAGMA user_version=1;COMMIT;")
    db.close()
    cat = Catalog(old)
    assert not cat.file_pages()[3]
    with cat.tx() as w:
        w.executemany("INSERT INTO events (id, ts, type, data) VALUES (?, 0, 'x', ?)",
                      ((str(i), "x" * 500) for i in range(2000)))
        w.execute("DELETE FROM events")
    free = cat.file_pages()[2]
    assert free > 100 and cat.vacuum(10) == 0  # not in that mode: nothing given back
    cat.close()
    Catalog(old).close()  # a command's writer leaves it as it is
    assert not Catalog(old).file_pages()[3]
    cat = Catalog(old, compact=True)  # the daemon starting compacts it once (or the housekeeper: ``compact_file``)
    _, _, free, incremental = cat.file_pages()
    assert incremental and free == 0
    with cat.tx() as w:
        w.executemany("INSERT INTO events (id, ts, type, data) VALUES (?, 0, 'x', ?)",
                      ((str(i), "x" * 500) for i in range(2000)))
        w.execute("DELETE FROM events")
    free = cat.file_pages()[2]
    assert cat.vacuum(50) == 50 and cat.file_pages()[2] == free - 50


def test_an_upgrade_that_migrates_the_catalog_says_so_first_and_a_current_one_does_not(tmp_path: Path) -> None:
    """The daemon hears of a migration before it starts (it extends systemd's
    start timeout: at a year's history a migration takes minutes)."""
    path = tmp_path / "older.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    catalog_functions(db)  # the migrations call the catalog's own functions
    for step, script in enumerate(MIGRATIONS[:-1]):
        db.executescript(f"BEGIN;{script}PRAGMA user_version={step + 1};COMMIT;")
    db.close()
    heard: list[str] = []
    Catalog(path, long_work=heard.append).close()
    assert len(heard) == 1 and "migrating" in heard[0], heard
    heard.clear()
    Catalog(path, long_work=heard.append).close()
    Catalog(tmp_path / "new.sqlite", long_work=heard.append).close()
    assert heard == []


#: retention's tables as schema 16 wrote them (a clip's lock by its hash, every object's lock a row)
OLD_RETENTION_TABLES = """DROP TABLE clip_locks; DROP TABLE lock_extras; ALTER TABLE locks DROP COLUMN keep;
    CREATE TABLE clip_locks (sha256 TEXT PRIMARY KEY, archive_key TEXT NOT NULL, extras TEXT NOT NULL DEFAULT '',
                             until REAL NOT NULL, case_number TEXT);
    CREATE INDEX clip_locks_case ON clip_locks(case_number);"""


def _states_mix(cat: Catalog) -> dict[str, str]:
    """Clips in each state a station holds (staged, stamped, archived, purged, quarantined), one of them
    staged and stamped under names staging would not give it (a path as it was written is kept as is)."""
    shas = {name: f"{i:02x}" * 32 for i, name in enumerate(("staged", "stamped", "archived", "purged",
                                                              "quarantined", "odd"), start=10)}
    dock = cat.open_dock(DockedDevice(slot=1, ids=UsbIds(0x1209, 1, "S1"), volume=None, source="sim"),
                         "generic-ums", event("docked", 1))
    items, _ = cat.discover(dock, "S1", "0001", [ClipRef(f"{n}.mp4".encode(), 10, 1) for n in shas])
    for item, (name, sha) in zip(items, shas.items(), strict=True):
        cat.begin_pull(item.id)
        staged = f"elsewhere/{sha}" if name == "odd" else f"media/{sha[:2]}/{sha}"
        cat.finish_pull(item.id, sha, 10, staged, event("pulled", 1, sha256=sha), event("seen_again", 1, sha256=sha))
        if name == "staged":
            continue
        manifest = f"manifests/old-{sha}.json" if name == "odd" else f"manifests/{sha}.manifest.json"
        cat.stamped(sha, f"k/{name}", manifest, "ee" * 32, False, 1000.0, None, event("stamped", sha256=sha))
        if name in ("archived", "purged"):
            cat.start_forward(sha, f"k/{name}")
            cat.archived(sha, event("archived", sha256=sha))
        if name == "purged":
            cat.purged(sha, event("purged", sha256=sha))
        if name == "quarantined":
            cat.quarantine(sha, "unreadable", event("quarantined", sha256=sha), reason="source_fault")
    return shas


def test_derivable_paths_are_not_stored_and_an_older_catalog_reads_back_the_same(tmp_path: Path) -> None:
    """A clip's staged copy and manifest where staging names them are not stored (their hash says
    them); a catalog from before, its rows holding the paths, reads back every clip as it did."""
    path = tmp_path / "c.sqlite"
    cat = Catalog(path)
    shas = _states_mix(cat)
    stored = dict(cat.db.execute("SELECT lower(hex(sha256)), staged_path || '|' || coalesce(manifest_path, '-') "
                                 "FROM clips"))
    assert stored[shas["archived"]] == "|" and stored[shas["staged"]] == "|-"  # nothing but the markers
    assert stored[shas["odd"]] == f"elsewhere/{shas['odd']}|manifests/old-{shas['odd']}.json"
    before = {s: cat.clip(s) for s in shas.values()}
    r = Reports(path)
    views = {s: r.clip(s) for s in shas.values()}
    docks = r.dock_clips(1)
    r.close()
    purgeable = cat.purgeable(time.time() + 1)
    # the catalog as the schema before wrote it: every path in full (and every hash as text), at that version
    derived = next(i for i, m in enumerate(MIGRATIONS) if "UPDATE clips SET staged_path = ''" in m)
    cat.db.executescript("BEGIN; UPDATE clips SET sha256 = lower(hex(sha256)), manifest_sha256 = "
                         "nullif(lower(hex(manifest_sha256)), ''); UPDATE items SET sha256 = lower(hex(sha256)); "
                         "UPDATE clips SET staged_path = 'media/' || substr(sha256, 1, 2) || '/' || sha256 "
                         "WHERE staged_path = ''; UPDATE clips SET manifest_path = 'manifests/' || sha256 || "
                         f"'.manifest.json' WHERE manifest_path = ''; {OLD_RETENTION_TABLES} PRAGMA user_version={derived}; "
                         "COMMIT;")
    assert cat.db.execute("SELECT count(*) FROM clips WHERE staged_path = '' OR manifest_path = ''").fetchone()[0] == 0
    cat.close()
    cat = Catalog(path, compact=True)
    assert {s: cat.clip(s) for s in shas.values()} == before
    assert before[shas["archived"]].staged_path == f"media/{shas['archived'][:2]}/{shas['archived']}"  # type: ignore[union-attr]
    assert before[shas["stamped"]].manifest_path == f"manifests/{shas['stamped']}.manifest.json"  # type: ignore[union-attr]
    assert before[shas["odd"]].staged_path == f"elsewhere/{shas['odd']}"  # type: ignore[union-attr]
    assert cat.purgeable(time.time() + 1) == purgeable and len(purgeable) == 1
    assert cat.db.execute("SELECT count(*) FROM clips WHERE staged_path = ''").fetchone()[0] == 5
    assert not cat.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'compact_due'").fetchone()  # compacted
    r = Reports(path)
    assert {s: r.clip(s) for s in shas.values()} == views and r.dock_clips(1) == docks
    r.close()


def test_the_queue_and_state_indexes_hold_only_the_rows_their_queries_want(tmp_path: Path) -> None:
    """Archived clips and pulled items (nearly every row at a year) are in none of the queue's and
    state's indexes; the queue, the counts and the retry time still read them off those indexes."""
    cat = Catalog(tmp_path / "c.sqlite")
    _states_mix(cat)
    entries = {name: cat.db.execute(f"SELECT count(*) FROM {table} INDEXED BY {name} WHERE {where}").fetchone()[0]
               for name, table, where in (("clips_queue", "clips", "state != 'archived'"),
                                          ("clips_state", "clips", "state != 'archived'"),
                                          ("items_state", "items", "state != 'pulled'"))}
    assert entries == {"clips_queue": 4, "clips_state": 4, "items_state": 0}  # staged, stamped (and odd), quarantined
    counts = cat.counts()
    assert (counts["archived"], counts["staged"], counts["stamped"], counts["quarantined"]) == (2, 1, 2, 1)
    assert cat.queue() == (3, 30)
    assert cat.next_retry_at() == 0.0
    for sql in ("SELECT count(*) FROM clips WHERE state != 'archived' GROUP BY state",
                "SELECT min(next_try_at) FROM clips WHERE state='stamped' AND state != 'archived'"):
        plan = " ".join(r[3] for r in cat.db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "clips_queue" in plan or "clips_state" in plan, plan


def test_event_ids_are_stored_as_16_bytes_and_an_older_catalogs_read_back_the_same(tmp_path: Path) -> None:
    """An outbox event's id, a UUID, is its 16 bytes in the row; callers see its text, before and after
    the migration of a catalog that stored the text (an id that is no UUID stays as it was written)."""
    cat = Catalog(tmp_path / "c.sqlite")
    eid = cat.emit("dock_done", 1)
    assert tuple(cat.db.execute("SELECT typeof(id), length(id) FROM events").fetchone()) == ("blob", 16)
    assert [e.id for e in cat.events()] == [eid]
    bytes_ = next(i for i, m in enumerate(MIGRATIONS) if "stored_event_id(id)" in m)
    with cat.tx() as w:
        w.execute("UPDATE events SET id=?", (eid,))
        w.execute("INSERT INTO events (id, ts, type, data) VALUES ('not-a-uuid', 0, 'x', '{}')")
        for statement in OLD_RETENTION_TABLES.split(";")[:-1]:
            w.execute(statement)
        w.execute(f"PRAGMA user_version={bytes_}")
    before = cat.events()
    cat.close()
    cat = Catalog(tmp_path / "c.sqlite")
    assert cat.events() == before and [e.id for e in before] == [eid, "not-a-uuid"]
    assert [r[0] for r in cat.db.execute("SELECT typeof(id) FROM events ORDER BY seq")] == ["blob", "text"]


def test_hashes_are_stored_as_their_32_bytes_and_callers_see_the_hex(tmp_path: Path) -> None:
    """Every hash in the catalog's rows (clips, their manifests, items, amendments) is its 32
    bytes, not 64 characters of text; every read gives the hex back, and a lookup by a malformed hash
    finds nothing."""
    cat = Catalog(tmp_path / "c.sqlite")
    shas = _states_mix(cat)
    sha = shas["archived"]
    a = cat.add_assignment("0001", 0, 2000, "CASE-1", None, None, None)
    cat.add_amendment(sha, a, "amendments/x.json", event("amended", sha256=sha))
    cat.raise_clip_lock(sha, "k/archived", "", 1e9, "CASE-1")
    for sql in ("SELECT typeof(sha256), length(sha256) FROM clips", "SELECT typeof(manifest_sha256), "
                "length(manifest_sha256) FROM clips WHERE manifest_sha256 IS NOT NULL",
                "SELECT typeof(sha256), length(sha256) FROM items", "SELECT typeof(sha256), length(sha256) FROM "
                "amendments"):
        assert {tuple(r) for r in cat.db.execute(sql)} == {("blob", 32)}, sql
    clip = cat.clip(sha)
    assert clip is not None and (clip.sha256, clip.manifest_sha256) == (sha, "ee" * 32)
    assert [c.sha256 for c in cat.due_amendments()] == [sha]
    assert cat.clip_lock(sha).sha256 == sha  # type: ignore[union-attr]
    assert cat.custody_seqs(sha) == [] and cat.clip(sha[:-1]) is None and cat.clip("zz" * 32) is None
    r = Reports(tmp_path / "c.sqlite")
    view = r.clip(sha)
    assert view is not None and view["sha256"] == sha and view["staged_path"] == f"media/{sha[:2]}/{sha}"
    assert [a["case_number"] for a in r.assignments(sha)] == ["CASE-1"] and len(r.amendments(sha)) == 1
    assert {c["sha256"] for c in r.dock_clips(1)} == set(shas.values())
    r.close()


def test_a_custody_files_clips_are_found_before_and_after_the_outbox_forgets_its_events(st: Station) -> None:
    """Retention locks a custody file as long as the clips it proves something about: found by the file's
    range of entries, from the outbox while it keeps them, from every clip's entries once it does not."""
    for name in "abcd":
        st.cat.raise_clip_lock(st.sha[name], f"k/{name}", "", ord(name), None)
    seqs = {name: st.cat.custody_seqs(st.sha[name]) for name in "abcd"}
    assert all(len(s) == 2 for s in seqs.values()), seqs  # pulled, stamped
    lo, hi = min(seqs["a"]), max(seqs["b"])
    found = sorted(c.sha256 for c in st.cat.clips_with_entries(lo, hi))
    assert found == [st.sha["a"], st.sha["b"]]
    assert sorted(c.sha256 for c in st.cat.clips_with_entries(min(seqs["c"]), None)) == [st.sha["c"], st.sha["d"]]
    assert st.cat.prune_events(time.time() + 1, published=False) == 7
    assert sorted(c.sha256 for c in st.cat.clips_with_entries(lo, hi)) == found
    assert st.cat.clips_with_entries(max(seqs["d"]) + 1, None) == []


def test_the_text_search_matches_the_clips_own_file_name(tmp_path: Path) -> None:
    """A supervisor's free text finds clips by a piece of their file name (three characters or more by
    the trigram index, fewer by a scan), the same way both ways: the folders a recorder files them in
    are not part of it."""
    from gateway.catalog.reports import ClipQuery

    cat = Catalog(tmp_path / "c.sqlite")
    dock = cat.open_dock(DockedDevice(slot=1, ids=UsbIds(0x1209, 1, "S1"), volume=None, source="sim"),
                         "generic-ums", event("docked", 1))
    names = [b"DCIM/100MEDIA/QX_0001.MP4", b"DCIM/100MEDIA/QX_0002.MP4", b"RECORD/zz7.wav"]
    items, _ = cat.discover(dock, "S1", "0001", [ClipRef(n, 10, 1) for n in names])
    for i, item in enumerate(items):
        sha = f"{i + 1:02x}" * 32
        cat.begin_pull(item.id)
        cat.finish_pull(item.id, sha, 10, f"media/{sha[:2]}/{sha}", event("pulled", 1, sha256=sha),
                        event("seen_again", 1, sha256=sha))
    cat.close()
    r = Reports(tmp_path / "c.sqlite")

    def found(text: str) -> list[bytes]:
        return sorted(c["path"] for c in r.search(ClipQuery(text=text), 50))

    assert found("qx_0002") == [names[1]] and found("QX_") == names[:2]
    assert found("z7") == [names[2]] and found("7") == [names[2]]
    assert found("100MEDIA") == [] and found("DC") == []
    assert "clip_names" in r.search_plan(ClipQuery(text="QX_"))
    r.close()
