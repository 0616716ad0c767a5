"""The case-file commands: ``case export``, ``case report`` and
``verify --bag`` (registered by ``gateway/cli/main.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.common import UsageError, parse_time


def _pubkeys(paths: list[str], fallback: Path | None) -> list[Any]:
    from gateway.evidence.signing import KeyError_, load_public

    chosen = [Path(p) for p in paths] or ([fallback] if fallback else [])
    if not chosen:
        raise UsageError("give --pubkey PEM (each station's public key)")
    for p in chosen:
        if not p.is_file():
            raise UsageError(f"{p}: no such public key file")
    try:
        return [load_public(p) for p in chosen]
    except KeyError_ as e:  # a file given that is no key: the command line's fault (exit 2)
        raise UsageError(str(e)) from None


def _sm2_pubkeys(paths: list[str | Path]) -> list[bytes]:
    """国密: SM2 public points from PEM files given on the command line."""
    from gateway.evidence.gm import load_sm2_public

    points = []
    for p in map(Path, paths):
        try:
            points.append(load_sm2_public(p))
        except FileNotFoundError:
            raise UsageError(f"{p}: no such SM2 public key file") from None
        except (OSError, ValueError, IndexError) as e:
            raise UsageError(f"{p}: not an SM2 public key PEM: {e}") from None
    return points


def open_source(args: argparse.Namespace) -> tuple[Any, list[Any], Any]:
    """The archive to read (``--archive DIR`` or the station config's), the
    station public keys, and the station config (None with ``--archive``)."""
    from gateway import default_config_path
    from gateway.archive.directory import DirectoryArchive
    from gateway.config import load_config

    if args.archive:
        if not Path(args.archive).is_dir():
            raise UsageError(f"{args.archive}: no such directory")
        return DirectoryArchive(Path(args.archive)), _pubkeys(args.pubkey, None), None
    from gateway.archive import open_archive

    cfg = load_config(args.config or default_config_path())
    if cfg.archive.backend == "directory" and not cfg.archive.path.is_dir():
        raise UsageError(f"{cfg.archive.path}: the archive is not there (not mounted?)")
    return open_archive(cfg), _pubkeys(args.pubkey, cfg.public_key_file), cfg


def _zone(name: str | None) -> Any:
    """``--tz``: an IANA zone for local times (default: this machine's)."""
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {name}: no such time zone (an IANA name, e.g. Asia/Shanghai)") from None


def _seal_asker(cfg: Any) -> Callable[[], bool] | None:
    """How the export asks a running daemon of this station to seal its
    custody log now (gateway/process/runfiles.py); None when no daemon runs."""
    if cfg is None:
        return None
    from gateway.process.runfiles import daemon_running, request_seal

    if not daemon_running(cfg.run_dir):
        return None
    return lambda: request_seal(cfg.run_dir)


def _selection(args: argparse.Namespace) -> Any:
    from gateway.casefile.source import Selection

    if args.case and (args.officer or args.start or args.end):
        raise UsageError("give a case number, or --officer/--from/--to, not both")
    if not args.case and not (args.officer and args.start and args.end):
        raise UsageError("give a case number, or --officer with --from and --to")
    return Selection(case=args.case, officer=args.officer, start=parse_time(args.start) if args.start else None,
                     end=parse_time(args.end) if args.end else None)


def cmd_case_export(args: argparse.Namespace) -> int:
    from gateway.casefile.bag import Archival, ExportRefused, export_case
    from gateway.config import RetentionConfig

    archive, keys, cfg = open_source(args)
    sm2_paths: list[str | Path] = list(args.sm2_pubkey)
    if not sm2_paths and cfg is not None and cfg.evidence.sm2_key_file is not None:
        sm2_paths = [cfg.evidence.sm2_key_file.with_suffix(".pub.pem")]  # where `keygen --sm2` writes it
    archival = Archival(organization=cfg.station.agency if cfg else "", fonds=args.fonds or
                        (cfg.station.fonds if cfg else ""), classification=args.classification,
                        retention=cfg.retention if cfg else RetentionConfig(), tz=_zone(args.tz))
    try:
        done = export_case(archive, _selection(args), Path(args.out), keys, lang=args.lang,
                           sm2_keys=_sm2_pubkeys(sm2_paths), archival=archival, ask_seal=_seal_asker(cfg),
                           wait_s=args.wait)
    except ExportRefused as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    c = done.check
    if done.waited_s >= 0.5:
        print(f"custody sealed by the running station and archived in {done.waited_s:.1f} s")
    print(f"{done.path}: {len(done.evidence.clips)} clips, {len(done.evidence.segments)} custody segments, "
          f"{len(done.evidence.checkpoints)} checkpoint files; {done.bytes} bytes in {done.seconds:.1f} s")
    if c.ok:
        print("four properties: authenticity, integrity, usability, security hold")
        return 0
    for f in c.failures:
        print(f"FAILED: {f.prop}: {f}", file=sys.stderr)
    return 1


def cmd_case_report(args: argparse.Namespace) -> int:
    from gateway.casefile.report import render_html, write_pdf
    from gateway.casefile.source import collect

    archive, keys, _ = open_source(args)
    ev = collect(archive, _selection(args))
    if args.clip:
        ev.clips = [c for c in ev.clips if args.clip in (c.sha256, c.key)]
    if not ev.clips:
        raise UsageError("no such clips in the archive")
    out = Path(args.out)
    if out.suffix.lower() == ".pdf":
        paths = write_pdf(ev, out, lang=args.lang, keys=keys, tz=_zone(args.tz))
        print(f"{', '.join(map(str, paths))}: custody report of {len(ev.clips)} clips")
        return 0
    out.write_text(render_html(ev, lang=args.lang, keys=keys, only=args.clip, tz=_zone(args.tz)), encoding="utf-8")
    print(f"{out}: custody report of {len(ev.clips)} clips")
    return 0


def _bag_keys(bag: Path) -> tuple[list[Any], dict[str, bytes], list[Any]]:
    """The station keys a bag carries (Ed25519, SM2 by key id), and a
    finding for each file under data/keys that is no such key."""
    from gateway.casefile.checks import Finding
    from gateway.evidence.gm import SM2_PUB_SUFFIX, load_sm2_public, sm2_key_id
    from gateway.evidence.signing import KeyError_, load_public

    keys, sm2, bad = [], {}, []
    for p in sorted((bag / "data" / "keys").glob("*.pub.pem")):
        rel = p.relative_to(bag).as_posix()
        try:
            if p.name.endswith(SM2_PUB_SUFFIX):
                point = load_sm2_public(p)
                sm2[sm2_key_id(point)] = point
            else:
                keys.append(load_public(p))
        except (KeyError_, OSError, ValueError, IndexError) as e:
            bad.append(Finding("authenticity", "bag-key", rel, f"not a station public key: {e}"))
    return keys, sm2, bad


def cmd_verify_bag(args: argparse.Namespace) -> int:
    from gateway.casefile.checks import Finding, check_bag
    from gateway.evidence.gm import sm2_key_id

    bag = Path(args.bag)
    if not (bag / "bagit.txt").is_file():
        raise UsageError(f"{bag}: not a bag (no bagit.txt)")
    carried, sm2, bad = _bag_keys(bag)
    keys = _pubkeys(args.pubkey, None) if args.pubkey else carried
    if not keys:
        raise UsageError(f"{bag}: no station keys in data/keys/; give --pubkey")
    pins = {sm2_key_id(p): p for p in _sm2_pubkeys(getattr(args, "sm2_pubkey", []) or [])}
    if pins:  # --sm2-pubkey pins the SM2 key: a bag carrying another fails, and the pinned key is what checks
        bad += [Finding("authenticity", "sm2-key-pin", f"data/keys/{kid}.sm2.pub.pem",
                        "the bag's SM2 key is not the one given with --sm2-pubkey")
                for kid in sorted(set(sm2) - set(pins))]
        sm2 = pins
    result = check_bag(bag, keys, sm2_keys=sm2)
    result.failures[:0] = bad
    if getattr(args, "json", False):
        print(json.dumps({"ok": result.ok, "bag": str(bag), "summary": result.summary,
                          "keys_from": "--pubkey" if args.pubkey else "the bag",
                          "failures": [{"property": f.prop, "check": f.check, "object": f.obj, "detail": f.detail}
                                       for f in result.failures],
                          "properties": result.as_dict()}, ensure_ascii=False, indent=2))
        return 0 if result.ok else 1
    if not args.pubkey:
        print("note: keys taken from the bag (data/keys); compare their ids with the published station keys",
              file=sys.stderr)
    if result.ok:
        print(f"OK: {result.summary}; {len(result.usable)} containers usable; the bag's fixity, authenticity, "
              f"integrity, usability and security hold")
        return 0
    print(f"FAILED: {result.failures[0]}", file=sys.stderr)
    for f in result.failures[1:]:
        print(f"also:   {f}", file=sys.stderr)
    return 1


def _station_archive(args: argparse.Namespace) -> tuple[Any, Any]:
    from gateway import default_config_path
    from gateway.archive import open_backend
    from gateway.config import load_config

    cfg = load_config(args.config or default_config_path())
    return cfg, open_backend(cfg)


def _retention_tools(args: argparse.Namespace) -> tuple[Any, Any]:
    """The station config and its S3 archive, or a usage error (exit 2)."""
    from gateway.evidence.retention import RetentionError, s3_of

    cfg, archive = _station_archive(args)
    try:
        s3_of(archive)
    except RetentionError as e:
        raise UsageError(str(e)) from None
    return cfg, archive


def _day(ts: float | None) -> str:
    from datetime import UTC, datetime

    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _iso(ts: float | None) -> str | None:
    from datetime import UTC, datetime

    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def cmd_retention_report(args: argparse.Namespace) -> int:
    """Every clip's class, lock date and hold (soonest to expire first), then
    the extensions and holds the archive has not yet taken. Exit 1 when one
    of those has failed, 2 when the archive cannot be read."""
    from gateway.archive import ArchiveError
    from gateway.casefile.retention import report
    from gateway.catalog import Catalog

    cfg, archive = _retention_tools(args)
    failed_read: ArchiveError | None = None
    try:
        rows = report(archive, cfg.retention)
    except ArchiveError as e:  # the pending extensions are the catalog's: shown all the same
        rows, failed_read = [], e
    pending = []
    if cfg.catalog_path.exists():
        catalog = Catalog(cfg.catalog_path)
        try:
            pending = catalog.pending_locks()
        finally:
            catalog.close()
    if args.json:
        for r in rows:
            print(json.dumps({"key": r.key, "case": r.case, "category": r.category, "class": r.cls,
                              "retain_until": r.until.isoformat() if r.until else None, "legal_hold": r.hold},
                             ensure_ascii=False))
        for p in pending:
            print(json.dumps({"pending": True, "key": p.key, "wanted_until": _iso(p.wanted),
                              "archive_until": _iso(p.applied), "legal_hold": bool(p.hold), "attempts": p.attempts,
                              "since": _iso(p.pending_since), "error": p.error}, ensure_ascii=False))
    else:
        for r in rows:
            until = r.until.strftime("%Y-%m-%d") if r.until else "unlocked"
            print(f"{until}  {r.cls:<12} {'HOLD ' if r.hold else '     '}{r.case or '-':<16} "
                  f"{r.category or '-':<14} {r.key}")
        if pending:
            print(f"pending: {len(pending)} objects not yet locked or held as wanted (the station tries again):")
        for p in pending:
            print(f"  wanted until {_day(p.wanted)} (archive: {_day(p.applied)})  hold {'on ' if p.hold else 'off'}  "
                  f"attempts {p.attempts}  {p.key}" + (f"  last error: {p.error}" if p.error else ""))
    if failed_read is not None:
        print(f"dockgate: error: the archive cannot be read: {failed_read}", file=sys.stderr)
        return 2
    return 1 if any(p.attempts for p in pending) else 0


def cmd_legal_hold(args: argparse.Namespace) -> int:
    """The hold belongs to the case: recorded in the station's catalog and
    applied now; what the archive does not take now is kept and tried again
    by the station (exit 2: the archive is unreachable or refuses)."""
    from gateway.casefile.retention import legal_hold
    from gateway.catalog import Catalog
    from gateway.values import ValueRefused, check_text

    try:
        case = check_text("case", args.case)
    except ValueRefused as e:
        raise UsageError(str(e)) from None
    assert case is not None
    on = args.hold_cmd == "set"
    cfg, archive = _retention_tools(args)
    catalog = Catalog(cfg.catalog_path)
    try:
        done = legal_hold(archive, catalog, cfg, case, on)
    finally:
        catalog.close()
    what = "set on" if on else "released from"
    print(f"legal hold {what} {len(done.keys)} objects of case {case}"
          + ("; clips assigned to it later are held too" if on else ""))
    if done.unlisted is not None:
        print(f"note: the archive could not be listed ({done.unlisted}); the catalog's objects only",
              file=sys.stderr)
    if done.failed:
        print(f"dockgate: error: {len(done.failed)} objects not yet {'held' if on else 'released'}: "
              f"{done.failed[0].error}. The hold is recorded with the case; the station tries again "
              f"(dockgate retention report shows what is pending)", file=sys.stderr)
        return 2
    return 0


def add_parsers(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """``case export``, ``case report``, ``retention report`` and
    ``legal-hold set|release`` under *sub*."""
    ret = sub.add_parser("retention", help="retention by category (S3 Object Lock)").add_subparsers(
        dest="retention_cmd", required=True, metavar="RETENTIONCOMMAND")
    sp = with_config(ret.add_parser("report", help="what the archive keeps until when (soonest first)"))
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.set_defaults(fn=cmd_retention_report)
    hold = sub.add_parser("legal-hold", help="S3 legal hold on every object of a case").add_subparsers(
        dest="hold_cmd", required=True, metavar="HOLDCOMMAND")
    for name, what in (("set", "put a case under legal hold"), ("release", "release a case's legal hold")):
        sp = with_config(hold.add_parser(name, help=what))
        sp.add_argument("case", help="case number 案件编号")
        sp.set_defaults(fn=cmd_legal_hold)

    case = sub.add_parser("case", help="the archivist's case file: export a case as a BagIt bag, custody "
                                       "reports").add_subparsers(dest="case_cmd", required=True, metavar="CASECOMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        with_config(sp)
        sp.add_argument("case", nargs="?", help="case number 案件编号 (or --officer/--from/--to)")
        sp.add_argument("--officer", help="footage of this officer (警号) not under a case ...")
        sp.add_argument("--from", dest="start", help="... captured from (ISO 8601)")
        sp.add_argument("--to", dest="end", help="... to (ISO 8601)")
        sp.add_argument("--archive", help="a directory archive (default: the config's archive)")
        sp.add_argument("--pubkey", action="append", default=[], help="station public key PEM (repeatable; "
                                                                      "default: the config's)")
        sp.add_argument("--lang", choices=["zh", "en"], default="zh", help="report language (default zh)")
        sp.add_argument("--tz", help="time zone local times are shown in (IANA name; default this machine's)")

    sp = case.add_parser("export", help="one BagIt bag with clips, manifests, amendments, custody excerpt, "
                                        "catalogue, four-properties report and custody report")
    common(sp)
    sp.add_argument("--out", required=True, help="the bag's folder (must not exist or be empty)")
    sp.add_argument("--sm2-pubkey", action="append", default=[], help="国密: station SM2 public key PEM the bag "
                                                                      "carries (repeatable; default: the config's)")
    sp.add_argument("--fonds", help="全宗号 of the catalogue (default: station.fonds in the config)")
    sp.add_argument("--classification", default="内部", choices=["公开", "内部", "秘密", "机密", "绝密"],
                    help="密级 of the catalogue (default 内部)")
    sp.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                    help="on a running station: how long to wait for the custody it is asked to seal "
                         "(default 60)")
    sp.set_defaults(fn=cmd_case_export)

    sp = case.add_parser("report", help="chain-of-custody report of a case or one clip (HTML or PDF by --out)")
    common(sp)
    sp.add_argument("--clip", help="only this clip (SHA-256 or archive key)")
    sp.add_argument("--out", required=True, help="FILE.pdf or FILE.html")
    sp.set_defaults(fn=cmd_case_report)
