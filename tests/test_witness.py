"""One witness for many stations: a station's checkpoints are its own.

The witness keeps a station's checkpoints only from its own topic, signed by
the key its first checkpoint was signed with, and never one that goes back;
`verify` counts a witnessed checkpoint for a station only when the key that
signs that station's record signed it, so a store holding another station's
forgery still verifies the victim's archive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.archive.directory import DirectoryArchive
from gateway.evidence.checkpoint import Checkpoint, make_checkpoint
from gateway.evidence.custody import CustodyLog
from gateway.evidence.keyring import Keyring, KeyringError
from gateway.evidence.signing import Signer, keygen, public_pem
from gateway.evidence.verify import Verifier
from gateway.evidence.witness import WitnessStore, witnessed
from gateway.telemetry.witness import WitnessCollector


def station(tmp: Path, name: str, signer: Signer, entries: int = 3) -> Checkpoint:
    """A station's record in the archive at *tmp*/archive; its newest checkpoint."""
    log = CustodyLog(tmp / name, signer, name)
    for i in range(entries):
        log.append("pulled", n=i)
    log.seal()
    folder = tmp / "archive" / "custody" / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in (tmp / name).glob("c*"):
        if not f.name.endswith(".open.jsonl"):
            shutil.copy(f, folder / f.name)
    assert log.latest_checkpoint is not None
    return log.latest_checkpoint


