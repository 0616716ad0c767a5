"""``dockgate case export``: one BagIt bag (RFC 8493) per case.

The bag is built in a temporary folder beside ``--out`` and renamed into
place only when complete and validated, so a half-written bag never sits
under the name a person will hand on. Every clip is hashed as it is copied
out of the archive and must be the SHA-256 its manifest names; a clip that is
not is refused, not packed.

Layout::

    bagit.txt bag-info.txt manifest-sha256.txt tagmanifest-sha256.txt
    文件目录.XML 说明文件.txt 四性检测报告.json 监管链报告.html 监管链报告.pdf
    data/archive/<archive key>                      clips, manifests, signatures, amendments
    data/archive/custody/<station>/...              custody segments and the checkpoints covering them
    data/keys/<station key id>.pub.pem              the station public keys (Ed25519)
    data/keys/<SM2 key id>.sm2.pub.pem              国密: the station SM2 public keys, when the clips carry SM2

Custody segments are carried whole, so their chain verifies, but an entry
about anything outside the selection (another case's clip, case number,
officer) is reduced to its hash (``custody.redact_line``). Before anything
is packed the excerpt must be complete: every clip's ``stamped`` and
``clip_archived`` entries and every amendment's ``amendment_archived``
entry in a sealed segment under a checkpoint (``completeness``); on a
running station ``case export`` asks the daemon to seal first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive import Archive
from gateway.casefile.catalogue import (
    CATALOGUE,
    CATALOGUE_CSV,
    FOUR_PROPERTIES,
    README,
    catalogue_csv,
    catalogue_rows,
    catalogue_xml,
    readme_text,
)
from gateway.casefile.checks import BagCheck, check_bag, fixity
from gateway.casefile.source import CaseEvidence, Selection, collect, custody_of, excerpt_of
from gateway.config import RetentionConfig
from gateway.durable import fsync_dir
from gateway.errors import DockgateError
from gateway.evidence.gm import SM2_PUB_SUFFIX, load_sm2_public, sm2_key_id
from gateway.evidence.gm import public_pem as sm2_public_pem
from gateway.evidence.manifest import SIG_SUFFIX
from gateway.evidence.signing import key_id, public_pem

BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


class ExportError(DockgateError):
    """The export cannot be made as asked (nothing is left under --out)."""

    reason = "usage"


class ExportRefused(ExportError):
    """What the archive holds does not check out (exit 1): a clip whose
    bytes are not its manifest's, custody not yet sealed."""

    reason = "export"

    def __init__(self, message: str, *, unsealed: list[Unsealed] | None = None) -> None:
        super().__init__(message)
        self.unsealed = unsealed or []


@dataclass(frozen=True)
class Unsealed:
    """A clip whose custody the archive does not hold complete yet."""

    sha256: str
    key: str
    missing: list[str]

    def __str__(self) -> str:
        return f"{self.key} ({self.sha256[:12]}): {', '.join(self.missing)}"


def completeness(ev: CaseEvidence) -> list[Unsealed]:
    """Clips of *ev* whose custody excerpt is not complete: each needs its
    ``stamped`` entry (the manifest's ``custody_seq``) and its
    ``clip_archived`` entry, each amendment its ``amendment_archived`` entry,
    all in archived segments under an archived, signed checkpoint."""
    covered: dict[str, int] = {}
    for k, body in ev.checkpoint_docs.items():
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            doc = json.loads(body)
            if k + SIG_SUFFIX in ev.checkpoints:
                station = str(doc.get("station"))
                covered[station] = max(covered.get(station, 0), int(doc.get("seq", 0)))
    seen: dict[tuple[str, str, str], int] = {}
    for e in ev.entries:
        data = e.entry.get("data") or {}
        name = str(e.entry.get("event"))
        ref = str(data.get("key") if name in ("clip_archived", "amendment_archived") else data.get("sha256"))
        seen[(str(e.entry.get("station")), name, ref)] = int(e.entry.get("seq", 0))
    out = []
    for c in ev.clips:
        wants = [("stamped", c.sha256), ("clip_archived", c.key)] + [("amendment_archived", ak)
                                                                       for _, ak, _ in c.amendments]
        missing = []
        for name, ref in wants:
            seq = seen.get((c.station, name, ref))
            if seq is None:
                missing.append(f"no {name} entry" + (f" for {ref.rsplit('/', 1)[-1]}" if name.startswith("amend")
                                                     else ""))
            elif seq > covered.get(c.station, 0):
                missing.append(f"{name} entry {seq} not under an archived checkpoint")
        if missing:
            out.append(Unsealed(c.sha256, c.key, missing))
    return out


