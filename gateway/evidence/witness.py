"""`dockgate witness`: keep every station's checkpoints where no station and
no archive operator can reach them.

It runs at the district (beside the broker or the archive), subscribes to
``<prefix>/+/checkpoint`` and keeps every checkpoint it receives in an
append-only store: ``<store>/<station>/checkpoint-<station>-<seq>.json``,
``.sig`` and, once the station has it, the RFC 3161 token ``.tsr``, written
once, never replaced or deleted. A store may hold many stations: verify
takes the checkpoints signed by the keys it is given. With station public keys
it keeps only checkpoints they signed. `dockgate verify --witness <store>`
then proves the archive holds each station's record up to the newest
checkpoint witnessed, with the head it had.

With a keyring (gateway/evidence/keyring.py) a checkpoint of station S is
kept only if S's keyring key signed it and it came on S's topic; without one,
a station's key is bound on first use. Every refusal is counted by station
(the one whose topic it came on) and reason, every station's newest
checkpoint is remembered (when it came, what it covers), and a station with
no checkpoint for ``silence_after`` seconds raises one ``station_silent``
alarm until it is heard again: the counts are what `dockgate witness
--metrics` exports (gateway/telemetry/witness.py).
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.evidence.checkpoint import SIG_SUFFIX, TSR_SUFFIX, Checkpoint, read_checkpoint
from gateway.evidence.keyring import Keyring
from gateway.evidence.signing import key_id, verify

log = logging.getLogger(__name__)
_STATION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: why a checkpoint is not kept (the ``reason`` label of dockgate_witness_refusals_total)
REASONS = ("malformed", "unknown_key", "unknown_station", "bad_signature", "topic", "wrong_key", "backwards",
           "conflict")


@dataclass
class Heard:
    """A station's newest kept checkpoint."""

    seq: int
    #: when the witness kept it (its own clock: a station's clock is not trusted for its silence)
    at: float


