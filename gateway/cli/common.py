"""What every command family shares: sizes, times, the config a command
names, the usage errors (exit 2) and how a verification is reported."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING

from gateway import DEFAULT_CONFIG, default_config_path
from gateway.errors import DockgateError

if TYPE_CHECKING:  # the schema (pydantic) loads when a command reads its config, not to build the parser
    from gateway.cli.digest import Digest
    from gateway.config import Config
    from gateway.evidence.verify import Report

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'4M', '4MiB', '1G', '500k' or plain bytes (binary multiples)."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 4M, 1G, 500k or bytes)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


class UsageError(DockgateError):
    """The command cannot run as asked (exit 2): a missing file, a bad option."""

    reason = "usage"


class CannotRead(DockgateError):
    """A station file this user may not read (exit 2), with what to do."""

    reason = "permission"

    def __init__(self, path: object) -> None:
        from gateway.config import in_dockgate_group

        if in_dockgate_group():  # joining it again would not help: this needs root (secrets, keys)
            super().__init__(f"cannot read {path}: permission denied. Members of the dockgate group may read the "
                             f"station's status and events; this needs root (sudo)")
        else:
            super().__init__(f"cannot read {path}: permission denied. Members of the dockgate group may read the "
                             f"station's status and events (sudo adduser $USER dockgate, then log in again)")



def config_of(args: argparse.Namespace) -> Config:
    from gateway import default_config_path
    from gateway.config import load_config

    return load_config(args.config or default_config_path())


def digest_of(args: argparse.Namespace) -> Digest:
    """What `status` and `events` read of the config: validated, but not again while its files are unchanged
    (gateway/cli/digest.py)."""
    from gateway.cli.digest import load_digest

    return load_digest(args.config or default_config_path())


def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sp.add_argument("-c", "--config", help=f"dockgate TOML config file (default: $DOCKGATE_CONFIG or "
                                           f"{DEFAULT_CONFIG})")
    return sp


def parse_time(text: str) -> float:
    from datetime import datetime

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise DockgateError(f"not a time: {text!r} (use ISO 8601, e.g. 2024-03-01T08:00 or "
                            f"2024-03-01T08:00+08:00; without an offset: this machine's time zone)") from None
    return t.timestamp() if t.tzinfo else t.astimezone().timestamp()


def print_report(report: Report, as_json: bool = False) -> int:
    """A verification's outcome for people (OK on stdout; every failure on
    stderr, the first one first) or programs (--json); the exit code."""
    if as_json:
        print(json.dumps({"ok": report.ok, "summary": report.summary(), "clips": report.clips,
                          "partial": report.partial, "amendments": report.amendments,
                          "custody_entries": report.custody_entries, "segments": report.segments,
                          "checkpoints": report.checkpoints, "witnessed": report.witnessed,
                          "objects_read": report.objects_read, "media_hashed": report.media_hashed,
                          "media_cached": report.media_cached,
                          "since": None if report.since is None else {"station": report.since[0],
                                                                      "seq": report.since[1]},
                          "failures": [{"check": f.check, "object": f.obj, "detail": f.detail}
                                       for f in report.failures]}, ensure_ascii=False, indent=2))
        return 0 if report.ok else 1
    if report.ok:
        print(f"OK: {report.summary()}; every check holds")
        return 0
    print(f"FAILED: {report.failures[0]}", file=sys.stderr)
    for f in report.failures[1:]:
        print(f"also:   {f}", file=sys.stderr)
    print(f"checked {report.summary()}", file=sys.stderr)
    return 1