def test_a_checkpoint_naming_another_station_is_refused(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    store = WitnessStore(tmp_path / "w", [a.public, b.public])
    assert store.keep(station(tmp_path, "st-b", b), "st-b") is not None
    forged = make_checkpoint(a, "st-b", 1036, "0" * 64, "custody-st-b-0000000001.jsonl", {})
    assert store.keep(forged, "st-a") is None  # on A's topic
    assert store.keep(forged, "st-b") is None  # on B's topic too: B's checkpoints are signed by B's key
    assert [cp.doc["seq"] for cp in witnessed(tmp_path / "w")] == [3]


def test_a_checkpoint_that_goes_back_is_refused(tmp_path: Path) -> None:
    b = keygen(tmp_path / "b.key")
    store = WitnessStore(tmp_path / "w", [b.public])
    store.keep(make_checkpoint(b, "st-b", 10, "1" * 64, "custody-st-b-0000000001.jsonl", {}), "st-b")
    assert store.keep(make_checkpoint(b, "st-b", 7, "2" * 64, "custody-st-b-0000000001.jsonl", {}), "st-b") is None
    assert [cp.doc["seq"] for cp in witnessed(tmp_path / "w")] == [10]


def test_a_forgery_in_the_store_does_not_condemn_the_victims_archive(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    station(tmp_path, "st-a", a)
    station(tmp_path, "st-b", b)
    forged = make_checkpoint(a, "st-b", 1036, "0" * 64, "custody-st-b-0000000001.jsonl", {})
    (tmp_path / "w" / "st-b").mkdir(parents=True)  # as an older witness would have kept it
    (tmp_path / "w" / "st-b" / forged.name).write_bytes(forged.body)
    (tmp_path / "w" / "st-b" / (forged.name + ".sig")).write_bytes(forged.signature)
    report = Verifier(DirectoryArchive(tmp_path / "archive"), [a.public, b.public],
                      witnessed(tmp_path / "w")).run()
    assert report.ok, report.failures
    assert report.foreign_witnessed == [f"witness {forged.name}"]


def test_an_archived_checkpoint_signed_by_another_stations_key_fails(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    station(tmp_path, "st-a", a)
    station(tmp_path, "st-b", b)
    forged = make_checkpoint(a, "st-b", 2, "0" * 64, "custody-st-b-0000000001.jsonl", {})
    folder = tmp_path / "archive" / "custody" / "st-b"
    (folder / forged.name).write_bytes(forged.body)
    (folder / (forged.name + ".sig")).write_bytes(forged.signature)
    report = Verifier(DirectoryArchive(tmp_path / "archive"), [a.public, b.public]).run()
    assert any(f.check == "checkpoint-station" and forged.name in f.obj for f in report.failures), report.failures


def test_one_stations_archive_verifies_against_a_district_store(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    store = WitnessStore(tmp_path / "w", [a.public, b.public])
    store.keep(station(tmp_path / "one", "st-a", a), "st-a")
    store.keep(station(tmp_path / "two", "st-b", b), "st-b")
    report = Verifier(DirectoryArchive(tmp_path / "one" / "archive"), [a.public], witnessed(tmp_path / "w")).run()
    assert report.ok and report.witnessed == 1, report.failures


def _ring(tmp: Path, **signers: Signer) -> Keyring:
    (tmp / "ring").mkdir()
    for st, s in signers.items():
        (tmp / "ring" / f"{st}.pub.pem").write_bytes(public_pem(s.public))
    return Keyring(tmp / "ring")


def test_with_a_keyring_only_the_stations_own_key_on_its_own_topic_is_kept(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    store = WitnessStore(tmp_path / "w", keyring=_ring(tmp_path, **{"st-a": a, "st-b": b}))
    forged = make_checkpoint(a, "st-b", 1036, "0" * 64, "custody-st-b-0000000001.jsonl", {})
    assert store.keep(forged, "st-b") is None  # no trust on first use: B's first checkpoint is refused too
    assert store.keep(forged, "st-a") is None
    stranger = make_checkpoint(keygen(tmp_path / "c.key"), "st-c", 1, "0" * 64, "custody-st-c-0000000001.jsonl", {})
    assert store.keep(stranger, "st-c") is None
    assert store.keep(station(tmp_path, "st-b", b), "st-b") is not None
    assert store.refusals == {("st-b", "wrong_key"): 1, ("st-a", "topic"): 1, ("", "unknown_station"): 1}
    assert store.heard["st-b"].seq == 3


def test_a_station_added_to_the_keyring_is_read_on_its_first_checkpoint(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    store = WitnessStore(tmp_path / "w", keyring=_ring(tmp_path, **{"st-a": a}))
    (tmp_path / "ring" / "st-b.pub.pem").write_bytes(public_pem(b.public))
    assert store.keep(station(tmp_path, "st-b", b), "st-b") is not None


def test_one_key_filed_under_two_stations_is_no_keyring(tmp_path: Path) -> None:
    a = keygen(tmp_path / "a.key")
    with pytest.raises(KeyringError, match="st-a and st-b have the same key"):
        _ring(tmp_path, **{"st-a": a, "st-b": a})


def test_backwards_and_cross_station_refusals_are_counted_by_the_sending_station(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a.key"), keygen(tmp_path / "b.key")
    store = WitnessStore(tmp_path / "w", [a.public, b.public])
    store.keep(make_checkpoint(b, "st-b", 10, "1" * 64, "custody-st-b-0000000001.jsonl", {}), "st-b")
    store.keep(make_checkpoint(b, "st-b", 7, "2" * 64, "custody-st-b-0000000001.jsonl", {}), "st-b")
    store.keep(make_checkpoint(a, "st-b", 11, "2" * 64, "custody-st-b-0000000001.jsonl", {}), "st-b")
    assert store.refusals == {("st-b", "backwards"): 1, ("st-b", "wrong_key"): 1}


def test_a_silent_station_raises_one_alarm_until_it_is_heard_again(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    b = keygen(tmp_path / "b.key")
    now = [1000.0]
    store = WitnessStore(tmp_path / "w", keyring=_ring(tmp_path, **{"st-b": b}), silence_after=600,
                         clock=lambda: now[0])
    store.keep(make_checkpoint(b, "st-b", 1, "1" * 64, "custody-st-b-0000000001.jsonl", {}), "st-b")
    now[0] += 600
    assert store.silence() == []
    now[0] += 1
    assert store.silence() == ["st-b"] and store.silence() == ["st-b"]
    assert [r.message for r in caplog.records].count(
        "ALARM: station st-b silent: no checkpoint for 601 s (longer than 600 s)") == 1
    metrics = {m.name: m for m in WitnessCollector(store).collect()}
    assert metrics["dockgate_witness_station_silent"].samples[0].value == 1
    assert metrics["dockgate_witness_checkpoint_age_seconds"].samples[0].value == 601
    store.keep(make_checkpoint(b, "st-b", 2, "2" * 64, "custody-st-b-0000000001.jsonl", {}), "st-b")
    assert store.silence() == [] and "station st-b is heard again (checkpoint 2)" in caplog.text


def test_a_restarted_witness_knows_each_stations_newest_checkpoint(tmp_path: Path) -> None:
    b = keygen(tmp_path / "b.key")
    WitnessStore(tmp_path / "w", [b.public]).keep(station(tmp_path, "st-b", b), "st-b")
    again = WitnessStore(tmp_path / "w", [b.public], silence_after=3600)
    assert again.heard["st-b"].seq == 3 and again.silence() == []
