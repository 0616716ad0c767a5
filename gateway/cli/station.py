"""The station's own commands: ``run`` (the daemon), ``check-config``,
``status``, ``events``, ``keygen`` (its signing key) and ``assign`` (cases
for an officer's clips)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.common import LOG_LEVELS, UsageError, config_of, digest_of, with_config

if TYPE_CHECKING:  # the schema (pydantic) loads when a command reads its config, not to build the parser
    from gateway.config import Config


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.process import daemon, logsetup

    cfg = config_of(args)
    logsetup.setup(args.log_level)
    return daemon.run(cfg)


def cmd_check_config(args: argparse.Namespace) -> int:
    """0: `run` would start; 1: the config or what it names fails a check;
    2: there is no config to check. Where the service is installed and runs
    this config, also as the service will run (its user, its credentials)."""
    from gateway import default_config_path
    from gateway.cli.checkconfig import check_as_service, check_station, installed_service
    from gateway.config import load_config
    from gateway.errors import ConfigError

    path = Path(args.config or default_config_path())
    if not path.exists():
        raise UsageError(f"{path}: no such config file")
    try:
        cfg = load_config(path)
    except ConfigError as e:
        print(f"{e.file}: FAILED", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    problems = check_station(cfg)
    view = None if args.no_service else installed_service()
    if view is not None and view.config is not None and view.config.resolve() != path.resolve():
        view = None  # the service runs another config
    if view is not None:
        problems += [p for p in check_as_service(cfg, view) if p not in problems]
    if cfg.placeholder_id:
        problems.append(f"station.id: still the placeholder {cfg.station.id!r}: the service does not start until "
                        f"it is set (a drop-in such as {path}.d/station.toml: [station] id = \"...\")")
    files = ", ".join(str(p) for p in (cfg.source, *cfg.drop_ins))
    wide, notes = ([], []) if args.no_archive_probe else archive_privilege(cfg)
    if problems or wide:
        why = "; `dockgate run` would not start" if problems else ""
        print(f"{files}: FAILED ({len(problems) + len(wide)} problems{why})", file=sys.stderr)
        for problem in problems + wide:
            print(f"  {problem}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}")
    how = (f"as the service runs it (user {view.user}, its credentials)" if view is not None
           else "as this user (no installed service runs this config)")
    print(f"{files}: ok (station {cfg.station.id}, archive {cfg.archive.backend} "
          f"{cfg.archive.path}, detect {cfg.detect.backend}, {cfg.detect.slots} slots; every secret and key "
          f"loads, checked {how})")
    return 0


def archive_privilege(cfg: Config) -> tuple[list[str], list[str]]:
    """(problems, notes) of the S3 archive's credentials: a key that can do
    more than a station's policy is a problem unless ``archive.broad_credentials_ok``;
    an archive that cannot be asked is a note (the service starts without it)."""
    from gateway.archive.policy import probe

    a = cfg.archive
    if a.backend != "s3":
        return [], []
    found = probe(a)
    problems: list[str] = []
    notes: list[str] = []
    if found.refused:
        problems.append(f"archive.access_key_file: s3 {a.endpoint or 'aws'}/{a.bucket}: {found.refused}")
    if found.broader:
        said = (f"archive credentials: the key can do more than a station needs (docs/operations.md, \"Least "
                f"privilege at the archive\"): {'; '.join(found.broader)}")
        if a.broad_credentials_ok:
            notes.append(said + " (archive.broad_credentials_ok = true)")
        else:
            problems.append(said + ". Give the station a key with the policy `dockgate archive-policy -c CONFIG` "
                                   "prints, or set archive.broad_credentials_ok = true if this is meant")
    if found.left:
        problems.append(f"archive credentials: the probe could not remove what it wrote: {', '.join(found.left)}")
    notes += [f"archive credentials: the archive's answer tells neither way: {u}" for u in found.unclear]
    if found.unreachable:
        notes.append(f"the archive's credentials were not probed: {found.unreachable}")
    elif not found.broader and not found.refused:
        refused = found.asked - len(found.unclear)
        notes.append(f"archive credentials: {refused} actions beyond a station's policy refused, as they must be")
    return problems, notes


def cmd_archive_policy(args: argparse.Namespace) -> int:
    """Print the IAM policy for a station's archive key (JSON)."""
    from gateway.archive.policy import PolicyError, policy_json

    if args.bucket is None or args.prefix is None:
        if args.bucket is not None or args.prefix is not None:
            raise UsageError("give both --bucket and --prefix, or a station's config (-c)")
        cfg = config_of(args)
        if cfg.archive.backend != "s3":
            raise UsageError(f"{cfg.source}: the archive is a folder, not S3: no policy to print")
        bucket, prefix = cfg.archive.bucket, cfg.archive.prefix
    else:
        bucket, prefix = args.bucket, args.prefix
    try:
        sys.stdout.write(policy_json(bucket, prefix, args.partition))
    except PolicyError as e:
        raise UsageError(str(e)) from None
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.cli.status import collect, render

    cfg = digest_of(args)
    if args.json:
        print(json.dumps(collect(cfg), ensure_ascii=False, indent=2))
        return 0
    if not args.watch:
        print(render(collect(cfg)))
        return 0
    try:
        while True:
            out = render(collect(cfg))
            sys.stdout.write("\x1b[H\x1b[2J" + out + "\n" if sys.stdout.isatty() else out + "\n\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def _print_event(ev: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(ev, ensure_ascii=False), flush=True)
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ev["ts"])))  # type: ignore[arg-type]
    where = f" slot {ev['slot']}" if ev["slot"] is not None else ""
    data = ev["data"]
    detail = " ".join(f"{k}={v}" for k, v in data.items()) if isinstance(data, dict) else ""
    print(f"{ev['seq']:>6} {when}{where} {ev['type']} {detail}", flush=True)


