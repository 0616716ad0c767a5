"""One evidence graph: everything the station signs is accounted for.

A station with a TSA and a witness docks a recorder whose clips are filed
under a case, then re-files them twice (two amendments each), and stops
cleanly. Then each kind of object the station signs (media, manifest,
signature, amendment, amendment signature, custody segment, checkpoint,
checkpoint signature, token) is deleted, renamed, replaced with an older
one of its kind, or joined by an unsigned one: `dockgate verify`, with the
witness, and for the case, each exits 1 naming the check and the object;
the untouched archive exits 0 everywhere."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.main import main
from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, dockgate, wait_until
from tests.servers import Mosquitto, OpensslTsa
from tests.test_casefile import ffmpeg_clip

pytestmark = pytest.mark.e2e
STATION = "sim-station-01"
CASE = "A-2026-001"


def run(*args: str) -> tuple[int, str]:
    """`dockgate ARGS` in this process: its exit code and everything it printed
    (a traceback fails the test: no malformed file may cause one)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("graph")
    broker, tsa = Mosquitto(tmp / "broker"), OpensslTsa(tmp / "tsa")
    station = write_station(tmp / "st", reserve_bytes=0, mqtt=f"127.0.0.1:{broker.port}", custody_rotate_s=1.0)
    station.write_text(station.read_text().replace(
        "[evidence]\n", f'[evidence]\ncustody_rotate_entries = 8\ntsa_url = "{tsa.url}"\ntsa_ca_file = "{tsa.ca}"\n',
        1))
    pub = tmp / "st" / "secrets" / "station.pub.pem"
    store = tmp / "witness"
    witness = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "witness", "--broker",
                                f"127.0.0.1:{broker.port}", "--store", str(store), "--pubkey", str(pub)],
                               stdout=subprocess.DEVNULL, stderr=open(tmp / "witness.log", "wb"))  # noqa: SIM115
    try:  # from here on, broker and witness are stopped whatever fails
        archive = tmp / "st" / "archive"
        custody = tmp / "st" / "state" / "custody"
        rec = tmp / "rec"
        dockgate("sim", "make", str(rec), "--clips", "3", "--size", "30k", "--serial", "GRAPH001", "--officer", "000001")
        for n, clip in enumerate(sorted(rec.rglob("*.MP4")), start=1):  # real containers: the case file plays them
            when = clip.stat().st_mtime
            ffmpeg_clip(clip, datetime.fromtimestamp(when, UTC).isoformat(), seconds=n)
            os.utime(clip, (when, when))

        def assign(case: str) -> None:
            now = datetime.now(UTC)  # sim make files clips within the last shift
            dockgate("assign", "-c", str(station), "--officer", "000001", "--from", (now - timedelta(days=2)).isoformat(),
                     "--to", (now + timedelta(hours=12)).isoformat(), "--case", case, "--proof", "妨害公务")

        assign(CASE)
        d = DaemonProc(station, tmp / "daemon.log").start()
        try:
            attach(station, rec, 1)
            d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, timeout=90,
                       what="archived")
            for case in ("B-2026-002", CASE):  # re-filed elsewhere and back: two amendments per clip
                before = len(list(archive.rglob("*.amendment-*.json.sig")))
                assign(case)
                wait_until(lambda b=before: len(list(archive.rglob("*.amendment-*.json.sig"))) == b + 3,
                           timeout=60, what="amendments archived")
            wait_until(lambda: all(cp.with_name(cp.name + ".tsr").exists()
                                   for cp in custody.glob("checkpoint-*.json")), timeout=60, what="tokens")
        finally:
            assert d.stop() == 0
        newest = sorted(custody.glob("checkpoint-*.json"))[-1].name
        wait_until((store / STATION / newest).exists, timeout=30, what="the witness to keep it")
        bag = tmp / "bag"
        dockgate("case", "export", CASE, "-c", str(station), "--out", str(bag), timeout=300)
        yield {"archive": archive, "pub": pub, "store": store, "ca": tsa.ca, "custody": custody, "bag": bag}
    finally:
        witness.terminate()
        witness.wait(10)
        broker.stop()
        tsa.down()


