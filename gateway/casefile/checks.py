"""The four-properties check (DA/T 70: 真实性 authenticity, 完整性 integrity,
可用性 usability, 安全性 security) of a case-file bag, offline.

* authenticity: every manifest, amendment, custody entry and checkpoint is
  signed by a known station key (``dockgate verify``'s signature checks);
* integrity: the bag's own fixity (BagIt ``manifest-sha256``/tag manifest),
  every clip against its manifest, the custody excerpt's sequence and chain,
  the checkpoints' heads;
* usability: each container opens (ffprobe) and its packets read through
  (``ffmpeg -c copy -f null``: demuxed, not decoded) to the duration its manifest states; a
  clip archived as ``partial`` may be short, and is said to be;
* security: nothing in the bag that the export did not put there (no
  symbolic links, no executables, no file of a kind it does not write).

Used by ``case export`` (its ``四性检测报告.json`` tag file) and by
``dockgate verify --bag``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive.directory import DirectoryArchive
from gateway.evidence.manifest import MANIFEST_SUFFIX, is_evidence_metadata
from gateway.evidence.verify import Verifier

PROPERTIES = ("authenticity", "integrity", "usability", "security")
#: the tag files an export writes (besides BagIt's own)
TAG_FILES = ("文件目录.XML", "文件目录.CSV", "说明文件.txt", "四性检测报告.json", "监管链报告.html", "监管链报告.pdf")
_BAGIT_TAGS = ("bagit.txt", "bag-info.txt")
#: the PDF report of a large case, in volumes (gateway/casefile/report.py, ``volume_paths``)
_VOLUME = re.compile(r"监管链报告-\d{3}\.pdf")
#: a container may be this much shorter than its manifest says (rounding, last frame)
DURATION_SLACK_S = 0.5


@dataclass(frozen=True)
class Finding:
    prop: str
    check: str
    obj: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.obj}: {self.detail}"


@dataclass
class Usable:
    """What ffprobe says about one container."""

    key: str
    duration_s: float | None
    stated_s: float | None
    partial: bool
    ok: bool
    detail: str


@dataclass
class BagCheck:
    failures: list[Finding] = field(default_factory=list)
    passed: dict[str, list[str]] = field(default_factory=lambda: {p: [] for p in PROPERTIES})
    usable: list[Usable] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {p: {"ok": not any(f.prop == p for f in self.failures),
                    "checked": self.passed[p],
                    "failures": [{"check": f.check, "object": f.obj, "detail": f.detail}
                                 for f in self.failures if f.prop == p]} for p in PROPERTIES} | {
            "containers": [{"key": u.key, "duration_s": u.duration_s, "stated_duration_s": u.stated_s,
                            "partial": u.partial, "ok": u.ok, "detail": u.detail} for u in self.usable]}


def _prop_of(check: str) -> str:
    return "authenticity" if check.endswith(("-signature", "-key-id", "-format")) else "integrity"


def fixity(bag_dir: Path) -> list[Finding]:
    """BagIt validation (payload and tag manifests), each problem naming its file."""
    import logging

    import bagit  # type: ignore[import-untyped]  # no type information

    quiet = logging.getLogger("bagit")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs each problem too; ours are the findings
    try:
        bagit.Bag(str(bag_dir)).validate(processes=1)
    except bagit.BagValidationError as e:
        details = getattr(e, "details", None) or []
        if not details:
            return [Finding("integrity", "bag-fixity", str(bag_dir), str(e.message))]
        out = []
        for d in details:
            if hasattr(d, "found") and hasattr(d, "expected"):
                why = f"{d.algorithm} {d.found}, the bag's manifest says {d.expected}"
            else:
                why = str(d)
            out.append(Finding("integrity", "bag-fixity", str(getattr(d, "path", bag_dir)), why))
        return out
    except bagit.BagError as e:
        return [Finding("integrity", "bag-fixity", str(bag_dir), str(e))]
    except (UnicodeError, ValueError, OSError) as e:  # a tag file bagit cannot even read
        return [Finding("integrity", "bag-fixity", str(bag_dir), f"unreadable BagIt tag file: {e}")]
    finally:
        quiet.setLevel(level)
    return []


def probe_container(path: Path) -> tuple[float | None, str]:
    """(duration from the container, problems reading its packets). One
    ffprobe that reads every packet through (``-count_packets``: the
    demuxer ``ffmpeg -c copy -f null`` runs, nothing decoded), not an ffprobe
    and an ffmpeg: a process start is most of what a small clip costs."""
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                              "format=duration,format_name:stream=nb_read_packets", "-of", "json", str(path)],
                             capture_output=True, text=True, timeout=600, check=False)
        fmt = json.loads(out.stdout or "{}").get("format") or {}
        duration = float(fmt["duration"]) if fmt.get("duration") not in (None, "N/A") else None
    except FileNotFoundError as e:
        return None, f"cannot check: {e.filename} is not installed"
    except (subprocess.TimeoutExpired, ValueError) as e:
        return None, f"cannot read the container: {e}"
    problems = out.stderr.strip()
    if out.returncode != 0:
        problems = problems or f"ffprobe exited {out.returncode}"
    return duration, problems.splitlines()[0] if problems else ""


#: containers one ffmpeg reads through together (a process start costs more than a small clip's packets)
PROBE_BATCH = 64
_INPUT = re.compile(r"^\[info\] Input #(\d+), ")
#: the level tag follows a component's own prefix: "[mov,mp4,... @ 0x...] [error] ..."
_SEVERE = re.compile(r"(?:^|\] )\[(?:error|fatal|panic)\] ")
_DURATION = re.compile(r"^\[info\]\s+Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)")


def probe_batch(paths: list[Path]) -> list[tuple[float | None, str]] | None:
    """Several containers read through by one ``ffmpeg -c copy -f null``
    (every packet demuxed, none decoded), each one's duration from its
    header. None when anything at all was said at error level, or ffmpeg
    failed: the caller then probes each alone, so a problem is named for
    its own clip."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "level+info"]
    for p in paths:
        cmd += ["-i", str(p)]
    for i in range(len(paths)):
        cmd += ["-map", str(i)]
    try:
        out = subprocess.run([*cmd, "-c", "copy", "-f", "null", "-"], capture_output=True, text=True,
                             timeout=600, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    lines = out.stderr.splitlines()
    if out.returncode != 0 or any(_SEVERE.search(x) for x in lines):
        return None
    durations: dict[int, float | None] = {}
    current: int | None = None
    for line in lines:
        if m := _INPUT.match(line):
            current = int(m.group(1))
        elif current is not None and (m := _DURATION.match(line)):
            durations[current] = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
                                  if m.group(1) is not None else None)
            current = None
    if set(durations) != set(range(len(paths))):
        return None
    return [(durations[i], "") for i in range(len(paths))]


