"""Signed checkpoints: a small fact about the custody log that outlives the
station and the archive.

Whenever a custody segment is sealed (on rotation, at least every
``custody_rotate_s`` while anything happened, and on every clean stop), the
station signs a checkpoint: the last sequence number the sealed segments
cover, the hash of that entry (the head of the chain), the segment, counts,
the time. It is archived write-once beside the segments
(``custody/<station>/checkpoint-<station>-<seq>.json`` and ``.sig``), kept
on the station, published retained on MQTT (``<prefix>/<station>/checkpoint``)
for ``dockgate witness``, and, when a TSA is configured, timestamped (RFC
3161, ``.tsr`` beside it).

What it proves: that the record up to ``seq`` existed, with this head, when
it was signed (and, with a timestamp, no later than the TSA's time). A
witness keeping the newest checkpoint of each station can show the archive
was cut back or rolled back. It does not prove anything about entries after
``seq``, and someone holding the station key can sign a false one: the
witness and the TSA are what the key cannot rewrite.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.durable import write_atomic
from gateway.evidence.canonical import canonical

if TYPE_CHECKING:  # an annotation only: reading a checkpoint needs no key (cryptography)
    from gateway.evidence.signing import Signer

FORMAT = "dockgate-checkpoint/1"
SIG_SUFFIX = ".sig"
TSR_SUFFIX = ".tsr"


def checkpoint_name(station: str, seq: int) -> str:
    return f"checkpoint-{station}-{seq:010d}.json"


def is_checkpoint(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith("checkpoint-") and name.endswith(".json")


@dataclass(frozen=True)
class Checkpoint:
    name: str
    body: bytes
    signature: bytes
    #: its RFC 3161 token, once the TSA gave one (a witness keeps it too)
    token: bytes | None = None

    @property
    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc

    def mqtt_payload(self) -> bytes:
        """What a witness receives: the exact signed bytes and the signature."""
        msg = {"name": self.name, "checkpoint": self.body.decode("utf-8"),
               "sig": base64.b64encode(self.signature).decode()}
        if self.token is not None:
            msg["tsr"] = base64.b64encode(self.token).decode()
        return json.dumps(msg, separators=(",", ":")).encode()

    @classmethod
    def from_mqtt(cls, payload: bytes) -> Checkpoint:
        msg = json.loads(payload)
        name = str(msg["name"])
        if "/" in name or not is_checkpoint(name):
            raise ValueError(f"not a checkpoint name: {name!r}")
        token = base64.b64decode(msg["tsr"], validate=True) if msg.get("tsr") else None
        return cls(name, str(msg["checkpoint"]).encode("utf-8"), base64.b64decode(msg["sig"], validate=True), token)


def make_checkpoint(signer: Signer, station: str, seq: int, head: str, segment: str,
                    counts: dict[str, int]) -> Checkpoint:
    doc = {
        "format": FORMAT,
        "station": station,
        "seq": seq,
        "head": head,
        "segment": segment,
        "counts": counts,
        "made_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "key_id": signer.key_id,
    }
    body = canonical(doc)
    return Checkpoint(checkpoint_name(station, seq), body, signer.sign(body))


def write_checkpoint(folder: Path, cp: Checkpoint) -> list[Path]:
    """Durably, read-only; returns the files in the order they are archived."""
    body, sig = folder / cp.name, folder / (cp.name + SIG_SUFFIX)
    write_atomic(body, cp.body, mode=0o444)
    write_atomic(sig, cp.signature, mode=0o444)
    return [body, sig]


def read_checkpoint(path: Path) -> Checkpoint:
    tsr = path.with_name(path.name + TSR_SUFFIX)
    return Checkpoint(path.name, path.read_bytes(), path.with_name(path.name + SIG_SUFFIX).read_bytes(),
                      tsr.read_bytes() if tsr.is_file() else None)
