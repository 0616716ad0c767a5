"""`dockgate verify`: a station's archive (directory, S3 by its config or
by the command line at the district), one case or clip with its custody
excerpt, or a case file's bag; and `dockgate witness`, which keeps every
station's checkpoints for it."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import DEFAULT_CONFIG
from gateway.cli.common import LOG_LEVELS, UsageError, config_of, print_report


def cmd_verify(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # a scratch folder for S3 is removed whatever happens
        if args.keyring:
            return cmd_verify_district(args, stack)
        return _verify(args, stack)


def _verify(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    from gateway.archive import Archive, open_archive
    from gateway.archive.directory import DirectoryArchive
    from gateway.evidence.checkpoint import Checkpoint, read_checkpoint
    from gateway.evidence.signing import KeyError_, load_public
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
    elif args.s3_endpoint:  # at the district: no station config
        archive = s3_without_config(args, scratch(stack))
        pubkeys = [Path(p) for p in args.pubkey]
    else:
        cfg = config_of(args)
        if cfg.archive.backend == "directory" and not cfg.archive.path.is_dir():
            raise UsageError(f"{cfg.archive.path}: the archive is not there (not mounted?)")
        archive = open_archive(cfg)
        pubkeys = [Path(p) for p in args.pubkey] or [cfg.public_key_file]
        if args.tsa_ca is None and cfg.evidence.tsa_ca_file is not None:
            args.tsa_ca = str(cfg.evidence.tsa_ca_file)
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
        except FileNotFoundError as e:
            if not Path(f).is_file():
                raise UsageError(f"{f}: cannot read the checkpoint: {e.strerror or e}") from None
            witnessed.append(Checkpoint(Path(f).name, Path(f).read_bytes(), b""))  # fails as unsigned
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

    keys = []
    for p in pubkeys:
        try:
            keys.append(load_public(p))
        except KeyError_ as e:
            raise UsageError(f"{p}: not a station public key (PEM, Ed25519): {e}") from None
    if args.tsa_ca and not Path(args.tsa_ca).is_file():
        raise UsageError(f"{args.tsa_ca}: no such CA file")
    return run_verify(args, archive, keys, witnessed, progress)


def scratch(stack: contextlib.ExitStack) -> Path:
    """A temp folder removed when *stack* closes (the S3 backend wants a state
    folder; each run used to leave an empty one behind)."""
    import tempfile

    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockgate-verify-")))


def s3_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"backend": "s3", "endpoint": args.s3_endpoint, "bucket": args.bucket, "prefix": args.prefix or "",
            "access_key_file": args.access_key_file, "secret_key_file": args.secret_key_file,
            "ca_bundle": args.ca_bundle, "region": args.region}


def s3_without_config(args: argparse.Namespace, state: Path) -> Any:
    """An S3 archive from the command line alone (endpoint, bucket,
    credential files): `verify` at the district, without a station config."""
    from gateway.archive.s3 import S3Archive
    from gateway.config import S3ArchiveConfig

    return S3Archive(S3ArchiveConfig.model_validate(s3_settings(args)), state)


def cmd_verify_district(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    """`verify --keyring DIR` over a district archive (a directory or S3):
    every station, each with its own key and witnessed checkpoints, one
    process per core; a line per station, or --json."""
    import json

    from gateway.evidence.district import DirectoryOpener, S3Opener, verify_district
    from gateway.evidence.keyring import Keyring, KeyringError

    if args.pubkey or args.case or args.clip or args.checkpoint or args.sm2_pubkey:
        raise UsageError("--keyring verifies every station of a district archive: give no --pubkey, --case, "
                         "--clip, --checkpoint or --sm2-pubkey with it")
    try:
        Keyring(Path(args.keyring))  # fails early on a broken keyring, before any worker starts
    except KeyringError as e:
        raise UsageError(str(e)) from None
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: at least 1")
    witness = Path(args.witness) if args.witness else None
    if witness is not None and not witness.is_dir():
        raise UsageError(f"{args.witness}: no such witness store")
    if args.tsa_ca and not Path(args.tsa_ca).is_file():
        raise UsageError(f"{args.tsa_ca}: no such CA file")
    opener: Any
    if args.archive:
        if not Path(args.archive).is_dir():
            raise UsageError(f"{args.archive}: no such directory")
        opener = DirectoryOpener(Path(args.archive))
    elif args.s3_endpoint:
        opener = S3Opener(tuple(sorted(s3_settings(args).items())), scratch(stack))
    else:
        raise UsageError("--keyring wants the district archive: --archive DIR or --s3-endpoint ...")
    results = verify_district(opener, opener("").keys(), Path(args.keyring), witness, args.tsa_ca, args.jobs)
    if not results:
        raise UsageError("no station's custody record in the archive: nothing to check")
    ok = all(r.ok for r in results)
    if args.json:
        print(json.dumps({"ok": ok, "stations": [r.as_json() for r in results]}, ensure_ascii=False, indent=2))
        return 0 if ok else 1
    for r in results:
        if r.ok:
            print(f"OK: {r.name}: {r.summary}")
    for r in results:
        for check, obj, detail in r.failures:
            print(f"FAILED: {r.name}: {check}: {obj}: {detail}", file=sys.stderr)
    bad = [r.name for r in results if not r.ok]
    print(f"{len(results) - len(bad)} of {len(results)} stations verify" + (f"; failed: {', '.join(bad)}"
                                                                            if bad else ""),
          file=sys.stderr if bad else sys.stdout)
    return 0 if ok else 1


def run_verify(args: argparse.Namespace, archive: Any, keys: list[Any], witnessed: list[Any],
               progress: Callable[[int, int], None]) -> int:
    """`dockgate verify` over the whole archive, or one case (--case) or
    clip (--clip) with the custody record that files it; text or --json."""
    from gateway.evidence.verify import Verifier

    case_keys: set[str] = set()
    if args.case:  # the clips the archive's own documents put in the case too: custody may disagree
        from gateway.casefile.source import Selection, scan

        case_keys = {c.key for c in scan(archive, Selection(case=args.case)).clips}
    sm2_keys: dict[str, bytes] = {}
    if args.sm2_pubkey:
        from gateway.evidence.gm import load_sm2_public, sm2_key_id

        points = [load_sm2_public(Path(p)) for p in args.sm2_pubkey]
        sm2_keys = {sm2_key_id(p): p for p in points}
    since = None
    if getattr(args, "since_witnessed", False):
        since = newest_witnessed(witnessed, keys)
    cache = None
    if getattr(args, "hash_cache", None):
        from gateway.evidence.hashcache import HashCache

        cache = HashCache(Path(args.hash_cache))
    verifier = Verifier(archive, keys, [] if since is not None else witnessed, progress, sm2_keys=sm2_keys,
                        case=args.case, clip=args.clip, case_keys=case_keys, tsa_ca=args.tsa_ca, cache=cache,
                        since=since)
    report = verifier.run()
    if cache is not None:
        cache.save()
    if (args.case or args.clip) and not report.failures and not verifier.scope and not case_keys:
        raise UsageError(f"no clip in the archive or its custody record for {args.case or args.clip}")
    return print_report(report, args.json)


def newest_witnessed(witnessed: list[Any], keys: list[Any]) -> Any:
    """``--since-witnessed``: the newest checkpoint the witness kept that
    these station keys signed (a usage error when there is none)."""
    import json

    from gateway.evidence.signing import key_id

    ours = {key_id(k) for k in keys}
    best: tuple[int, Any] | None = None
    for cp in witnessed:
        try:
            doc = json.loads(cp.body)
            seq = int(doc["seq"])
        except (ValueError, KeyError, TypeError):
            continue
        if str(doc.get("key_id")) in ours and (best is None or seq > best[0]):
            best = (seq, cp)
    if best is None:
        raise UsageError("--since-witnessed: give --witness DIR or --checkpoint FILE holding a checkpoint "
                         "these keys signed")
    return best[1]


def add_verify_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--sm2-pubkey", action="append", default=[], help="国密: station SM2 public key PEM "
                                                                      "(repeatable): check SM2 signatures too")
    sp.add_argument("--case", help="only this case: every clip the custody record files under it, each with "
                                   "every amendment, must be there")
    sp.add_argument("--tsa-ca", help="the TSA's CA certificates (PEM): every RFC 3161 token must chain to them")
    sp.add_argument("--clip", help="only this clip (SHA-256 or archive key), with its custody excerpt")
    sp.add_argument("--since-witnessed", action="store_true",
                    help="only what is new after the newest witnessed checkpoint (--witness or --checkpoint): "
                         "the custody chain from it and every object custody indexes after it")
    sp.add_argument("--hash-cache", metavar="FILE", help="the verified-hash cache: media whose archive identity "
                                                         "(inode, size, times; ETag, version) is unchanged are "
                                                         "not read again; updated after the run")
    sp.add_argument("--s3-endpoint", help="an S3 archive without a station config: its endpoint URL ...")
    sp.add_argument("--bucket", help="... bucket")
    sp.add_argument("--prefix", help="... key prefix")
    sp.add_argument("--region", default="us-east-1")
    sp.add_argument("--access-key-file", help="... file holding the access key id")
    sp.add_argument("--secret-key-file", help="... file holding the secret key")
    sp.add_argument("--ca-bundle", help="... CA certificates of a private endpoint")
    sp.add_argument("--keyring", metavar="DIR", help="a district's keyring (DIR/<station_id>.pub.pem): verify every "
                                                     "station of the archive, each against its own key and witness "
                                                     "checkpoints")
    sp.add_argument("--jobs", type=int, default=None, help="with --keyring: stations verified at once (default: "
                                                          "one per core)")


def cmd_witness(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.evidence.keyring import Keyring, KeyringError
    from gateway.evidence.signing import load_public
    from gateway.evidence.witness import WitnessStore, run_witness
    from gateway.secrets import read_secret

    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--broker wants HOST:PORT, got {args.broker!r}")
    if args.keyring and args.pubkey:
        raise UsageError("give --keyring or --pubkey, not both (the keyring binds each key to its station)")
    try:
        ring = Keyring(Path(args.keyring)) if args.keyring else None
    except KeyringError as e:
        raise UsageError(str(e)) from None
    store = WitnessStore(Path(args.store), [load_public(Path(p)) for p in args.pubkey], keyring=ring,
                         silence_after=args.silence_after)
    password = read_secret(Path(args.password_file)) if args.password_file else None
    from gateway.process import logsetup

    logsetup.setup(args.log_level)
    if args.metrics:
        from gateway.telemetry.witness import serve

        serve(store, args.metrics)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_witness(store, host, int(port), args.prefix, args.username, password))
    return 0


def add_parsers(sub: Any) -> None:
    """``verify`` and ``witness``."""
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
    add_verify_options(sp)  # --case, --clip, S3 without a config
    sp.set_defaults(fn=cmd_verify)

    sp = sub.add_parser("witness", help="keep every station's signed checkpoints from MQTT (run it at the "
                                        "district, not on a station)")
    sp.add_argument("--broker", required=True, metavar="HOST:PORT")
    sp.add_argument("--store", required=True, metavar="DIR", help="append-only checkpoint store")
    sp.add_argument("--prefix", default="dockgate", help="the stations' MQTT prefix")
    sp.add_argument("--pubkey", action="append", default=[], help="keep only checkpoints these station keys "
                                                                  "signed (repeatable; a station's key is "
                                                                  "bound on its first checkpoint)")
    sp.add_argument("--keyring", metavar="DIR", help="DIR/<station_id>.pub.pem: keep a station's checkpoints only "
                                                     "if its own key signed them and they came on its topic")
    sp.add_argument("--silence-after", type=float, default=86400.0, metavar="SECONDS",
                    help="alarm when a station sends no checkpoint for this long (0: never; default a day)")
    sp.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics per station here")
    sp.add_argument("--username")
    sp.add_argument("--password-file")
    sp.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
    sp.set_defaults(fn=cmd_witness)