class WitnessStore:
    def __init__(self, root: Path, keys: list[Ed25519PublicKey] | None = None, *, keyring: Keyring | None = None,
                 silence_after: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.keys = {key_id(k): k for k in keys or []}
        self.keyring = keyring
        #: seconds without a checkpoint after which a station is silent (0: never)
        self.silence_after = silence_after
        self.clock = clock
        root.mkdir(parents=True, exist_ok=True)
        #: (station, reason) -> checkpoints refused; station "" when it is no station the witness knows
        self.refusals: Counter[tuple[str, str]] = Counter()
        #: station -> its newest kept checkpoint; read from the store at start (file time: when it was kept)
        self.heard: dict[str, Heard] = {}
        self.started = clock()
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and _STATION.match(p.name)):
            found = sorted(folder.glob("checkpoint-*.json"))
            if found:
                self.heard[folder.name] = Heard(_seq(found[-1].name), found[-1].stat().st_mtime)
        #: stations now silent (alarmed once, until heard again)
        self.silent: set[str] = set()
        #: the counts above are read by the metrics server's thread (gateway/telemetry/witness.py)
        self.lock = threading.Lock()

    def stations(self) -> list[str]:
        """The stations the witness knows: the keyring's and the store's."""
        with self.lock:
            heard = set(self.heard)
        return sorted(heard | set(self.keyring.stations() if self.keyring else ()))

    def _refuse(self, reason: str, station: str | None, level: int, msg: str, *args: object) -> None:
        known = station if station is not None and station in self.stations() else ""
        with self.lock:
            self.refusals[(known, reason)] += 1
        log.log(level, msg, *args, extra={"journal": {"event": "checkpoint_refused", "reason": reason}})

    def refuse_malformed(self, sender: str | None, why: str) -> None:
        self._refuse("malformed", sender, logging.WARNING, "%s", why)

    def keep(self, cp: Checkpoint, topic_station: str | None = None) -> Path | None:
        """Store *cp* write-once; None (an alarm in the log, a refusal
        counted) if it is not kept: not signed by a known key (with a
        keyring: by its station's key), naming another station than the
        topic it came on, signed by another key than the station's earlier
        checkpoints (without a keyring a station's key is bound on first
        use), or going back."""
        sender = topic_station
        try:
            doc = cp.doc
            station, seq = str(doc["station"]), int(doc["seq"])
        except (ValueError, KeyError, TypeError) as e:
            self._refuse("malformed", sender, logging.WARNING, "not a checkpoint (%s); ignored", e)
            return None
        if sender is None:
            sender = station
        if not _STATION.match(station) or cp.name != f"checkpoint-{station}-{seq:010d}.json":
            self._refuse("malformed", sender, logging.WARNING, "checkpoint %r names station %r, seq %d "
                         "inconsistently; ignored", cp.name, station, seq)
            return None
        if topic_station is not None and topic_station != station:
            self._refuse("topic", sender, logging.ERROR, "ALARM: a checkpoint of station %s came on station %s's "
                         "topic: refused (forged?)", station, topic_station)
            return None
        if self.keyring is not None:
            bound = self.keyring.key(station)
            if bound is None:
                self._refuse("unknown_station", sender, logging.ERROR, "ALARM: checkpoint %d of station %s: no "
                             "such station in the keyring %s; refused", seq, station, self.keyring.root)
                return None
            if key_id(bound) != str(doc.get("key_id")):
                self._refuse("wrong_key", sender, logging.ERROR, "ALARM: checkpoint %d of station %s is signed by "
                             "key %s, not the station's (keyring): refused (forged?)", seq, station,
                             str(doc.get("key_id"))[:16])
                return None
            if not verify(bound, cp.body, cp.signature):
                self._refuse("bad_signature", sender, logging.ERROR, "ALARM: checkpoint %d of station %s: the "
                             "signature does not verify; refused", seq, station)
                return None
        elif self.keys:
            pub = self.keys.get(str(doc.get("key_id")))
            if pub is None or not verify(pub, cp.body, cp.signature):
                self._refuse("unknown_key", sender, logging.WARNING, "checkpoint %s of %s is not signed by a known "
                             "station key; ignored", seq, station)
                return None
        folder = self.root / station
        folder.mkdir(exist_ok=True)
        newest = self.newest(station)
        path = folder / cp.name
        if newest is not None and str(newest.doc.get("key_id")) != str(doc.get("key_id")) and self.keyring is None:
            self._refuse("wrong_key", sender, logging.ERROR, "ALARM: checkpoint %d of station %s is signed by key "
                         "%s, its earlier ones by %s: refused (another station's key, or a new key an "
                         "administrator must bind)", seq, station, str(doc.get("key_id"))[:16],
                         str(newest.doc.get("key_id"))[:16])
            return None
        if newest is not None and int(newest.doc["seq"]) > seq and not (
                path.exists() and path.read_bytes() == cp.body):
            self._refuse("backwards", sender, logging.ERROR, "ALARM: station %s published checkpoint %d after %d: "
                         "its record went back; refused, the kept ones stay", station, seq, int(newest.doc["seq"]))
            return None
        files = [(path.with_name(path.name + SIG_SUFFIX), cp.signature), (path, cp.body)]
        if cp.token is not None:
            from gateway.evidence.timestamp import read_token

            if read_token(cp.token, cp.body, None)[0] is None:
                log.warning("checkpoint %s of %s came with a token for other bytes; the token is not kept", seq,
                            station)
            else:
                files.append((path.with_name(path.name + TSR_SUFFIX), cp.token))
        for target, data in files:
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            except FileExistsError:
                if target.read_bytes() != data:
                    self._refuse("conflict", sender, logging.ERROR, "ALARM: station %s sent a different checkpoint "
                                 "%d than the one kept: the kept one stays", station, seq)
                    return None
                continue
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        with self.lock:
            if station not in self.heard or self.heard[station].seq <= seq:
                self.heard[station] = Heard(seq, self.clock())
            again = station in self.silent
            self.silent.discard(station)
        if again:
            log.warning("station %s is heard again (checkpoint %d)", station, seq,
                        extra={"journal": {"event": "station_heard"}})
        return path

    def silence(self) -> list[str]:
        """The stations silent now (no checkpoint for ``silence_after``
        seconds; a keyring station never heard: since the witness started);
        each newly silent one raises a ``station_silent`` alarm, once."""
        if self.silence_after <= 0:
            return []
        now = self.clock()
        out = []
        for station in self.stations():
            with self.lock:
                heard = self.heard.get(station)
                last = heard.at if heard is not None else self.started
                if now - last <= self.silence_after:
                    continue
                out.append(station)
                new = station not in self.silent
                self.silent.add(station)
            if new:
                log.error("ALARM: station %s silent: no checkpoint for %.0f s (longer than %.0f s)", station,
                          now - last, self.silence_after, extra={"journal": {"event": "station_silent"}})
        return out

    def newest(self, station: str) -> Checkpoint | None:
        found = sorted((self.root / station).glob("checkpoint-*.json"))
        return read_checkpoint(found[-1]) if found else None


