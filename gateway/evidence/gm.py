"""国密 (national crypto): SM3 digests and SM2 signatures beside SHA-256 and
Ed25519, for agencies whose PKI runs on SM2/SM3.

Signing is pure Python (gmalg): pyca/cryptography refuses SM2 keys. gmalg
takes its nonces from ``secrets`` (gmssl 3.2.2 uses ``random.choice`` for
the per-signature k, which leaks the key, and strips leading "0"/"4" hex
digits from public keys). SM3 digests come from OpenSSL through hashlib.

Signatures use the GM/T 0009 default distinguishing ID
``1234567812345678`` and are stored DER-encoded (SEQUENCE of r, s), as
OpenSSL 3 expects::

    openssl dgst -sm3 -verify sm2.pub.pem -sigopt distid:1234567812345678 \\
        -signature m.manifest.json.sm2.sig m.manifest.json

(OpenSSL's own default ID is empty, so ``-sigopt distid:`` is required.)
Keys are PEM files OpenSSL reads: SEC1 ``EC PRIVATE KEY`` and
SubjectPublicKeyInfo on the SM2 curve. ``SM2Signer`` is the interface an
HSM-backed signer implements (``sign(data) -> DER``, ``public_der``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

from gateway.durable import write_atomic
from gateway.errors import SecretError

DEFAULT_ID = b"1234567812345678"
SM2_SIG_SUFFIX = ".sm2.sig"
#: an SM2 public key in a case file's bag: data/keys/<sm2 key id>.sm2.pub.pem
SM2_PUB_SUFFIX = ".sm2.pub.pem"
_OID_EC = bytes.fromhex("06072a8648ce3d0201")           # 1.2.840.10045.2.1 id-ecPublicKey
_OID_SM2 = bytes.fromhex("06082a811ccf5501822d")        # 1.2.156.10197.1.301 sm2p256v1


def sm3_file(path: Path) -> str:
    h = hashlib.new("sm3")
    with open(path, "rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- minimal DER ----------------------------------------------------------------
def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _len(len(body)) + body


def _int(v: int) -> bytes:
    raw = v.to_bytes((v.bit_length() + 8) // 8 or 1, "big")  # a leading 0 keeps it positive
    return _tlv(0x02, raw)


def _read_tlv(data: bytes, i: int) -> tuple[int, bytes, int]:
    tag, n = data[i], data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[i:i + k], "big")
        i += k
    return tag, data[i:i + n], i + n


def der_signature(r: int, s: int) -> bytes:
    return _tlv(0x30, _int(r) + _int(s))


def parse_signature(der: bytes) -> tuple[int, int]:
    _, seq, _ = _read_tlv(der, 0)
    _, r, i = _read_tlv(seq, 0)
    _, s, _ = _read_tlv(seq, i)
    return int.from_bytes(r, "big"), int.from_bytes(s, "big")


def public_der(point: bytes) -> bytes:
    """SubjectPublicKeyInfo of an uncompressed point (04 || x || y)."""
    return _tlv(0x30, _tlv(0x30, _OID_EC + _OID_SM2) + _tlv(0x03, b"\x00" + point))


def public_pem(point: bytes) -> bytes:
    """The PEM SubjectPublicKeyInfo OpenSSL reads (``openssl pkey -pubin``)."""
    return _pem("PUBLIC KEY", public_der(point))


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()


def _unpem(data: bytes, label: str) -> bytes:
    m = re.search(rb"-----BEGIN " + label.encode() + rb"-----(.*?)-----END", data, re.S)
    if not m:
        raise ValueError(f"no {label} PEM block")
    return base64.b64decode(m.group(1))


def sm2_key_id(point: bytes) -> str:
    """SHA-256 of the DER public key, as ``openssl pkey -pubin -outform DER | sha256sum``."""
    return hashlib.sha256(public_der(point)).hexdigest()


class SM2Signer(Protocol):
    """What signs with SM2: a key file here, an HSM elsewhere."""

    @property
    def point(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


class FileSM2Signer:
    def __init__(self, secret: bytes) -> None:
        from gmalg import SM2  # type: ignore[import-untyped]  # no type information

        self._sm2 = SM2(sk=secret, uid=DEFAULT_ID)
        self._point: bytes = SM2().generate_pk(secret)

    @property
    def point(self) -> bytes:
        return self._point

    @property
    def key_id(self) -> str:
        return sm2_key_id(self._point)

    def sign(self, data: bytes) -> bytes:
        r, s = self._sm2.sign(data)  # 32-byte big-endian integers
        return der_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))


def sm2_verify(point: bytes, data: bytes, der: bytes) -> bool:
    from gmalg import SM2

    try:
        r, s = parse_signature(der)
        return bool(SM2(pk=point, uid=DEFAULT_ID).verify(data, r.to_bytes(32, "big"), s.to_bytes(32, "big")))
    except (ValueError, IndexError, TypeError):
        return False


def sm2_keygen(private_path: Path, public_path: Path | None = None, force: bool = False) -> FileSM2Signer:
    from gmalg import SM2

    if private_path.exists() and not force:
        raise SecretError(private_path, "exists; refusing to replace an SM2 key")
    secret, point = SM2().generate_keypair()
    secret = secret.rjust(32, b"\x00")
    der = _tlv(0x30, _int(1) + _tlv(0x04, secret) + _tlv(0xA0, _OID_SM2) + _tlv(0xA1, _tlv(0x03, b"\x00" + point)))
    write_atomic(private_path, _pem("EC PRIVATE KEY", der), mode=0o600)
    os.chmod(private_path, 0o600)
    write_atomic(public_path or private_path.with_suffix(".pub.pem"), _pem("PUBLIC KEY", public_der(point)),
                 mode=0o644)
    return FileSM2Signer(secret)


def load_sm2_signer(path: Path) -> FileSM2Signer:
    try:
        der = _unpem(path.read_bytes(), "EC PRIVATE KEY")
        _, seq, _ = _read_tlv(der, 0)
        _, _version, i = _read_tlv(seq, 0)
        _, secret, _ = _read_tlv(seq, i)
    except FileNotFoundError:
        raise SecretError(path, "SM2 key not found (create one with `dockgate keygen --sm2`)") from None
    except (OSError, ValueError, IndexError) as e:
        raise SecretError(path, f"not an SM2 EC PRIVATE KEY PEM: {e}") from None
    if os.stat(path).st_mode & 0o077:
        raise SecretError(path, "readable by other users; chmod 600 it")
    return FileSM2Signer(secret)


def load_sm2_public(path: Path) -> bytes:
    """The uncompressed point of an SM2 public key PEM."""
    der = _unpem(path.read_bytes(), "PUBLIC KEY")
    _, spki, _ = _read_tlv(der, 0)
    _, algo, i = _read_tlv(spki, 0)
    if _OID_SM2 not in algo:
        raise ValueError(f"{path}: not an SM2 public key")
    _, bits, _ = _read_tlv(spki, i)
    return bits[1:]