def writable_copy(src: Path, dst: Path) -> Path:
    """A copy to do damage to (archive objects are read-only)."""
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


@pytest.fixture
def copy(scene: dict[str, Any], tmp_path: Path) -> Path:
    return writable_copy(scene["archive"], tmp_path / "archive")


SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "verify-archive"


def shell_verify(scene: dict[str, Any], archive: Path) -> tuple[int, str]:
    """scripts/verify-archive (POSIX sh + OpenSSL, no Python) under dash, as a third party runs it."""
    newest = sorted((scene["store"] / STATION).glob("checkpoint-*.json"))[-1]
    r = subprocess.run(["dash", str(SCRIPT), str(archive), str(scene["pub"]), "--witness", str(newest),
                        "--tsa-ca", str(scene["ca"])], capture_output=True, text=True, timeout=300, check=False)
    return r.returncode, r.stdout + r.stderr


def verify_modes(scene: dict[str, Any], archive: Path) -> dict[str, tuple[int, str]]:
    base = ("verify", "--archive", str(archive), "--pubkey", str(scene["pub"]), "--tsa-ca", str(scene["ca"]))
    return {"verify": run(*base), "witness": run(*base, "--witness", str(scene["store"])),
            "case": run(*base, "--case", CASE), "script": shell_verify(scene, archive)}


def test_the_untouched_archive_verifies_in_every_mode(scene: dict[str, Any]) -> None:
    for mode, (code, out) in verify_modes(scene, scene["archive"]).items():
        assert code == 0, (mode, out)
    code, out = run("verify", "--archive", str(scene["archive"]), "--pubkey", str(scene["pub"]),
                    "--tsa-ca", str(scene["ca"]), "--case", CASE)
    assert "files 3 clips under the case" in out and "timestamp tokens" in out


def test_every_segment_but_the_first_opens_with_the_index_of_the_one_before(scene: dict[str, Any]) -> None:
    segs = sorted((scene["archive"] / "custody" / STATION).glob("custody-*.jsonl"))
    assert len(segs) >= 3
    for before, seg in itertools.pairwise(segs):
        first = json.loads(seg.read_bytes().splitlines()[0])
        assert first["event"] == "segment_opened" and first["data"]["segment"]["name"] == before.name


# -- the table: every object type x every way to tamper with it -------------------------------------------------
def _media(a: Path) -> list[Path]:
    return sorted(p for p in a.rglob("*.MP4") if p.is_file())


def _of(kind: str, a: Path) -> list[Path]:
    custody = a / "custody" / STATION
    found = {
        "media": _media(a),
        "manifest": sorted(a.rglob("*.MP4.manifest.json")),
        "signature": sorted(a.rglob("*.MP4.manifest.json.sig")),
        "amendment": sorted(a.rglob("*.amendment-*.json")),
        "amendment-signature": sorted(a.rglob("*.amendment-*.json.sig")),
        "segment": sorted(custody.glob("custody-*.jsonl")),
        "checkpoint": sorted(custody.glob("checkpoint-*.json")),
        "checkpoint-signature": sorted(custody.glob("checkpoint-*.json.sig")),
        "token": sorted(custody.glob("checkpoint-*.json.tsr")),
    }[kind]
    assert len(found) >= 2, kind
    return found


def _newer_name(p: Path) -> Path:
    """A name one higher (an amendment's number, a segment's or checkpoint's seq), else a plain rename."""
    import re

    m = re.search(r"(\d+)(\.json|\.jsonl)", p.name)
    if m and ("amendment-" in p.name or p.name.startswith(("custody-", "checkpoint-"))):
        width = len(m.group(1))
        return p.with_name(p.name[:m.start(1)] + str(int(m.group(1)) + 50).zfill(width) + p.name[m.end(1):])
    return p.with_name("renamed-" + p.name)


def delete(victim: Path, others: list[Path]) -> None:
    victim.unlink()


def rename(victim: Path, others: list[Path]) -> None:
    victim.rename(_newer_name(victim))


