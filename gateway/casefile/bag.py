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
    data/keys/<station key id>.pub.pem              the station public keys
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive import Archive
from gateway.casefile.catalogue import CATALOGUE, FOUR_PROPERTIES, README, catalogue_xml, readme_text
from gateway.casefile.checks import BagCheck, check_bag, fixity
from gateway.casefile.source import CaseEvidence, Selection, collect
from gateway.durable import fsync_dir
from gateway.errors import DockgateError
from gateway.evidence.manifest import SIG_SUFFIX
from gateway.evidence.signing import key_id, public_pem


class ExportError(DockgateError):
    """The export cannot be made as asked (nothing is left under --out)."""

    reason = "export"


@dataclass
class Exported:
    path: Path
    evidence: CaseEvidence
    check: BagCheck
    bytes: int
    seconds: float


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
        raise ExportError(f"{key}: the archive's copy hashes to {h.hexdigest()}, its manifest says {sha256}; "
                          f"run `dockgate verify` on the archive")
    return n


def _payload(archive: Archive, ev: CaseEvidence, keys: list[Ed25519PublicKey], work: Path) -> None:
    root = work / "archive"
    for c in ev.clips:
        _copy(archive, c.key, root / c.key, c.sha256)
        for k in [c.key + ".manifest.json", c.key + ".manifest.json" + SIG_SUFFIX, *c.extra_keys]:
            _copy(archive, k, root / k)
        for _, ak, _ in c.amendments:
            for k in (ak, ak + SIG_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    _copy(archive, k, root / k)
    for k in ev.segments + ev.checkpoints:
        _copy(archive, k, root / k)
    (work / "keys").mkdir()
    for pub in keys:
        (work / "keys" / f"{key_id(pub)}.pub.pem").write_bytes(public_pem(pub))


def export_case(archive: Archive, sel: Selection, out: Path, keys: list[Ed25519PublicKey],
                *, lang: str = "zh", reports: bool = True) -> Exported:
    import bagit  # type: ignore[import-untyped]  # no type information

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
    work = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    work.mkdir(parents=True)
    try:
        _payload(archive, ev, [k for k in keys if key_id(k) in wanted], work)
        info = {"Source-Organization": "dockgate", "External-Identifier": sel.describe(),
                "External-Description": f"body-worn camera evidence: {len(ev.clips)} clips, "
                                        f"stations {', '.join(ev.stations)}",
                "Bag-Group-Identifier": sel.case or "", "Contact-Name": ""}
        bag = bagit.make_bag(str(work), {k: v for k, v in info.items() if v}, checksums=["sha256"])
        check = check_bag(work, keys, with_fixity=False)
        (work / CATALOGUE).write_bytes(catalogue_xml(ev))
        (work / README).write_text(readme_text(ev, sorted(wanted)), encoding="utf-8")
        (work / FOUR_PROPERTIES).write_bytes(json.dumps(
            {"format": "dockgate-four-properties/1", "standard": "DA/T 70-2018",
             "made_at": datetime.now(UTC).isoformat(timespec="seconds"), "selection": sel.describe(),
             "ok": check.ok, "summary": check.summary, "properties": check.as_dict()},
            ensure_ascii=False, indent=2).encode() + b"\n")
        if reports:
            from gateway.casefile.report import REPORT_STEM, render_html, render_pdf

            html = render_html(ev, lang=lang, keys=keys)
            (work / f"{REPORT_STEM}.html").write_text(html, encoding="utf-8")
            (work / f"{REPORT_STEM}.pdf").write_bytes(render_pdf(html))
        cwd = os.getcwd()
        try:
            bag.save(manifests=False)  # the tag manifest now covers the tag files too
        finally:
            os.chdir(cwd)  # bagit changes directory while it saves
        problems = fixity(work)
        if problems:
            raise ExportError(f"the bag does not validate: {problems[0]}")
        size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
        if out.exists():
            out.rmdir()
        os.replace(work, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Exported(out, ev, check, size, time.monotonic() - started)


def bag_keys(bag_dir: Path) -> list[Any]:
    """The public keys packed in a bag (data/keys/*.pub.pem)."""
    from gateway.evidence.signing import load_public

    return [load_public(p) for p in sorted((bag_dir / "data" / "keys").glob("*.pub.pem"))]
