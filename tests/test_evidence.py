"""Evidence end to end: real MP4s (one cut short) from a ZFY recorder with a
drifting clock, an assignment before docking and one after archiving, then
every kind of tampering against `dockgate verify`."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import DaemonProc, attach, dockgate, events

pytestmark = pytest.mark.e2e
OFFICER = "0123456"
DRIFT = 120  # the recorder runs two minutes fast


def ffmpeg_clip(path: Path, created: str | None, seconds: int = 2) -> None:
    meta = ["-metadata", f"creation_time={created}"] if created else []
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=320x240:rate=15",
                    "-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:v", "mpeg4", "-c:a", "aac", "-shortest",
                    *meta, str(path)], check=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("evidence")
    rec = tmp / "rec"
    day = rec / "storage" / "DCIM" / "20240301"
    day.mkdir(parents=True)
    (rec / "device.toml").write_text(f'serial = "ZF00042"\nofficer = "{OFFICER}"\nofficer_name = "张伟"\n'
                                     f'unit = "城关派出所"\nprotocol = "bc-text"\nclock_offset_s = {DRIFT}\n')
    # recorder clock times; capture UTC = these minus the drift
    ffmpeg_clip(day / f"{OFFICER}_20240301163015_0001.MP4", "2024-03-01T08:30:15Z")
    ffmpeg_clip(day / f"{OFFICER}_20240301180000_0002.MP4", "2024-03-01T10:00:00Z")
    cut = day / f"{OFFICER}_20240301190000_0003.MP4"
    ffmpeg_clip(cut, "2024-03-01T11:00:00Z", seconds=3)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])  # power lost before the index was written
    station = write_station(tmp / "station", slots=2, reserve_bytes=0, custody_rotate_s=1.0)
    cfg = load_config(station)
    # before docking: the 08:00-09:00 UTC clips belong to case A
    dockgate("assign", "-c", str(station), "--officer", OFFICER, "--from", "2024-03-01T08:00:00+00:00",
             "--to", "2024-03-01T09:00:00+00:00", "--case", "A-2024-001", "--proof", "违章停车",
             "--category", "traffic")
    d = DaemonProc(station, tmp / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, timeout=60,
                   what="3 clips archived")
        manifests = sorted(cfg.archive.path.rglob("*.manifest.json"))
        before = {p: p.read_bytes() for p in manifests}
        # after archiving: 09:30-10:30 UTC becomes case B, by amendment
        dockgate("assign", "-c", str(station), "--officer", OFFICER, "--from", "2024-03-01T09:30:00+00:00",
                 "--to", "2024-03-01T10:30:00+00:00", "--case", "B-2024-002", "--proof", "酒驾")
        d.wait_for(lambda s: any(cfg.archive.path.rglob("*.amendment-*.json.sig")), timeout=30,
                   what="amendment archived")
        d.wait_for(lambda s: len(list((cfg.archive.path / "custody").rglob("*.jsonl"))) >= 2, timeout=30,
                   what="custody segments archived")
        assert {p: p.read_bytes() for p in manifests} == before  # nothing signed was rewritten
    finally:
        assert d.stop() == 0
    yield {"station": station, "archive": cfg.archive.path, "pub": cfg.public_key_file, "tmp": tmp}


def manifest_of(archive: Path, clip_no: str) -> tuple[Path, dict]:
    (m,) = [p for p in archive.rglob("*.manifest.json") if f"_{clip_no}_" in p.name]
    return m, json.loads(m.read_bytes())


def test_manifest_carries_the_required_items(run: dict[str, Path]) -> None:
    _, doc = manifest_of(run["archive"], "0001")
    assert doc["case_number"] == "A-2024-001" and doc["proof_object"] == "违章停车"
    assert doc["category"] == "traffic"
    assert doc["collector"] == {"officer": OFFICER, "name": "张伟", "unit": "城关派出所"}
    assert doc["capture_place"]["text"] == "simulated precinct"
    t = doc["capture_time"]
    assert t["recorder_clock"] == "2024-03-01T08:30:15Z" and t["source"] == "container"
    from datetime import datetime

    drift = doc["recorder"]["clock_drift_s"]
    assert abs(drift - DRIFT) <= 1.5 and t["drift_s"] == drift
    shift = datetime.fromisoformat(t["recorder_clock"]) - datetime.fromisoformat(t["utc"])
    assert abs(shift.total_seconds() - drift) <= 1  # corrected by the measured drift
    assert doc["recorder"]["serial"] == "ZF00042" and not doc["clip"]["partial"]
    assert doc["clip"]["container"]["format"] == "MPEG-4" and doc["clip"]["container"]["duration_s"] > 1
    assert doc["station"]["slot"] == 1


def test_truncated_mp4_is_archived_as_partial(run: dict[str, Path]) -> None:
    m, doc = manifest_of(run["archive"], "0003")
    assert doc["clip"]["partial"] is True
    # the container lost its index, and BC+ names are not parsed for facts (no source gives the rule)
    assert doc["capture_time"]["source"] == "file_mtime"
    assert Path(str(m)[: -len(".manifest.json")]).exists()
    assert events(run["station"], "partial_clip")


def test_late_assignment_is_a_signed_amendment(run: dict[str, Path]) -> None:
    m, doc = manifest_of(run["archive"], "0002")
    assert doc["case_number"] is None  # stamped before the assignment existed
    (amend,) = list(m.parent.glob(m.name.replace(".manifest.json", ".amendment-*.json")))
    a = json.loads(amend.read_bytes())
    assert a["case_number"] == "B-2024-002" and a["proof_object"] == "酒驾"
    import hashlib

    assert a["amends"]["manifest_sha256"] == hashlib.sha256(m.read_bytes()).hexdigest()


def test_untouched_archive_verifies(run: dict[str, Path]) -> None:
    r = dockgate("verify", "--archive", str(run["archive"]), "--pubkey", str(run["pub"]))
    assert r.stdout.startswith("OK: 3 clips (1 partial), 1 amendments")


def test_openssl_procedure_in_the_docs_verifies_a_real_manifest(run: dict[str, Path]) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "verify.md").read_text()
    script = re.search(r"```sh\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    m, _ = manifest_of(run["archive"], "0001")
    clip = str(m)[: -len(".manifest.json")]
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env={**os.environ, "CLIP": clip,
                         "PUB": str(run["pub"])}, capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == out[1] and len(out[0]) == 64          # media hash = manifest hash
    assert out[2] == out[3] and len(out[2]) == 64          # key id
    assert "Signature Verified Successfully" in out[4]


def _flip(path: Path, offset: int, mask: int = 1) -> None:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _digit_in(path: Path, field: bytes) -> int:
    data = path.read_bytes()
    return data.index(field) + len(field) + 1  # first digit after the opening quote/colon


def tamper(kind: str, archive: Path) -> str:
    m, _ = manifest_of(archive, "0001")
    media = Path(str(m)[: -len(".manifest.json")])
    if kind == "media":
        _flip(media, media.stat().st_size // 2)
        return media.name
    if kind == "manifest":
        _flip(m, _digit_in(m, b'"size":') - 1)
        return m.name
    if kind == "signature":
        _flip(Path(str(m) + ".sig"), 10)
        return m.name
    if kind == "amendment":
        (a,) = archive.rglob("*.amendment-*.json")
        _flip(a, _digit_in(a, b'"custody_seq":') - 1)
        return a.name
    # the segment with the most entries: with rotation every second, the first may hold one or two
    seg = max(sorted((archive / "custody").rglob("*.jsonl")), key=lambda p: p.read_bytes().count(b"\n"))
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.chmod(0o644)
    if kind == "custody-entry":
        i = len(lines) // 2
        lines[i] = lines[i].replace(b'"ts":"20', b'"ts":"21', 1)
    else:  # delete one custody entry
        del lines[len(lines) // 2]
    seg.write_bytes(b"".join(lines))
    return seg.name


@pytest.mark.parametrize(("kind", "check"), [
    ("media", "media-hash"), ("manifest", "manifest-signature"), ("signature", "manifest-signature"),
    ("amendment", "amendment-signature"), ("custody-entry", "custody-signature"),
    ("custody-delete", "custody-sequence"),
])
def test_any_tampering_fails_verification_and_names_it(run: dict[str, Path], tmp_path: Path, kind: str,
                                                      check: str) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(run["archive"], copy)
    obj = tamper(kind, copy)
    r = dockgate("verify", "--archive", str(copy), "--pubkey", str(run["pub"]), check=False)
    assert r.returncode == 1, r.stdout
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"FAILED: {check}: ") and obj in first, r.stderr


def test_wrong_public_key_fails(run: dict[str, Path], tmp_path: Path) -> None:
    dockgate("keygen", str(tmp_path / "other.key"))
    r = dockgate("verify", "--archive", str(run["archive"]), "--pubkey", str(tmp_path / "other.pub.pem"),
                 check=False)
    assert r.returncode == 1 and "key-id" in r.stderr


def test_a_container_date_that_is_no_date_is_no_capture_time() -> None:
    from gateway.evidence.container import _parse_time

    assert _parse_time("UTC 2024-13-01 08:30:15") is None and _parse_time("2024-02-30 25:61:61 UTC") is None
    assert _parse_time("UTC 2024-03-01 08:30:15") == "2024-03-01T08:30:15Z"