def replace_older(victim: Path, others: list[Path]) -> None:
    older = next(o for o in others if o != victim and o.read_bytes() != victim.read_bytes())
    victim.write_bytes(older.read_bytes())


def add_unsigned(victim: Path, others: list[Path]) -> None:
    new = _newer_name(victim) if victim.suffix != ".MP4" else victim.with_name("added.MP4")
    if new.name.startswith("renamed-"):
        new = victim.with_name("added-" + victim.name)
    new.write_bytes(b'{"format":"not signed by the station"}' if "json" in new.name else b"\0" * 64)


def truncate(victim: Path, others: list[Path]) -> None:
    """Cut in half: a malformed file gives a failed check, never a traceback."""
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])


TAMPER: dict[str, Callable[[Path, list[Path]], None]] = {
    "delete": delete, "rename": rename, "replace-older": replace_older, "add-unsigned": add_unsigned,
    "truncate": truncate}
KINDS = ["media", "manifest", "signature", "amendment", "amendment-signature", "segment", "checkpoint",
         "checkpoint-signature", "token"]


@pytest.mark.parametrize("how", list(TAMPER))
@pytest.mark.parametrize("kind", KINDS)
def test_tampering_with_any_signed_object_is_caught_in_every_mode(scene: dict[str, Any], copy: Path, kind: str,
                                                                  how: str) -> None:
    objs = _of(kind, copy)
    # the newest amendment, the oldest segment, the newest checkpoint: each the hardest case of its kind
    victim = objs[0] if kind in ("segment", "media", "manifest", "signature", "token") else objs[-1]
    TAMPER[how](victim, objs)
    for mode, (code, out) in verify_modes(scene, copy).items():
        if mode == "case" and how == "add-unsigned" and kind in ("media", "manifest", "signature"):
            continue  # an object added beside the case's clips belongs to no case: the whole archive shows it
        assert code == 1, (mode, out)
        assert "FAILED:" in out, (mode, out)


@pytest.fixture
def bag(scene: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the case's bag to do damage to."""
    return writable_copy(scene["bag"], tmp_path / "bag")


def rebag(bag: Path) -> None:
    """What someone who alters a bag does next: BagIt's manifests made anew, so only the evidence can tell."""
    import bagit  # type: ignore[import-untyped]

    cwd = os.getcwd()
    try:
        bagit.Bag(str(bag)).save(manifests=True)
    finally:
        os.chdir(cwd)


def test_the_untouched_bag_verifies(scene: dict[str, Any]) -> None:
    code, out = run("verify", "--bag", str(scene["bag"]), "--pubkey", str(scene["pub"]))
    assert code == 0, out


@pytest.mark.parametrize("how", list(TAMPER))
@pytest.mark.parametrize("kind", KINDS)
def test_tampering_with_any_object_in_a_case_file_is_caught(scene: dict[str, Any], bag: Path, kind: str,
                                                            how: str) -> None:
    root = bag / "data" / "archive"
    objs = _of(kind, root)
    victim = objs[0] if kind in ("segment", "media", "manifest", "signature") else objs[-1]
    if kind == "token":  # one the bag's own custody excerpt indexes (the newest is indexed by a later segment)
        named = {t["name"] for seg in _of("segment", root) for line in seg.read_bytes().splitlines()
                 if b'"redacted"' not in line and (e := json.loads(line))["event"] == "segment_opened"
                 for t in e["data"].get("tokens", [])}
        victim = next(t for t in objs if t.name in named)
    TAMPER[how](victim, objs)
    rebag(bag)
    code, out = run("verify", "--bag", str(bag), "--pubkey", str(scene["pub"]))
    assert code == 1, out
    assert "FAILED" in out or "failed" in out, out


def test_deleting_the_newest_token_is_caught_by_the_witness(scene: dict[str, Any], copy: Path) -> None:
    # the newest checkpoint's objects are indexed by the segment the station opens next: until then, the
    # witness (which keeps tokens too) is what shows them gone
    newest = _of("token", copy)[-1]
    newest.unlink()
    code, out = verify_modes(scene, copy)["witness"]
    assert code == 1 and "witness-token-missing" in out and newest.name in out
