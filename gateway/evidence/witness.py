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
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.evidence.checkpoint import SIG_SUFFIX, TSR_SUFFIX, Checkpoint, read_checkpoint
from gateway.evidence.signing import key_id, verify

log = logging.getLogger(__name__)
_STATION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class WitnessStore:
    def __init__(self, root: Path, keys: list[Ed25519PublicKey] | None = None) -> None:
        self.root = root
        self.keys = {key_id(k): k for k in keys or []}
        root.mkdir(parents=True, exist_ok=True)

    def keep(self, cp: Checkpoint, topic_station: str | None = None) -> Path | None:
        """Store *cp* write-once; None (and a log line) if it is not kept:
        not signed by a known key, naming another station than the topic it
        came on, signed by another key than the station's earlier checkpoints
        (a station's key is bound on first use), or going back."""
        try:
            doc = cp.doc
            station, seq = str(doc["station"]), int(doc["seq"])
        except (ValueError, KeyError, TypeError) as e:
            log.warning("not a checkpoint (%s); ignored", e)
            return None
        if not _STATION.match(station) or cp.name != f"checkpoint-{station}-{seq:010d}.json":
            log.warning("checkpoint %r names station %r, seq %d inconsistently; ignored", cp.name, station, seq)
            return None
        if self.keys:
            pub = self.keys.get(str(doc.get("key_id")))
            if pub is None or not verify(pub, cp.body, cp.signature):
                log.warning("checkpoint %s of %s is not signed by a known station key; ignored", seq, station)
                return None
        if topic_station is not None and topic_station != station:
            log.error("ALARM: a checkpoint of station %s came on station %s's topic: refused (forged?)", station,
                      topic_station)
            return None
        folder = self.root / station
        folder.mkdir(exist_ok=True)
        newest = self.newest(station)
        path = folder / cp.name
        if newest is not None and str(newest.doc.get("key_id")) != str(doc.get("key_id")):
            log.error("ALARM: checkpoint %d of station %s is signed by key %s, its earlier ones by %s: refused "
                      "(another station's key, or a new key an administrator must bind)", seq, station,
                      str(doc.get("key_id"))[:16], str(newest.doc.get("key_id"))[:16])
            return None
        if newest is not None and int(newest.doc["seq"]) > seq and not (
                path.exists() and path.read_bytes() == cp.body):
            log.error("ALARM: station %s published checkpoint %d after %d: its record went back; refused, the "
                      "kept ones stay", station, seq, int(newest.doc["seq"]))
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
                    log.error("station %s sent a different checkpoint %d than the one kept: the kept one stays",
                              station, seq)
                    return None
                continue
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return path

    def newest(self, station: str) -> Checkpoint | None:
        found = sorted((self.root / station).glob("checkpoint-*.json"))
        return read_checkpoint(found[-1]) if found else None


def witnessed(root: Path) -> list[Checkpoint]:
    """Every checkpoint a witness store holds (for `verify --witness`); one
    whose ``.sig`` is gone comes without a signature and fails as such."""
    out = []
    for p in sorted(root.glob("*/checkpoint-*.json")):
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
                    try:
                        cp = Checkpoint.from_mqtt(bytes(msg.payload))
                    except (ValueError, KeyError, TypeError) as e:
                        log.warning("witness: %s: not a checkpoint message (%s)", msg.topic, e)
                        continue
                    parts = str(msg.topic).split("/")
                    if (kept := store.keep(cp, parts[-2] if len(parts) >= 2 else None)) is not None:
                        log.info("witness: kept %s", kept)
        except aiomqtt.MqttError as e:
            log.warning("witness: broker %s:%d: %s; reconnecting in %.0fs", host, port, e, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 30.0)