@dataclass
class Exported:
    path: Path
    evidence: CaseEvidence
    check: BagCheck
    bytes: int
    seconds: float
    #: how long the export waited for the running station to seal custody (0: it did not have to)
    waited_s: float = 0.0


def _copy(archive: Archive, key: str, dest: Path, sha256: str | None = None) -> int:
    """One object out of the archive, hashed as it is written; *sha256*: what it must be."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n = 0
    with archive.read(key) as src, open(dest, "xb") as out:
        while chunk := src.read(4 << 20):
            h.update(chunk)
            out.write(chunk)
            n += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(dest, 0o444)
    if sha256 is not None and h.hexdigest() != sha256:
        raise ExportRefused(f"{key}: the archive's copy hashes to {h.hexdigest()}, its manifest says {sha256}; "
                          f"run `dockgate verify` on the archive")
    return n


def _payload(archive: Archive, ev: CaseEvidence, keys: list[Ed25519PublicKey], sm2: dict[str, bytes],
             work: Path) -> None:
    root = work / "archive"
    for c in ev.clips:
        _copy(archive, c.key, root / c.key, c.sha256)
        for k in [c.key + ".manifest.json", c.key + ".manifest.json" + SIG_SUFFIX, *c.extra_keys]:
            _copy(archive, k, root / k)
        for _, ak, _ in c.amendments:
            for k in (ak, ak + SIG_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    _copy(archive, k, root / k)
    for k in ev.segments:  # the excerpt: other cases' entries reduced to their hashes, one segment at a time
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_bytes(excerpt_of(archive, ev, k))
        os.chmod(root / k, 0o444)
    for k in ev.checkpoints:
        _copy(archive, k, root / k)
    (work / "keys").mkdir()
    for pub in keys:
        (work / "keys" / f"{key_id(pub)}.pub.pem").write_bytes(public_pem(pub))
    for kid, point in sm2.items():
        (work / "keys" / f"{kid}{SM2_PUB_SUFFIX}").write_bytes(sm2_public_pem(point))


@dataclass(frozen=True)
class Archival:
    """What the catalogue says beyond the manifests: the agency (BagIt
    ``Source-Organization``), its 全宗号 (fonds number), the 密级
    (classification) and the retention rules (保管期限), and the zone local
    times are shown in."""

    organization: str = ""
    fonds: str = ""
    classification: str = "内部"
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    tz: tzinfo | None = None


def sealed_custody(archive: Archive, ev: CaseEvidence, ask_seal: Callable[[], bool] | None,
                   wait_s: float) -> list[Unsealed]:
    """The clips whose custody is still incomplete after asking the running
    daemon to seal (*ask_seal*) and waiting up to *wait_s* for the sealed
    segments and their checkpoints to reach the archive."""
    unsealed = completeness(ev)
    if not unsealed or ask_seal is None:
        return unsealed
    deadline = time.monotonic() + wait_s
    asked = 0.0
    while unsealed and time.monotonic() < deadline:
        if time.monotonic() - asked > 5.0:  # a clip archived after the last seal needs another
            if not ask_seal():
                break
            asked = time.monotonic()
        time.sleep(0.5)
        custody_of(archive, ev)
        unsealed = completeness(ev)
    return unsealed


def export_case(archive: Archive, sel: Selection, out: Path, keys: list[Ed25519PublicKey],
                *, lang: str = "zh", reports: bool = True, sm2_keys: Sequence[bytes] = (),
                archival: Archival | None = None, ask_seal: Callable[[], bool] | None = None,
                wait_s: float = 60.0) -> Exported:
    import bagit  # type: ignore[import-untyped]  # no type information

    archival = archival or Archival()
    started = time.monotonic()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not empty; an export never writes over anything")
    ev = collect(archive, sel)
    if not ev.clips:
        raise ExportError(f"no clips in the archive for {sel.describe()}")
    wanted = {str(c.doc.get("key_id")) for c in ev.clips}
    have = {key_id(k) for k in keys}
    if missing := wanted - have:
        raise ExportError(f"the clips are signed by station key(s) {', '.join(sorted(missing))}; give each "
                          f"station's public key (--pubkey)")
    sm2_wanted = {str(c.doc["sm2_key_id"]) for c in ev.clips if c.doc.get("sm2_key_id")}
    sm2 = {sm2_key_id(p): p for p in sm2_keys}
    if missing := sm2_wanted - set(sm2):
        raise ExportError(f"the clips are signed with SM2 key(s) {', '.join(sorted(missing))}; give each "
                          f"station's SM2 public key (--sm2-pubkey)")
    asked_at = time.monotonic()
    unsealed = sealed_custody(archive, ev, ask_seal, wait_s)
    waited = time.monotonic() - asked_at
    if unsealed:
        raise ExportRefused(f"custody of {len(unsealed)} of {len(ev.clips)} clips is not yet sealed in the "
                            f"archive; nothing exported:\n" + "\n".join(f"  not yet sealed: {u}" for u in unsealed),
                            unsealed=unsealed)
    work = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    try:
        _payload(archive, ev, [k for k in keys if key_id(k) in wanted], {k: sm2[k] for k in sm2_wanted}, work)
        info = {"Source-Organization": archival.organization or "dockgate", "External-Identifier": sel.describe(),
                "External-Description": f"body-worn camera evidence: {len(ev.clips)} clips, "
                                        f"stations {', '.join(ev.stations)}",
                "Bag-Group-Identifier": sel.case or "", "Contact-Name": ""}
        bagit.make_bag(str(work), {k: v for k, v in info.items() if v}, checksums=["sha256"])
        (work / "bagit.txt").write_text(BAGIT_TXT, encoding="utf-8")  # bagit-python writes 0.97
        bag = bagit.Bag(str(work))
        check = check_bag(work, keys, with_fixity=False, sm2_keys={k: sm2[k] for k in sm2_wanted})
        rows = catalogue_rows(ev, archival.retention, archival.fonds, archival.classification, archival.tz)
        (work / CATALOGUE).write_bytes(catalogue_xml(ev, rows))
        (work / CATALOGUE_CSV).write_bytes(catalogue_csv(rows))
        (work / README).write_text(readme_text(ev, sorted(wanted), sorted(sm2_wanted)), encoding="utf-8")
        (work / FOUR_PROPERTIES).write_bytes(json.dumps(
            {"format": "dockgate-four-properties/1", "standard": "DA/T 70-2018",
             "made_at": datetime.now(UTC).isoformat(timespec="seconds"), "selection": sel.describe(),
             "ok": check.ok, "summary": check.summary, "properties": check.as_dict()},
            ensure_ascii=False, indent=2).encode() + b"\n")
        if reports:
            from gateway.casefile.report import REPORT_STEM, render_html, write_pdf

            html = render_html(ev, lang=lang, keys=keys, tz=archival.tz)
            (work / f"{REPORT_STEM}.html").write_text(html, encoding="utf-8")
            del html
            write_pdf(ev, work / f"{REPORT_STEM}.pdf", lang=lang, keys=keys, tz=archival.tz)
        cwd = os.getcwd()
        try:
            bag.save(manifests=False)  # the tag manifest now covers the tag files too
        finally:
            os.chdir(cwd)  # bagit changes directory while it saves
        problems = fixity(work)
        if problems:
            raise ExportRefused(f"the bag does not validate: {problems[0]}")
        size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
        if out.exists():
            out.rmdir()
        os.replace(work, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Exported(out, ev, check, size, time.monotonic() - started, waited)


def bag_keys(bag_dir: Path) -> list[Any]:
    """The station Ed25519 public keys packed in a bag (data/keys/*.pub.pem)."""
    from gateway.evidence.signing import load_public

    return [load_public(p) for p in sorted((bag_dir / "data" / "keys").glob("*.pub.pem"))
            if not p.name.endswith(SM2_PUB_SUFFIX)]


def bag_sm2_keys(bag_dir: Path) -> dict[str, bytes]:
    """国密: the station SM2 public keys packed in a bag, by key id."""
    points = [load_sm2_public(p) for p in sorted((bag_dir / "data" / "keys").glob(f"*{SM2_PUB_SUFFIX}"))]
    return {sm2_key_id(p): p for p in points}
