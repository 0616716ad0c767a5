"""The station's Ed25519 key: signs manifests, amendments and custody entries.

The key id is the SHA-256 of the public key in DER (SubjectPublicKeyInfo),
which anyone can recompute with OpenSSL alone::

    openssl pkey -pubin -in station.pub.pem -outform DER | sha256sum
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.durable import write_atomic
from gateway.errors import DockgateError, SecretError
from gateway.secrets import readable_by_others


class KeyError_(DockgateError):
    reason = "signing_key"


def key_id(public: Ed25519PublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @functools.cached_property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @functools.cached_property
    def key_id(self) -> str:  # every custody entry and manifest carries it: derived once
        return key_id(self.public)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def keygen(private_path: Path, public_path: Path | None = None, force: bool = False) -> Signer:
    if private_path.exists() and not force:
        raise KeyError_(f"{private_path} exists; refusing to replace a station key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(private_path, pem, mode=0o600)
    os.chmod(private_path, 0o600)
    signer = Signer(key)
    write_atomic(public_path or private_path.with_suffix(".pub.pem"), public_pem(signer.public), mode=0o644)
    return signer


def load_signer(path: Path) -> Signer:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SecretError(path, "signing key not found (create one with `dockgate keygen`)") from None
    if readable_by_others(path, st):
        raise SecretError(path, f"mode {stat.S_IMODE(st.st_mode):04o} lets other users read the "
                                f"signing key; chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise SecretError(path, f"cannot read the signing key: {e.strerror or e}") from None
    except (ValueError, TypeError) as e:
        raise SecretError(path, f"not a PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretError(path, "not an Ed25519 key")
    return Signer(key)


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as e:
        raise KeyError_(f"{path}: not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_(f"{path}: not an Ed25519 public key")
    return key


def verify(public: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True