def cmd_events(args: argparse.Namespace) -> int:
    """Newest first by default; ``--since N`` (scripts) and ``--follow``
    print oldest first, then ``--follow`` waits for more."""
    from gateway.cli.status import pruned_since, read_events

    cfg = digest_of(args)
    types = set(args.type) if args.type else None
    if args.since is None and not args.follow:
        for ev in read_events(cfg, None, args.limit, types):
            _print_event(ev, args.json)
        return 0
    if args.since is not None:
        if (gone := pruned_since(cfg, args.since)) is not None:
            print(gone, file=sys.stderr)
        evs = read_events(cfg, args.since, args.limit, types)
    else:  # --follow: the recent ones in order, then whatever comes
        evs = list(reversed(read_events(cfg, None, args.limit, types)))
    last = max([int(e["seq"]) for e in evs], default=args.since or 0)
    for ev in evs:
        _print_event(ev, args.json)
    try:
        while args.follow:
            time.sleep(args.interval)
            for ev in read_events(cfg, last, 10_000, types):
                _print_event(ev, args.json)
                last = max(last, int(ev["seq"]))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from gateway.evidence.signing import keygen

    private = Path(args.private)
    public = Path(args.public) if args.public else private.with_suffix(".pub.pem")
    if args.sm2:  # 国密 (gateway/evidence/gm.py)
        from gateway.evidence.gm import sm2_keygen

        sm2 = sm2_keygen(private, public, force=args.force)
        print(f"SM2 private key {private} (mode 0600)\nSM2 public key  {public}\nkey id          {sm2.key_id}")
        return 0
    signer = keygen(private, public, force=args.force)
    print(f"private key {private} (mode 0600)\npublic key  {public}\nkey id      {signer.key_id}")
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    from gateway.catalog import Catalog
    from gateway.values import check_assignment, parse_time

    cfg = config_of(args)
    # the rules every door applies (gateway/values.py); a time without an offset is this machine's
    v = check_assignment(args.officer, parse_time("--from", args.start), parse_time("--to", args.end), args.case,
                         args.proof, args.category, args.important, prefix="--")
    cat = Catalog(cfg.catalog_path)
    try:
        aid = cat.add_assignment(v.officer, v.start, v.end, v.case, v.proof, v.category, v.important)
    finally:
        cat.close()
    print(f"assignment {aid}: officer {v.officer}, clips captured {args.start} .. {args.end}: "
          f"case {v.case or '-'}, proves {v.proof or '-'}, category {v.category or '-'}")
    return 0


def add_parsers(sub: Any) -> None:
    """``run``, ``check-config``, ``archive-policy``, ``status``, ``events``, ``keygen``, ``assign``."""
    sp = with_config(sub.add_parser("run", help="run the daemon in the foreground"))
    sp.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
    sp.set_defaults(fn=cmd_run)

    sp = with_config(sub.add_parser("check-config", help="validate a config file and its secrets, as the "
                                                         "service will run"))
    sp.add_argument("--no-service", action="store_true",
                    help="do not also check as the installed dockgate.service runs (its user, its credentials)")
    sp.add_argument("--no-archive-probe", action="store_true",
                    help="do not ask the S3 archive whether its credentials can do more than a station needs")
    sp.set_defaults(fn=cmd_check_config)

    sp = with_config(sub.add_parser("archive-policy", help="print the S3 policy (IAM JSON) for a station's "
                                                           "archive key: its own prefix, never delete"))
    sp.add_argument("--bucket", help="the bucket (default: the config's archive.bucket)")
    sp.add_argument("--prefix", help="the station's archive.prefix, e.g. district-7/precinct-01/ (default: the "
                                     "config's)")
    sp.add_argument("--partition", default="aws", help="ARN partition: aws (also MinIO, Ceph), aws-cn, aws-us-gov")
    sp.set_defaults(fn=cmd_archive_policy)

    sp = with_config(sub.add_parser("status", help="station status: clips by state, slots"))
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--watch", action="store_true", help="refresh until interrupted")
    sp.add_argument("--interval", type=float, default=1.0)
    sp.set_defaults(fn=cmd_status)

    sp = with_config(sub.add_parser("events", help="what happened: docks, clips, alarms (newest first)"))
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.add_argument("--since", type=int, help="events after this sequence number, oldest first (for scripts)")
    sp.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    sp.add_argument("--type", action="append", metavar="TYPE", help="only events of this type (repeatable)")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new events as they happen")
    sp.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    sp.set_defaults(fn=cmd_events)

    sp = sub.add_parser("keygen", help="create the station signing key (Ed25519)")
    sp.add_argument("private", help="where to write the private key (mode 0600)")
    sp.add_argument("--public", help="public key PEM (default: PRIVATE with .pub.pem)")
    sp.add_argument("--force", action="store_true", help="replace an existing key")
    sp.add_argument("--sm2", action="store_true", help="an SM2 key for evidence.national_crypto (国密)")
    sp.set_defaults(fn=cmd_keygen)

    sp = with_config(sub.add_parser("assign", help="give an officer's clips of a time span a case, "
                                                   "what they prove, a category"))
    sp.add_argument("--officer", required=True, help="警号")
    sp.add_argument("--from", dest="start", required=True, help="capture time from (ISO 8601)")
    sp.add_argument("--to", dest="end", required=True, help="capture time to (ISO 8601)")
    sp.add_argument("--case", help="case number 案件编号")
    sp.add_argument("--proof", help="what the clips prove 证明对象")
    sp.add_argument("--category")
    sp.add_argument("--important", action=argparse.BooleanOptionalAction, default=None)
    sp.set_defaults(fn=cmd_assign)