def _seq(name: str) -> int:
    m = re.search(r"-(\d{10})\.json$", name)
    return int(m.group(1)) if m else 0


def witnessed(root: Path, station: str | None = None) -> list[Checkpoint]:
    """Every checkpoint a witness store holds (for `verify --witness`), or
    one station's; one whose ``.sig`` is gone comes without a signature and
    fails as such."""
    out = []
    for p in sorted(root.glob(f"{glob.escape(station) if station else '*'}/checkpoint-*.json")):
        sig = p.with_name(p.name + SIG_SUFFIX)
        tsr = p.with_name(p.name + TSR_SUFFIX)
        out.append(Checkpoint(p.name, p.read_bytes(), sig.read_bytes() if sig.is_file() else b"",
                              tsr.read_bytes() if tsr.is_file() else None))
    return out


async def run_witness(store: WitnessStore, host: str, port: int, prefix: str, username: str | None = None,
                      password: str | None = None) -> None:
    """Subscribe and keep, reconnecting for as long as it runs."""
    import aiomqtt

    topic = f"{prefix}/+/checkpoint"
    watch = asyncio.create_task(_watch_silence(store))
    try:
        await _subscribe(store, aiomqtt, topic, host, port, username, password)
    finally:
        watch.cancel()


async def _watch_silence(store: WitnessStore) -> None:
    while True:
        store.silence()
        await asyncio.sleep(max(1.0, min(60.0, store.silence_after / 10)) if store.silence_after > 0 else 60.0)


async def _subscribe(store: WitnessStore, aiomqtt: Any, topic: str, host: str, port: int, username: str | None,
                     password: str | None) -> None:
    backoff = 1.0
    while True:
        try:
            async with aiomqtt.Client(host, port, username=username, password=password,
                                      identifier=f"dockgate-witness-{os.getpid()}") as client:
                await client.subscribe(topic, qos=1)
                log.info("witness: keeping %s from %s:%d in %s", topic, host, port, store.root)
                backoff = 1.0
                async for msg in client.messages:
                    if not isinstance(msg.payload, bytes | bytearray):
                        continue
                    parts = str(msg.topic).split("/")
                    try:
                        cp = Checkpoint.from_mqtt(bytes(msg.payload))
                    except (ValueError, KeyError, TypeError) as e:
                        store.refuse_malformed(parts[-2] if len(parts) >= 2 else None,
                                               f"witness: {msg.topic}: not a checkpoint message ({e})")
                        continue
                    if (kept := store.keep(cp, parts[-2] if len(parts) >= 2 else None)) is not None:
                        log.info("witness: kept %s", kept)
        except aiomqtt.MqttError as e:
            log.warning("witness: broker %s:%d: %s; reconnecting in %.0fs", host, port, e, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 30.0)
