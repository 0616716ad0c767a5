"""Retention and legal hold follow the evidence graph (issue 26), on a moto
Object Lock bucket, read back through the S3 API (head_object): everything
that proves something about a clip (its manifest and signatures, its
amendments, the custody segments holding its entries and the checkpoints
over them) is locked at least until the clip is, however assignments raise
or lower its category; a legal hold belongs to the case, so a clip assigned
into a held case later is held with its custody; an extension the archive
does not take stays pending (``retention report``) and is applied once the
archive is back.

One station: three clips, A (traffic, six months), B (obstruction,
permanent) and C (traffic); then A is assigned to case K-1 (raised to the
case class), B to traffic (lowered: nothing shortens) and C to HELD-1, a
case held before it had any clip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.archive import ArchiveUnavailable
from gateway.archive.wrappers import Wrapper
from gateway.catalog import Catalog
from gateway.config import load_config
from gateway.evidence.retention import Locks, _Custody
from tests.helpers import DaemonProc, attach, dockgate, events, wait_until
from tests.servers import MotoServer, OpensslTsa, Proxy
from tests.test_casefile import recorder
from tests.test_e2e_s3 import s3_station
from tests.test_retention import RETENTION

pytestmark = pytest.mark.e2e
OFFICER = "0123456"
A, B, C = "20240301083015", "20240301100000", "20240301120000"
SPANS = {A: ("08:00", "09:00"), B: ("09:30", "10:30"), C: ("11:30", "12:30")}


def assign(station: Path, stamp: str, *what: str) -> None:
    start, end = SPANS[stamp]
    dockgate("assign", "-c", str(station), "--officer", OFFICER, "--from", f"2024-03-01T{start}:00+00:00",
             "--to", f"2024-03-01T{end}:00+00:00", *what)


class Bucket:
    """The archive as the S3 API shows it, and its evidence graph read from
    the objects themselves (manifests, custody segments), not the catalog."""

    def __init__(self, server: MotoServer, name: str) -> None:
        self.c = server.client()
        self.name = name

    def listing(self) -> list[str]:
        out: list[str] = []
        for page in self.c.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def head(self, key: str) -> dict[str, Any]:
        return self.c.head_object(Bucket=self.name, Key=key)  # type: ignore[no-any-return]

    def until(self, key: str) -> datetime:
        # head_object: moto's server answers GetObjectRetention with a 500
        return self.head(key)["ObjectLockRetainUntilDate"]  # type: ignore[no-any-return]

    def held(self, key: str) -> bool:
        return self.head(key).get("ObjectLockLegalHoldStatus") == "ON"

    def body(self, key: str) -> bytes:
        return self.c.get_object(Bucket=self.name, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def media(self, stamp: str) -> str:
        (key,) = [k for k in self.listing() if f"_{stamp}_" in k and k.endswith(".MP4")]
        return key

    def covering(self, stamp: str) -> tuple[list[str], list[str]]:
        """(the clip's own objects but its media, the custody objects over its entries)."""
        key = self.media(stamp)
        keys = self.listing()
        own = [k for k in keys if k.startswith(key) and k != key]
        sha = json.loads(self.body(key + ".manifest.json"))["clip"]["sha256"]
        seqs: list[int] = []
        segments = {}
        for k in keys:
            if k.startswith("custody/") and k.endswith(".jsonl"):
                entries = [json.loads(line) for line in self.body(k).splitlines()]
                segments[k] = [e["seq"] for e in entries]
                seqs += [e["seq"] for e in entries if e["data"].get("sha256") == sha]
        checkpoints = sorted({int(k.rsplit("-", 1)[1].split(".")[0]) for k in keys
                              if k.startswith("custody/") and "/checkpoint-" in k})
        custody = {k for k, held in segments.items() if set(held) & set(seqs)}
        for s in seqs:
            over = [n for n in checkpoints if n >= s]
            if over:
                custody |= {k for k in keys if "/checkpoint-" in k and k.split(".json")[0].endswith(f"-{over[0]:010d}")}
        return own, sorted(custody)


def pending(station: Path) -> tuple[int, list[dict[str, Any]]]:
    r = dockgate("retention", "report", "-c", str(station), "--json", check=False)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return r.returncode, [row for row in rows if row.get("pending")]


@pytest.fixture(scope="module")
def run(s3server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("retention-graph")
    bucket = s3server.make_bucket()
    proxy = Proxy(s3server.port)  # the station's way to the archive, cut at will
    station = s3_station(tmp, proxy.endpoint, bucket, release="never")
    tsa = OpensslTsa(tmp / "tsa")  # checkpoints get RFC 3161 tokens: evidence kept as long as the rest
    station.write_text(station.read_text().replace(
        "[evidence]\n", f'[evidence]\ntsa_url = "{tsa.url}"\ntsa_ca_file = "{tsa.ca}"\n', 1) + RETENTION)
    rec = recorder(tmp / "rec", "ZF00077", OFFICER, "张伟", {
        A: "2024-03-01T08:30:15Z", B: "2024-03-01T10:00:00Z", C: "2024-03-01T12:00:00Z"})
    assign(station, A, "--category", "traffic")
    assign(station, B, "--category", "obstruction")
    assign(station, C, "--category", "traffic")
    b = Bucket(s3server, bucket)
    out: dict[str, Any] = {"station": station, "bucket": b, "proxy": proxy}
    # a case held before any clip is in it
    out["hold_before"] = dockgate("legal-hold", "set", "HELD-1", "-c", str(station))
    d = DaemonProc(station, tmp / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, timeout=120,
                   what="3 clips archived")
        out["archived"] = {s: b.until(b.media(s)) for s in (A, B, C)}
        assign(station, A, "--case", "K-1")            # raises: six months -> the case class
        assign(station, B, "--category", "traffic")    # lowers: permanent stays
        assign(station, C, "--case", "HELD-1")         # into the held case
        wait_until(lambda: sum(".amendment-" in k and k.endswith(".json") for k in b.listing()) == 3, timeout=60,
                   what="3 amendments archived")
        wait_until(lambda: b.held(b.media(C)) and all(b.held(k) for k in b.covering(C)[0]), timeout=30,
                   what="C held with its own objects")
        out["held_running"] = {k: b.held(k) for k in [b.media(C), *b.covering(C)[0], *b.covering(C)[1]]}
        # the archive goes away; a hold asked for now is kept and shown pending
        proxy.down()
        out["hold_down"] = dockgate("legal-hold", "set", "K-1", "-c", str(station), check=False)
        out["report_down"] = pending(station)
        wait_until(lambda: any(e["type"] == "retention_pending" for e in events(station)), timeout=30,
                   what="the station to try again while the archive is away")
        proxy.up()
        wait_until(lambda: b.held(b.media(A)), timeout=30, what="K-1's hold applied after the archive is back")
        wait_until(lambda: pending(station) == (0, []), timeout=30, what="nothing pending")
        out["report_up"] = pending(station)
        out["release"] = dockgate("legal-hold", "release", "HELD-1", "-c", str(station))
        wait_until(lambda: any(e["type"] == "legal_hold_released" for e in events(station)), timeout=30,
                   what="the release on the custody record")
    finally:
        assert d.stop() == 0
        proxy.down()
        tsa.down()
    out["events"] = events(station)
    yield out


def days_from_now(when: datetime) -> float:
    return (when - datetime.now(UTC)).total_seconds() / 86400


def test_a_raised_category_raises_the_clip_and_a_lowered_one_shortens_nothing(run: dict[str, Any]) -> None:
    b: Bucket = run["bucket"]
    assert 182 < days_from_now(run["archived"][A]) <= 183
    assert 3649 < days_from_now(b.until(b.media(A))) <= 3650       # K-1: the case class
    assert b.until(b.media(B)) == run["archived"][B]                # traffic after obstruction: still permanent
    assert days_from_now(b.until(b.media(B))) > 36499
    assert 3649 < days_from_now(b.until(b.media(C))) <= 3650


@pytest.mark.parametrize("stamp", [A, B, C])
def test_nothing_that_proves_something_about_a_clip_is_locked_shorter_than_the_clip(
        run: dict[str, Any], stamp: str) -> None:
    b: Bucket = run["bucket"]
    clip = b.until(b.media(stamp))
    own, custody = b.covering(stamp)
    assert any(".amendment-" in k for k in own) and any(k.endswith(".sig") for k in own)
    assert any(k.endswith(".jsonl") for k in custody) and any(k.endswith(".json.sig") for k in custody)
    assert any(k.endswith(".tsr") for k in custody)
    shorter = {k: b.until(k).isoformat() for k in own + custody if b.until(k) < clip}
    assert shorter == {}, f"locked shorter than the clip ({clip.isoformat()})"


def test_a_clip_assigned_into_a_case_held_before_is_held_with_its_custody(run: dict[str, Any]) -> None:
    assert "0 objects of case HELD-1" in run["hold_before"].stdout
    held = run["held_running"]
    assert held and all(held.values()), [k for k, v in held.items() if not v]
    assert any(k.endswith(".jsonl") for k in held) and any(".amendment-" in k for k in held)


def test_releasing_the_hold_releases_what_only_it_held(run: dict[str, Any]) -> None:
    b: Bucket = run["bucket"]
    own_c, custody_c = b.covering(C)
    assert not b.held(b.media(C)) and not any(b.held(k) for k in own_c)
    _, custody_a = b.covering(A)  # K-1 (A's case) is still held: what proves something about A stays held
    assert all(b.held(k) for k in [b.media(A), *custody_a])
    assert {k: b.held(k) for k in custody_c} == {k: k in custody_a for k in custody_c}


def test_a_hold_the_archive_refuses_is_pending_and_applied_when_it_is_back(run: dict[str, Any]) -> None:
    b: Bucket = run["bucket"]
    down = run["hold_down"]
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert "station tries again" in down.stderr
    rc, rows = run["report_down"]
    assert rc == 2  # the archive cannot be read; what is pending is shown all the same
    mine = {r["key"]: r for r in rows}
    assert b.media(A) in mine
    assert all(r["attempts"] >= 1 and r["error"] and r["legal_hold"] for r in mine.values())
    assert run["report_up"] == (0, [])
    types = [e["type"] for e in run["events"]]
    assert "retention_pending" in types and "retention_applied" in types
    assert types.index("retention_pending") < types.index("retention_applied")
    assert {"legal_hold_set", "legal_hold_released"} <= set(types)


def test_malformed_input_is_a_usage_error_without_a_traceback(run: dict[str, Any], tmp_path: Path) -> None:
    station = str(run["station"])
    for args in (["legal-hold", "set", "\x01bad", "-c", station], ["legal-hold", "set", " ", "-c", station],
                 ["retention", "report", "-c", str(tmp_path / "none.toml")], ["legal-hold", "frobnicate", "X"]):
        r = dockgate(*args, check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
    bad = tmp_path / "bad.toml"
    bad.write_text("[archive\nbackend=")
    r = dockgate("retention", "report", "-c", str(bad), check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr


# -- the ledger alone: an extension refused is retried until it succeeds --------------------------------------------

class Refusing(Wrapper):
    """The archive as the station sees it while it refuses Object Lock calls."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.s3: Any = inner
        self.down = True

    def extend_retention(self, key: str, until: datetime) -> datetime | None:
        if self.down:
            raise ArchiveUnavailable(self.describe(), "put_object_retention: connection refused")
        got: datetime | None = self.s3.extend_retention(key, until)
        return got

    def set_legal_hold(self, key: str, on: bool) -> None:
        if self.down:
            raise ArchiveUnavailable(self.describe(), "put_object_legal_hold: connection refused")
        self.s3.set_legal_hold(key, on)


def test_a_refused_extension_is_kept_retried_with_capped_backoff_and_applied(s3server: MotoServer,
                                                                          tmp_path: Path) -> None:
    from gateway.archive import open_backend

    station = s3_station(tmp_path, s3server.endpoint, s3server.make_bucket(), release="never")
    station.write_text(station.read_text() + RETENTION)
    cfg = load_config(station)
    archive = Refusing(open_backend(cfg))
    archive.put_bytes("a/clip.MP4", b"evidence")  # locked for archive.retention_days (1 day)
    catalog = Catalog(cfg.catalog_path)
    try:
        locks = Locks(catalog, cfg, archive)
        wanted = datetime.now(UTC).replace(microsecond=0) + timedelta(days=100)
        catalog.restore_clip("ab" * 32, "S1", b"clip.MP4", 8, None, None, "a/clip.MP4", None, None, archived=True)
        locks.clip_archived("ab" * 32, "a/clip.MP4", (), wanted, None, stored=False)
        now = datetime.now(UTC).timestamp()
        for attempt in range(1, 9):  # the archive refuses, again and again
            failed = locks.record(locks.push(locks.due(float("inf"))), now=now)
            (row,) = catalog.pending_locks()
            assert len(failed) == 1 and row.attempts == attempt and "connection refused" in (row.error or "")
            assert row.next_try_at - now <= cfg.forward.retry_max_s * 1.2  # backoff, capped
        assert locks.due(now - 1) == []  # not before its time
        r = dockgate("retention", "report", "-c", str(station), check=False)
        assert r.returncode == 1 and "pending: 1 objects" in r.stdout and "attempts 8" in r.stdout
        assert "a/clip.MP4" in r.stdout and "connection refused" in r.stdout
        archive.down = False
        assert locks.record(locks.push(locks.due(float("inf")))) == []
        assert catalog.pending_locks() == []
        got = s3server.client().head_object(Bucket=cfg.archive.bucket, Key="a/clip.MP4")  # type: ignore[union-attr]
        assert got["ObjectLockRetainUntilDate"] == wanted
        assert [e.type for e in catalog.events() if e.type.startswith("retention_")] == [
            "retention_pending", "retention_applied"]
        assert dockgate("retention", "report", "-c", str(station)).returncode == 0
    finally:
        catalog.close()


# -- the graph rule, from custody file names --------------------------------------------------------------------

def test_custody_cover_and_span_agree() -> None:
    names = ["custody-st-1-0000000001.jsonl", "checkpoint-st-1-0000000010.json", "checkpoint-st-1-0000000010.json.sig",
             "custody-st-1-0000000011.jsonl", "checkpoint-st-1-0000000025.json", "checkpoint-st-1-0000000025.json.tsr",
             "custody-st-1-0000000026.jsonl"]
    g = _Custody(names)
    assert g.cover([3]) == {names[0], names[1], names[2]}
    assert g.cover([11, 25]) == {names[3], names[4], names[5]}
    assert g.cover([30]) == {names[6]}  # its checkpoint is not sealed yet
    assert g.span(names[0]) == (1, 10) and g.span(names[3]) == (11, 25) and g.span(names[6]) == (26, None)
    assert g.span(names[1]) == (1, 10) and g.span(names[5]) == (11, 25)
    for n in names:  # every entry a file spans is one the file covers
        lo, hi = g.span(n) or (0, 0)
        assert all(n in g.cover([s]) for s in range(lo, (hi or 40) + 1))


# -- the rule over the catalog alone (no archive asked): holds follow the case, dates only rise --------------------

class _Seqs:
    """A custody log as the catalog sees it: every event gets the next seq."""

    def __init__(self) -> None:
        self.seq = 0

    def on_record(self, ev: Any) -> int:
        self.seq += 1
        return self.seq

    def sync(self) -> None:
        pass

    def announce(self, ev: Any) -> None:
        pass


def test_holds_follow_the_case_a_clip_is_in_and_custody_dates_only_rise(tmp_path: Path) -> None:
    station = s3_station(tmp_path, "http://127.0.0.1:9", "unused", release="never")
    station.write_text(station.read_text() + RETENTION)
    cfg = load_config(station)
    catalog = Catalog(tmp_path / "catalog.sqlite", journal=_Seqs())
    x, y = "x" * 64, "y" * 64
    for sha, key in ((x, "x.MP4"), (y, "y.MP4")):  # the clips the entries are about (clip_entries: by their item)
        catalog.restore_clip(sha, "S1", key.encode(), 1, None, None, key, None, None, archived=True)
    catalog.emit("viewed", sha256=x)   # seq 1: segment 1 holds X and Y
    catalog.emit("viewed", sha256=y)   # seq 2
    catalog.emit("viewed", sha256=x)   # seq 3: segment 3 holds X alone
    for name in ("custody-st-0000000001.jsonl", "checkpoint-st-0000000002.json", "custody-st-0000000003.jsonl",
                 "checkpoint-st-0000000003.json"):
        catalog.add_segment(name)
        catalog.segment_archived(name)
    seg1, seg3 = "custody/" + cfg.station.id + "/custody-st-0000000001.jsonl", \
        "custody/" + cfg.station.id + "/custody-st-0000000003.jsonl"
    locks = Locks(catalog, cfg, archive=None, announce=False)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    locks.hold("H", True)
    locks.clip_archived(x, "x.MP4", (".manifest.json",), now + timedelta(days=3650), "H", stored=True)
    locks.clip_archived(y, "y.MP4", (".manifest.json",), now + timedelta(days=183), "K", stored=True)

    def held() -> dict[str, bool]:  # a clip's own object without a row: locked as its clip, not held
        return {k: bool(r.hold) if (r := catalog.lock(k)) is not None else False
                for k in ("x.MP4", "x.MP4.manifest.json", "y.MP4", seg1, seg3)}

    assert held() == {"x.MP4": True, "x.MP4.manifest.json": True, "y.MP4": False, seg1: True, seg3: True}
    seg1_until = catalog.lock(seg1).wanted  # type: ignore[union-attr]
    assert seg1_until is not None and seg1_until >= (now + timedelta(days=3650)).timestamp()
    assert seg1_until % 86400 == 0  # a whole day: shared by every clip of the day
    locks.hold("K", True)
    assert all(held().values())
    locks.amendment_archived(x, "x.MP4", {"case_number": "K", "category": "traffic"})  # out of H, into held K
    assert all(held().values())
    locks.hold("K", False)  # X and Y are K's now: H holds nothing of them
    assert not any(held().values())
    until = catalog.clip_lock(x).until  # type: ignore[union-attr]
    seg1_until = catalog.lock(seg1).wanted  # type: ignore[union-attr]
    assert until >= (now + timedelta(days=3650)).timestamp()
    locks.amendment_archived(x, "x.MP4", {"category": "traffic"})  # six months now: nothing shortens
    assert catalog.clip_lock(x).until == until  # type: ignore[union-attr]
    # still wanted until that date (no row: the archive holds it until its clip's date, which did not fall)
    assert (r := catalog.lock("x.MP4")) is None or r.wanted == until
    assert catalog.lock(seg1).wanted == seg1_until  # type: ignore[union-attr]
    catalog.close()


# -- the catalog keeps a row only for what the archive does not hold yet (issue 30: < 1 KiB a clip) --------------

class _Asked:
    """An Object Lock layer that takes every extension and hold, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def extend_retention(self, key: str, until: datetime) -> datetime:
        self.asked.append(("until", key))
        return until

    def set_legal_hold(self, key: str, on: bool) -> None:
        self.asked.append(("hold on" if on else "hold off", key))


def test_a_clips_own_objects_keep_no_lock_row_once_the_archive_holds_them_as_wanted(tmp_path: Path) -> None:
    """A year holds some 750 000 archived objects: a clip's media, manifest and signatures, stored locked until
    the clip's date, keep no row and are asked nothing more; an amendment that leaves the date as it is asks
    for its own two objects alone; one that raises it asks for every object of the clip once; a hold keeps
    the rows of what it holds until the archive has taken the release."""
    from gateway.catalog import event

    station = s3_station(tmp_path, "http://127.0.0.1:9", "unused", release="never")
    station.write_text(station.read_text() + RETENTION)
    cfg = load_config(station)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    archive = _Asked()
    locks = Locks(catalog, cfg, archive, announce=False)  # type: ignore[arg-type]
    x = "c1" * 32
    catalog.restore_clip(x, "S1", b"x.MP4", 1, None, None, "x.MP4", None, None, archived=True)
    extras = (".manifest.json", ".manifest.json.sig")
    own = ["x.MP4", "x.MP4.manifest.json", "x.MP4.manifest.json.sig"]

    def rows() -> set[str]:
        return {r[0] for r in catalog.db.execute("SELECT key FROM locks")}

    def settle() -> list[tuple[str, str]]:
        archive.asked.clear()
        assert locks.apply() == []
        return sorted(archive.asked)

    def amend(n: int, doc: dict[str, Any]) -> list[str]:  # the forwarder archives amendment n of the clip
        a = catalog.add_assignment("0001", 0, 1, doc.get("case_number"), None, doc.get("category"), None)
        catalog.add_amendment(x, a, f"amendments/{n}.json", event("amended", sha256=x))
        (due,) = catalog.due_amendments()
        key = f"x.MP4.amendment-{due.id}.json"
        catalog.amendment_archived(due.id, key, event("amendment_archived", sha256=x, key=key))
        locks.amendment_archived(x, "x.MP4", doc, key)
        return [key, key + ".sig"]

    locks.clip_archived(x, "x.MP4", extras, datetime.now(UTC) + timedelta(days=3650), None, stored=True)
    assert rows() == set() and settle() == []
    assert catalog.clip_lock(x).extras == " ".join(extras)  # type: ignore[union-attr]

    first = amend(1, {"category": "traffic"})  # 183 days: the clip's ten years stand
    assert rows() == set(first)
    assert settle() == [("until", k) for k in first] and rows() == set()

    second = amend(2, {"case_number": "K-1", "important": True})  # permanent: a rise
    assert settle() == sorted(("until", k) for k in own + first + second)
    assert rows() == set() and catalog.clip_lock(x).case_number == "K-1"  # type: ignore[union-attr]

    locks.hold("K-1", True)
    assert settle() == sorted(("hold on", k) for k in own + first + second)
    assert rows() == set(own + first + second)  # held: kept, so a release is asked of each
    locks.hold("K-1", False)
    assert settle() == sorted(("hold off", k) for k in own + first + second) and rows() == set()
    catalog.close()


def _one_clip(tmp_path: Path) -> tuple[Catalog, Locks, _Asked, str]:
    station = s3_station(tmp_path, "http://127.0.0.1:9", "unused", release="never")
    station.write_text(station.read_text() + RETENTION)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    archive = _Asked()
    locks = Locks(catalog, load_config(station), archive, announce=False)  # type: ignore[arg-type]
    x = "c2" * 32
    catalog.restore_clip(x, "S1", b"x.MP4", 1, None, None, "x.MP4", None, None, archived=True)
    locks.clip_archived(x, "x.MP4", (".manifest.json",), datetime.now(UTC) + timedelta(days=183), "K-2",
                        stored=True)
    return catalog, locks, archive, x


def test_a_hold_released_while_the_archive_sets_it_is_released_there_too(tmp_path: Path) -> None:
    """The command line releases a case's hold while the daemon is asking the archive to set it: once the
    archive says it holds the objects, each is released in turn, never left held with nothing to undo it."""
    catalog, locks, archive, _ = _one_clip(tmp_path)
    locks.hold("K-2", True)
    in_flight = locks.due(float("inf"))  # the daemon took them to the archive...
    locks.hold("K-2", False)  # ...and the hold is released meanwhile
    locks.record(locks.push(in_flight))  # the archive set the hold
    archive.asked.clear()
    assert locks.apply() == []
    assert sorted(archive.asked) == [("hold off", "x.MP4"), ("hold off", "x.MP4.manifest.json")]
    assert catalog.pending_locks() == []
    catalog.close()


def test_a_clips_date_rises_only_with_the_rows_that_ask_the_archive_for_it(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An amendment's bookkeeping that fails halfway leaves the clip's date as it was: a date raised without
    its objects' rows would read as "locked that long" and never be asked of the archive."""
    catalog, locks, archive, x = _one_clip(tmp_path)
    before = catalog.clip_lock(x).until  # type: ignore[union-attr]

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(catalog, "want_locks", broken)
    with pytest.raises(RuntimeError):
        locks.amendment_archived(x, "x.MP4", {"case_number": "K-2", "important": True}, "x.MP4.amendment-1.json")
    assert catalog.clip_lock(x).until == before  # type: ignore[union-attr]
    monkeypatch.undo()
    locks.amendment_archived(x, "x.MP4", {"case_number": "K-2", "important": True}, "x.MP4.amendment-1.json")
    archive.asked.clear()
    assert locks.apply() == []
    assert sorted(archive.asked) == [("until", "x.MP4"), ("until", "x.MP4.manifest.json")]
    catalog.close()