def usability(archive_root: Path, manifests: dict[str, dict[str, Any]]) -> list[Usable]:
    """Each container read through: in batches of ``PROBE_BATCH`` by one
    ffmpeg (as many batches at once as there are CPUs); a batch where
    anything goes wrong is probed again clip by clip, which names the clip."""
    from concurrent.futures import ThreadPoolExecutor

    items = sorted(manifests.items())
    batches = [items[i:i + PROBE_BATCH] for i in range(0, len(items), PROBE_BATCH)]

    def run(batch: list[tuple[str, dict[str, Any]]]) -> list[tuple[float | None, str]]:
        paths = [archive_root / k for k, _ in batch]
        got = probe_batch(paths) if len(paths) > 1 else None
        return got if got is not None else [probe_container(p) for p in paths]

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        probed = [r for rs in pool.map(run, batches) for r in rs]
    out = []
    for (key, doc), (duration, problems) in zip(items, probed, strict=True):
        clip = doc.get("clip") or {}
        stated = (clip.get("container") or {}).get("duration_s")
        partial = bool(clip.get("partial"))
        if partial:
            ok, why = True, "archived as partial (cut short while recording): may be short"
        elif duration is None:
            ok, why = False, problems or "the container states no duration"
        elif problems:
            ok, why = False, problems
        elif stated is not None and duration + DURATION_SLACK_S < float(stated):
            ok, why = False, f"plays {duration:.2f} s, its manifest states {float(stated):.2f} s"
        else:
            ok, why = True, f"opens and reads through, {duration:.2f} s"
        out.append(Usable(key, duration, stated, partial, ok, why))
    return out


def security(bag_dir: Path) -> tuple[list[Finding], int]:
    """Only what an export writes: BagIt's files, our tag files, evidence
    objects under data/archive, station keys under data/keys."""
    bad: list[Finding] = []
    n = 0
    archive = bag_dir / "data" / "archive"
    manifest_keys = set()
    for p in archive.rglob(f"*{MANIFEST_SUFFIX}"):
        manifest_keys.add(p.relative_to(archive).as_posix()[: -len(MANIFEST_SUFFIX)])
    for dirpath, dirs, files in os.walk(bag_dir):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(bag_dir).as_posix()
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                bad.append(Finding("security", "security-link", rel, "a symbolic link"))
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            n += 1
            if not stat.S_ISREG(st.st_mode):
                bad.append(Finding("security", "security-type", rel, "not a regular file"))
            elif st.st_mode & 0o111:
                bad.append(Finding("security", "security-executable", rel, "executable"))
            elif "/" not in rel:
                if rel not in TAG_FILES + _BAGIT_TAGS and not rel.startswith(("manifest-", "tagmanifest-")) and \
                        not _VOLUME.fullmatch(rel):
                    bad.append(Finding("security", "security-unexpected", rel, "a file the export does not write"))
            elif rel.startswith("data/keys/"):
                if not rel.endswith(".pub.pem"):
                    bad.append(Finding("security", "security-unexpected", rel, "not a public key"))
            elif rel.startswith("data/archive/"):
                key = rel[len("data/archive/"):]
                if not (is_evidence_metadata(key) or key.endswith(".json.tsr") or key in manifest_keys):
                    bad.append(Finding("security", "security-unexpected", rel, "neither a stamped clip nor "
                                                                              "its evidence"))
            else:
                bad.append(Finding("security", "security-unexpected", rel, "a file the export does not write"))
    return bad, n


