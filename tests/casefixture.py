"""A station's archive built in seconds for measurements at case scale:
signed manifests, amendments, a hash-chained custody log sealed into
segments with signed checkpoints, through the project's own signing,
canonical JSON and custody code (no daemon, no catalog).

What it does not model: docks, pulls, forwards and their custody entries
(only ``stamped``, ``clip_archived``, ``amended`` and ``amendment_archived``
are written, with the segment index the custody log writes itself), SM2,
timestamp tokens, retention. Media are one small MP4 shared by content:
each clip is that file with a 16-byte MP4 ``free`` box appended (so every
clip has its own SHA-256 and still opens and reads through in ffmpeg).
Used by tests (small sizes) and bench/run.py (``--only casefile``); the
history generator of issue 30 (bench/history.py) is the fuller one.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.evidence.checkpoint import is_checkpoint
from gateway.evidence.custody import CustodyLog
from gateway.evidence.manifest import MANIFEST_SUFFIX, SIG_SUFFIX, amendment_suffix, iso, sign_document
from gateway.evidence.signing import Signer, keygen

STATION = "bench-01"
OFFICERS = ("0123456", "0654321", "0111111", "0222222")


def base_mp4(path: Path, seconds: int = 1) -> bytes:
    """A tiny MP4 (made once per folder with ffmpeg)."""
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc=duration={seconds}:size=64x48:rate=5", "-c:v", "mpeg4", "-f", "mp4",
                        str(path)], check=True)
    return path.read_bytes()


def unique(base: bytes, n: int, pad: int = 0) -> bytes:
    """*base* with a ``free`` box naming *n* (and *pad* zero bytes, for
    clips of a given size): a clip of its own hash."""
    return base + struct.pack(">I4s", 24 + pad, b"free") + n.to_bytes(16, "big") + bytes(pad)


@dataclass
class Built:
    root: Path
    pub: Path
    signer: Signer
    custody_dir: Path
    #: archive keys of the media, by case ("" for none)
    clips: dict[str, list[str]] = field(default_factory=dict)
    #: the custody log, still open on the station side (``grow`` appends to it)
    log: CustodyLog | None = None
    base: bytes = b""
    made: int = 0
    #: bytes of padding per clip (0: some 4 KiB clips)
    pad: int = 0


def _clip(b: Built, n: int, case: str | None, capture: float, log: CustodyLog) -> str:
    data = unique(b.base, n, b.pad)
    sha = hashlib.sha256(data).hexdigest()
    officer = OFFICERS[n % len(OFFICERS)]
    day = datetime.fromtimestamp(capture, UTC)
    key = f"{officer}/{day:%Y-%m-%d}/SN{n % 7:04d}/{officer}_{day:%Y%m%d%H%M%S}_{n:06d}.MP4"
    doc = {
        "format": "dockgate-manifest/1", "case_number": case,
        "capture_time": {"utc": iso(capture), "recorder_clock": f"{day:%Y-%m-%dT%H:%M:%S}", "plausible": True},
        "capture_place": {"text": "bench", "source": "station"},
        "collector": {"officer": officer, "name": "测试", "unit": "bench"},
        "proof_object": "bench" if case else None, "importance": {"important": False, "source": "default"},
        "category": None, "assignment": None,
        "clip": {"sha256": sha, "size": len(data), "original_path": key.rsplit("/", 1)[-1], "archive_key": key,
                 "partial": False, "container": {"format": "mp4", "duration_s": 1.0}},
        "recorder": {"serial": f"SN{n % 7:04d}", "model": "bench", "profile": "bench", "clock_drift_s": 0.0},
        "station": {"id": STATION, "slot": 1, "location": "bench"},
        "custody_seq": log.seq + 1, "stamped_at": iso(capture + 60), "key_id": b.signer.key_id,
    }
    signed = sign_document(doc, b.signer)
    log.append("stamped", sync=False, sha256=sha, manifest_sha256=signed.sha256, key=key,
               signature_sha256=hashlib.sha256(signed.signature).hexdigest(), partial=False,
               capture_utc=iso(capture), case_number=case)
    target = b.root / key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.with_name(target.name + MANIFEST_SUFFIX).write_bytes(signed.body)
    target.with_name(target.name + MANIFEST_SUFFIX + SIG_SUFFIX).write_bytes(signed.signature)
    log.append("clip_archived", sync=False, sha256=sha, key=key, size=len(data), partial=False)
    b.clips.setdefault(case or "", []).append(key)
    return key


def amend(b: Built, key: str, case: str, n: int = 1) -> None:
    """File the clip at *key* under *case* by a signed amendment (its *n*th)."""
    assert b.log is not None
    manifest = (b.root / (key + MANIFEST_SUFFIX)).read_bytes()
    sha = hashlib.sha256((b.root / key).read_bytes()).hexdigest()
    doc = {"format": "dockgate-amendment/1",
           "amends": {"sha256": sha, "manifest_sha256": hashlib.sha256(manifest).hexdigest(), "archive_key": key},
           "previous_sha256": None, "case_number": case, "proof_object": "bench", "category": None,
           "important": None, "assignment": None, "custody_seq": b.log.seq + 1,
           "issued_at": iso(datetime.now(UTC).timestamp()), "key_id": b.signer.key_id}
    signed = sign_document(doc, b.signer)
    sig_sha = hashlib.sha256(signed.signature).hexdigest()
    b.log.append("amended", sync=False, sha256=sha, assignment=n, amendment_sha256=signed.sha256,
                 signature_sha256=sig_sha, case_number=case, manifest_sha256=hashlib.sha256(manifest).hexdigest())
    ak = key + amendment_suffix(n)
    (b.root / ak).write_bytes(signed.body)
    (b.root / (ak + SIG_SUFFIX)).write_bytes(signed.signature)
    b.log.append("amendment_archived", sync=False, sha256=sha, key=ak, amendment_sha256=signed.sha256,
                 signature_sha256=sig_sha)
    b.clips.setdefault(case, []).append(key)


def publish(b: Built) -> None:
    """Seal the open segment and put every sealed segment and checkpoint in
    the archive (as the forwarder does), the newest open segment not."""
    assert b.log is not None
    b.log.seal()
    b.log.sync()
    dest = b.root / "custody" / STATION
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(b.custody_dir.iterdir()):
        if p.name.endswith(".open.jsonl") or p.name.startswith("."):
            continue
        if (p.name.endswith(".jsonl") or is_checkpoint(p.name) or p.name.endswith(".json" + SIG_SUFFIX)) and not (
                dest / p.name).exists():
            shutil.copy2(p, dest / p.name)


def grow(b: Built, clips: int, *, case: str | None = None, case_every: int = 0, start: float = 1.7e9) -> list[str]:
    """*clips* more clips, a minute apart; every *case_every*-th one under
    *case* (all of them with ``case_every=1``); sealed and published."""
    assert b.log is not None
    made = []
    for _ in range(clips):
        n = b.made
        b.made += 1
        in_case = case if case is not None and case_every and n % case_every == 0 else None
        made.append(_clip(b, n, in_case, start + 60 * n, b.log))
        b.log.maybe_rotate()
    publish(b)
    return made


def build(work: Path, clips: int, *, case: str = "C-1", case_every: int = 1, rotate_entries: int = 1000,
          pad: int = 0) -> Built:
    """An archive under *work*/archive of *clips* clips, every
    *case_every*-th filed under *case* (0: none); its public key beside;
    each clip *pad* bytes larger than the small base clip."""
    work.mkdir(parents=True, exist_ok=True)
    signer = keygen(work / "station.key", work / "station.pub.pem", force=True)
    root = work / "archive"
    root.mkdir(exist_ok=True)
    custody_dir = work / "custody"
    b = Built(root, work / "station.pub.pem", signer, custody_dir, base=base_mp4(work / "base.mp4"), pad=pad)
    b.log = CustodyLog(custody_dir, signer, STATION, rotate_entries=rotate_entries, rotate_s=1e9)
    grow(b, clips, case=case if case_every else None, case_every=case_every)
    return b
