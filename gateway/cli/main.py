"""The `dockgate` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.profiles import PROTOCOLS
from gateway import __version__
from gateway.config import DEFAULT_CONFIG, Config, default_config_path, load_config
from gateway.errors import DockgateError
from gateway.process import logsetup

if TYPE_CHECKING:
    from gateway.evidence.verify import Report

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
        super().__init__(f"cannot read {path}: permission denied. Members of the dockgate group may read the "
                         f"station's status and events (sudo adduser $USER dockgate, then log in again)")


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config or default_config_path())


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.process import daemon

    cfg = _config(args)
    logsetup.setup(args.log_level)
    return daemon.run(cfg)


def cmd_check_config(args: argparse.Namespace) -> int:
    """0: `run` would start; 1: the config or what it names fails a check;
    2: there is no config to check."""
    from gateway.cli.checkconfig import check_station
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
    if problems:
        print(f"{cfg.source}: FAILED ({len(problems)} problems; `dockgate run` would not start)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{cfg.source}: ok (station {cfg.station.id}, archive {cfg.archive.backend} "
          f"{cfg.archive.path}, detect {cfg.detect.backend}, {cfg.detect.slots} slots; every secret and key "
          f"loads)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.cli.status import collect, render

    cfg = _config(args)
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
    from gateway.cli.status import read_events

    cfg = _config(args)
    types = set(args.type) if args.type else None
    if args.since is None and not args.follow:
        for ev in read_events(cfg, None, args.limit, types):
            _print_event(ev, args.json)
        return 0
    if args.since is not None:
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


def _when(text: str) -> float:
    from datetime import datetime

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise DockgateError(f"not a time: {text!r} (use ISO 8601, e.g. 2024-03-01T08:00 or "
                            f"2024-03-01T08:00+08:00; without an offset: this machine's time zone)") from None
    return t.timestamp() if t.tzinfo else t.astimezone().timestamp()


def cmd_assign(args: argparse.Namespace) -> int:
    from gateway.catalog import Catalog

    cfg = _config(args)
    start, end = _when(args.start), _when(args.end)
    if end < start:
        raise DockgateError("--to is before --from")
    if not (args.case or args.proof or args.category or args.important is not None):
        raise DockgateError("give at least one of --case, --proof, --category, --important")
    for name, value in (("--case", args.case), ("--proof", args.proof), ("--category", args.category),
                        ("--officer", args.officer)):
        if value is not None and (not value.strip() or len(value) > 200 or not value.isprintable()):
            raise DockgateError(f"{name} must be 1-200 printable characters")
    cat = Catalog(cfg.catalog_path)
    try:
        aid = cat.add_assignment(args.officer, start, end, args.case, args.proof, args.category, args.important)
    finally:
        cat.close()
    print(f"assignment {aid}: officer {args.officer}, clips captured {args.start} .. {args.end}: "
          f"case {args.case or '-'}, proves {args.proof or '-'}, category {args.category or '-'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.archive import Archive, open_archive
    from gateway.archive.directory import DirectoryArchive
    from gateway.evidence.checkpoint import read_checkpoint
    from gateway.evidence.signing import load_public
    from gateway.evidence.verify import verify_archive
    from gateway.evidence.witness import witnessed as list_witnessed

    if args.bag:  # a case file's bag (gateway/casefile)
        from gateway.cli.case import cmd_verify_bag

        return cmd_verify_bag(args)
    archive: Archive
    if args.archive:
        archive = DirectoryArchive(Path(args.archive))
        pubkeys = [Path(p) for p in args.pubkey]
        if not Path(args.archive).is_dir():
            raise UsageError(f"{args.archive}: no such directory")
    elif args.s3_endpoint:  # at the district: no station config (gateway/cli/case.py)
        from gateway.cli.case import s3_without_config

        archive = s3_without_config(args)
        pubkeys = [Path(p) for p in args.pubkey]
    else:
        cfg = _config(args)
        if cfg.archive.backend == "directory" and not cfg.archive.path.is_dir():
            raise UsageError(f"{cfg.archive.path}: the archive is not there (not mounted?)")
        archive = open_archive(cfg)
        pubkeys = [Path(p) for p in args.pubkey] or [cfg.public_key_file]
    if not pubkeys:
        raise UsageError("give --pubkey PEM (the station public key)")
    for p in pubkeys:
        if not p.is_file():
            raise UsageError(f"{p}: no such public key file")
    witnessed = []
    if args.witness:
        if not Path(args.witness).is_dir():
            raise UsageError(f"{args.witness}: no such witness store")
        witnessed = list_witnessed(Path(args.witness))
    for f in args.checkpoint:
        try:
            witnessed.append(read_checkpoint(Path(f)))
        except OSError as e:
            raise UsageError(f"{f}: cannot read the checkpoint or its .sig: {e.strerror or e}") from None
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:  # long runs say how far they are, to a person at a terminal
        now = time.monotonic()
        if not sys.stderr.isatty():  # scripts read the first line of stderr for the failure
            return
        if now - last[0] >= 2.0 or (done == total and total >= 1000):
            last[0] = now
            print(f"verify: {done}/{total} clips hashed", file=sys.stderr, flush=True)

    if args.json or args.case or args.clip or args.sm2_pubkey:  # programs, one case or clip, 国密 (casefile/cli.py)
        from gateway.cli.case import run_verify

        return run_verify(args, archive, [load_public(p) for p in pubkeys], witnessed, progress)
    return print_report(verify_archive(archive, [load_public(p) for p in pubkeys], witnessed, progress))


def print_report(report: Report, as_json: bool = False) -> int:
    """A verification's outcome for people (OK on stdout; every failure on
    stderr, the first one first) or programs (--json); the exit code."""
    if as_json:
        print(json.dumps({"ok": report.ok, "summary": report.summary(), "clips": report.clips,
                          "partial": report.partial, "amendments": report.amendments,
                          "custody_entries": report.custody_entries, "segments": report.segments,
                          "checkpoints": report.checkpoints, "witnessed": report.witnessed,
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


def cmd_witness(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.evidence.signing import load_public
    from gateway.evidence.witness import WitnessStore, run_witness
    from gateway.secrets import read_secret

    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--broker wants HOST:PORT, got {args.broker!r}")
    store = WitnessStore(Path(args.store), [load_public(Path(p)) for p in args.pubkey])
    password = read_secret(Path(args.password_file)) if args.password_file else None
    logsetup.setup(args.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_witness(store, host, int(port), args.prefix, args.username, password))
    return 0


def cmd_sim_make(args: argparse.Namespace) -> int:
    from drivers.sim.make import make_recorder

    paths = make_recorder(Path(args.dir), clips=args.clips, size=args.size, serial=args.serial,
                          officer=args.officer, unit=args.unit, protocol=args.protocol,
                          password=args.password, clock_offset_s=args.clock_offset,
                          link_rate=args.link_rate, seed=args.seed)
    print(f"{args.dir}: recorder {args.serial} (officer {args.officer}, {args.protocol}) "
          f"with {len(paths)} clips of {args.size} bytes")
    return 0


def cmd_sim_station(args: argparse.Namespace) -> int:
    from gateway.cli.simstation import write_station

    if args.mqtt and not re.match(r"^[^:]+:\d{1,5}$", args.mqtt):
        raise DockgateError(f"--mqtt wants HOST:PORT, got {args.mqtt!r}")
    cfg = write_station(Path(args.workdir), station_id=args.id, slots=args.slots, mqtt=args.mqtt)
    print(f"wrote {cfg}\nstart it:  dockgate run -c {cfg}\n"
          f"dock one:  dockgate sim attach RECORDER_DIR -c {cfg} --slot 1")
    return 0


def _sim_dir(cfg: Config, slot: int) -> Path:
    if cfg.detect.backend != "sim" or cfg.detect.sim_dir is None:
        raise DockgateError(f"{cfg.source}: detect.backend is not \"sim\"")
    if not 1 <= slot <= cfg.detect.slots:
        raise DockgateError(f"--slot must be 1..{cfg.detect.slots}")
    return cfg.detect.sim_dir


def cmd_sim_attach(args: argparse.Namespace) -> int:
    from drivers.sim.device import load_sim_device
    from drivers.sim.dock import DockError, attach, slot_file

    cfg = _config(args)
    # several recorders take consecutive slots in one call: a rack docked at
    # one instant (a Python start per recorder spreads 25 docks over seconds).
    # Every recorder and slot is checked before any is docked.
    slots = range(args.slot, args.slot + len(args.dir))
    sim_dir = _sim_dir(cfg, slots[0])
    if slots[-1] > cfg.detect.slots:
        raise DockgateError(f"{len(slots)} recorders from --slot {args.slot} need slots up to {slots[-1]}; "
                            f"the station has {cfg.detect.slots}")
    devs = [load_sim_device(Path(d)) for d in args.dir]
    taken = [str(n) for n in slots if slot_file(sim_dir, n).exists()]
    if taken:
        raise DockError(f"slot {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} occupied; detach first")
    for n, dev in zip(slots, devs, strict=True):
        attach(sim_dir, n, dev.folder)
        print(f"docked {dev.serial} in slot {n}")
    return 0


def cmd_sim_detach(args: argparse.Namespace) -> int:
    from drivers.sim.dock import detach

    cfg = _config(args)
    detach(_sim_dir(cfg, args.slot), args.slot)
    print(f"undocked slot {args.slot}")
    return 0


def cmd_udev_rules(args: argparse.Namespace) -> int:
    from drivers.profiles import Registry
    from gateway.cli.install import udev_rules

    cfg = _config(args) if args.config else None
    registry = Registry.load(cfg.recorders.profiles_dir if cfg else None)
    print(udev_rules(registry, cfg.detect.ports if cfg else None), end="")
    return 0


def cmd_setup_systemd(args: argparse.Namespace) -> int:
    from gateway.cli.install import systemd_setup

    for path in systemd_setup(_config(args), Path(args.root)):
        print(f"wrote {path}")
    print("now: systemctl daemon-reload && systemctl restart dockgate")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli.demo import run_demo

    workdir = Path(args.workdir or time.strftime("dockgate-demo-%Y%m%d-%H%M%S"))
    return run_demo(workdir, recorders=args.recorders, clips=args.clips, size=args.size)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockgate", description=__doc__)
    p.add_argument("--version", action="version", version=f"dockgate {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("-c", "--config", help=f"dockgate TOML config file (default: $DOCKGATE_CONFIG or "
                                               f"{DEFAULT_CONFIG})")
        return sp

    sp = with_config(sub.add_parser("run", help="run the daemon in the foreground"))
    sp.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sp.set_defaults(fn=cmd_run)

    sp = with_config(sub.add_parser("check-config", help="validate a config file and its secrets"))
    sp.set_defaults(fn=cmd_check_config)

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

    sp = sub.add_parser("verify", help="check media, manifests, amendments and custody log of an archive "
                                       "(exit 0: all hold, 1: something does not, 2: nothing to check)")
    sp.add_argument("-c", "--config", help="use this station's archive and public key (default: "
                                           f"$DOCKGATE_CONFIG or {DEFAULT_CONFIG})")
    sp.add_argument("--archive", help="a directory archive")
    sp.add_argument("--pubkey", action="append", default=[], help="station public key PEM (repeatable)")
    sp.add_argument("--witness", metavar="DIR", help="a `dockgate witness` store: the archive must reach every "
                                                     "checkpoint it kept")
    sp.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                    help="a checkpoint (with FILE.sig beside it) the archive must reach (repeatable)")
    sp.add_argument("--bag", metavar="DIR", help="a `dockgate case export` bag: fixity, signatures, custody, "
                                                 "usability, security, offline")
    sp.add_argument("--json", action="store_true", help="machine-readable result")
    from gateway.cli.case import add_verify_options

    add_verify_options(sp)  # --case, --clip, S3 without a config
    sp.set_defaults(fn=cmd_verify)

    from gateway.cli.case import add_parsers as casefile_parsers

    casefile_parsers(sub, with_config)  # case export, case report

    sp = sub.add_parser("witness", help="keep every station's signed checkpoints from MQTT (run it at the "
                                        "district, not on a station)")
    sp.add_argument("--broker", required=True, metavar="HOST:PORT")
    sp.add_argument("--store", required=True, metavar="DIR", help="append-only checkpoint store")
    sp.add_argument("--prefix", default="dockgate", help="the stations' MQTT prefix")
    sp.add_argument("--pubkey", action="append", default=[], help="keep only checkpoints these station keys "
                                                                  "signed (repeatable)")
    sp.add_argument("--username")
    sp.add_argument("--password-file")
    sp.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sp.set_defaults(fn=cmd_witness)

    sp = sub.add_parser("udev-rules", help="print udev rules for every recorder the firmware profiles know")
    sp.add_argument("-c", "--config", help="also the profiles in this config's recorders.profiles_dir, and "
                                           "any storage on the dock ports of its detect.ports")
    sp.set_defaults(fn=cmd_udev_rules)

    sp = with_config(sub.add_parser("setup-systemd", help="write the unit's drop-in (writable archive and "
                                                          "staging paths) and the recorder mount mode"))
    sp.add_argument("--root", default="/", help=argparse.SUPPRESS)
    sp.set_defaults(fn=cmd_setup_systemd)

    sp = sub.add_parser("demo", help="run a whole simulated station and verify its archive")
    sp.add_argument("--workdir", help="where to put it (default: ./dockgate-demo-<time>)")
    sp.add_argument("--recorders", type=int, default=3)
    sp.add_argument("--clips", type=int, default=4)
    sp.add_argument("--size", type=parse_size, default=parse_size("4M"))
    sp.set_defaults(fn=cmd_demo)

    sim = sub.add_parser("sim", help="simulated recorders and docking").add_subparsers(
        dest="sim_cmd", required=True, metavar="SIMCOMMAND")
    sp = sim.add_parser("make", help="create a simulated recorder with synthetic clips")
    sp.add_argument("dir")
    sp.add_argument("--clips", type=int, default=5)
    sp.add_argument("--size", type=parse_size, default=parse_size("4M"))
    sp.add_argument("--serial", default="SIM00001")
    sp.add_argument("--officer", default="012345")
    sp.add_argument("--unit", default="")
    sp.add_argument("--protocol", default="ums", choices=PROTOCOLS,
                    help="the recorder's protocol family (docs/profiles.md)")
    sp.add_argument("--password", default="000000")
    sp.add_argument("--clock-offset", type=float, default=0.0, help="recorder clock - true time, s")
    sp.add_argument("--link-rate", type=parse_size, default=0, help="simulated USB speed, bytes/s")
    sp.add_argument("--seed", type=int)
    sp.set_defaults(fn=cmd_sim_make)

    sp = sim.add_parser("station", help="write a ready config for a simulated station")
    sp.add_argument("workdir")
    sp.add_argument("--mqtt", metavar="HOST:PORT")
    sp.add_argument("--slots", type=int, default=8)
    sp.add_argument("--id", default="sim-station-01")
    sp.set_defaults(fn=cmd_sim_station)

    sp = with_config(sim.add_parser("attach", help="dock simulated recorders (several: consecutive slots)"))
    sp.add_argument("dir", nargs="+")
    sp.add_argument("--slot", type=int, required=True, help="the (first) slot")
    sp.set_defaults(fn=cmd_sim_attach)

    sp = with_config(sim.add_parser("detach", help="undock a simulated recorder"))
    sp.add_argument("--slot", type=int, required=True)
    sp.set_defaults(fn=cmd_sim_detach)

    from gateway.cli.web import add_commands as add_web_commands  # web-user, web-pin (gateway/web)

    add_web_commands(sub, with_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except PermissionError as e:
        print(f"dockgate: error: {CannotRead(e.filename or e)}", file=sys.stderr)
        return 2
    except DockgateError as e:
        print(f"dockgate: error: {e}", file=sys.stderr)
        # 2: usage or environment (the station is not set up right: `run` stops
        # for good, systemd does not restart it); 1: the command's own check failed
        return 2 if e.reason in ("config", "secret", "profile", "usage", "permission", "catalog") else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