def sm2_findings(root: Path, sm2_keys: dict[str, bytes]) -> list[Finding]:
    """国密 manifests (naming an ``sm2_key_id``) whose SM2 key the bag does
    not carry: their SM2 signatures could not be checked, so the bag fails."""
    out = []
    for p in sorted(root.rglob(f"*{MANIFEST_SUFFIX}")):
        try:
            kid = json.loads(p.read_bytes()).get("sm2_key_id")
        except (ValueError, AttributeError):
            continue  # the verifier names it
        if kid and kid not in sm2_keys:
            out.append(Finding("authenticity", "manifest-sm2-key-id", p.relative_to(root).as_posix(),
                               f"signed with SM2 key {kid}, which the bag does not carry (data/keys/*.sm2.pub.pem)"))
    return out


def _bag_case(bag_dir: Path) -> str | None:
    """The case a bag is for (bag-info.txt ``Bag-Group-Identifier``), if any."""
    try:
        for line in (bag_dir / "bag-info.txt").read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "Bag-Group-Identifier" and value.strip():
                return value.strip()
    except OSError:
        pass
    return None


def _payload_digests(bag_dir: Path) -> dict[str, tuple[str, int]]:
    """(SHA-256, size) of each payload file under data/archive/ as the bag's
    manifest-sha256.txt gives it: called only once BagIt fixity held, so
    each is what the file hashes to now."""
    out: dict[str, tuple[str, int]] = {}
    try:
        text = (bag_dir / "manifest-sha256.txt").read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        digest, _, rel = line.partition(" ")
        rel = rel.strip().lstrip("*")
        for enc, ch in (("%0D", "\r"), ("%0A", "\n"), ("%25", "%")):  # bagit's own encoding of names
            rel = rel.replace(enc, ch).replace(enc.lower(), ch)
        if rel.startswith("data/archive/") and len(digest) == 64:
            try:
                out[rel[len("data/archive/"):]] = (digest.lower(), (bag_dir / rel).stat().st_size)
            except OSError:
                continue
    return out


def check_bag(bag_dir: Path, keys: list[Ed25519PublicKey], *, with_fixity: bool = True,
              sm2_keys: dict[str, bytes] | None = None) -> BagCheck:
    """Every check of the four properties on the bag at *bag_dir*, offline;
    *sm2_keys*: 国密 SM2 public points by key id (the bag's, see
    ``bag.bag_sm2_keys``), every 国密 manifest's SM2 signature checked with them."""
    result = BagCheck()
    known: dict[str, tuple[str, int]] = {}
    if with_fixity:
        bad = fixity(bag_dir)
        result.failures += bad
        result.passed["integrity"].append("bag-fixity (BagIt manifest-sha256, tagmanifest-sha256)")
        if not bad:  # every payload file is the hash the bag's manifest gives: the verifier need not hash again
            known = _payload_digests(bag_dir)
    root = bag_dir / "data" / "archive"
    sm2_keys = sm2_keys or {}
    missing_sm2 = [] if sm2_keys else sm2_findings(root, sm2_keys)  # else the verifier names unknown keys
    # the case the bag is for: every clip its custody excerpt files under it must be there (evidence/graph.py)
    case = _bag_case(bag_dir)
    present = {p.relative_to(root).as_posix()[: -len(MANIFEST_SUFFIX)] for p in root.rglob(f"*{MANIFEST_SUFFIX}")}
    verifier = Verifier(DirectoryArchive(root), keys, excerpt=True, sm2_keys=sm2_keys, case=case,
                        case_keys=present, digests=known.get)
    report = verifier.run()
    result.failures += missing_sm2
    result.failures += [Finding(_prop_of(f.check), f.check, f.obj, f.detail) for f in report.failures]
    result.passed["authenticity"].append("signatures and key ids of manifests, amendments, custody entries, "
                                         "checkpoints" + ("; SM2 signatures of manifests (国密)" if sm2_keys else ""))
    result.passed["integrity"].append("media against manifests (sha256, size), amendments against manifests, "
                                      "custody sequence and hash chain, checkpoint heads")
    result.summary = report.summary()
    manifests = {}
    for p in root.rglob(f"*{MANIFEST_SUFFIX}"):
        try:
            doc = json.loads(p.read_bytes())
        except ValueError:
            continue  # the verifier named it
        if isinstance(doc, dict):
            manifests[p.relative_to(root).as_posix()[: -len(MANIFEST_SUFFIX)]] = doc
    result.usable = usability(root, manifests)
    result.failures += [Finding("usability", "usability", u.key, u.detail) for u in result.usable if not u.ok]
    result.passed["usability"].append(f"{len(result.usable)} containers opened and read through "
                                      "(ffmpeg -c copy -f null, no decoding)")
    bad, n = security(bag_dir)
    result.failures += bad
    result.passed["security"].append(f"{n} files: no links, no executables, nothing the export does not write")
    return result
