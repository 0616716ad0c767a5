"""A district's keyring: each station id bound to its public key.

Layout: one directory holding ``<station_id>.pub.pem`` per station, the
``.pub.pem`` `dockgate keygen` writes, copied under the station's id (ids are
``[A-Za-z0-9._-]{1,64}``, as in checkpoint names). Nothing else is read from
it. `dockgate witness --keyring DIR` keeps a checkpoint of station S only when
``S.pub.pem`` signed it and it came on S's topic; `dockgate verify --keyring
DIR` verifies each station of a district archive against its own key only.

Contract:

* a file that is not an Ed25519 public key, or one key filed under two
  station ids, is a `KeyringError` (the binding would mean nothing);
* a station not in the keyring has no key: its checkpoints are refused and
  its archive cannot be verified;
* the witness runs for months: a station added to the directory is read on
  its first checkpoint, without a restart (`key` looks again on a miss).
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import DockgateError
from gateway.evidence.signing import KeyError_, key_id, load_public

SUFFIX = ".pub.pem"
STATION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(DockgateError):
    reason = "keyring"


class Keyring:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise KeyringError(f"{root}: no such keyring directory")
        self.root = root
        self.keys: dict[str, Ed25519PublicKey] = {}
        for p in sorted(root.glob("*" + SUFFIX)):
            self._load(p.name.removesuffix(SUFFIX), p)

    def _load(self, station: str, path: Path) -> Ed25519PublicKey:
        if not STATION_ID.match(station):
            raise KeyringError(f"{path}: {station!r} is not a station id")
        try:
            pub = load_public(path)
        except KeyError_ as e:
            raise KeyringError(f"keyring: {e}") from None
        kid = key_id(pub)
        for other, k in self.keys.items():
            if other != station and key_id(k) == kid:
                raise KeyringError(f"keyring {self.root}: stations {other} and {station} have the same key: "
                                   "a key must sign for one station only")
        self.keys[station] = pub
        return pub

    def key(self, station: str) -> Ed25519PublicKey | None:
        """The station's key; a station added to the directory since is read now."""
        pub = self.keys.get(station)
        if pub is None and STATION_ID.match(station) and (p := self.root / (station + SUFFIX)).is_file():
            pub = self._load(station, p)
        return pub

    def stations(self) -> list[str]:
        return sorted(self.keys)
