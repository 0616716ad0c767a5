"""Trusted timestamps (RFC 3161) for checkpoints, optional.

With ``evidence.tsa_url`` set, every checkpoint's exact bytes are sent to the
time-stamping authority (their SHA-256, in a TimeStampReq asking for the TSA
certificate); the response is checked against ``evidence.tsa_ca_file`` and
kept as ``<checkpoint>.tsr`` beside the checkpoint, archived after it. A TSA
that cannot be reached only delays: requests wait on the station (the
checkpoint without its ``.tsr`` is the queue) and go out when it answers.
Anyone can check a token without dockgate::

    openssl ts -verify -data checkpoint-….json -in checkpoint-….json.tsr -CAfile tsa-ca.pem

What it adds: the checkpoint, and with it the custody record up to its seq,
existed no later than the TSA's time. A station key holder cannot backdate a
rewritten record past a timestamp the TSA gave out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from gateway.durable import write_atomic
from gateway.errors import DockgateError
from gateway.evidence.checkpoint import TSR_SUFFIX
from gateway.process.supervise import Worker

log = logging.getLogger(__name__)
RETRY_S = (5.0, 300.0)


class TimestampError(DockgateError):
    """The TSA could not be reached, or its answer does not check out."""

    permanent = False
    reason = "timestamp"


class Timestamper:
    def __init__(self, url: str, ca_file: Path, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.ca_file = ca_file
        self.roots = x509.load_pem_x509_certificates(ca_file.read_bytes())

    def stamp(self, data: bytes) -> bytes:
        """The DER TimeStampResp for *data*, verified (blocking)."""
        from rfc3161_client import (
            TimestampRequestBuilder,
            VerificationError,
            VerifierBuilder,
            decode_timestamp_response,
        )

        req = TimestampRequestBuilder().data(data).nonce(nonce=True).cert_request(cert_request=True).build()
        http = urllib.request.Request(self.url, data=req.as_bytes(), method="POST",
                                      headers={"Content-Type": "application/timestamp-query"})
        try:
            with urllib.request.urlopen(http, timeout=self.timeout_s) as resp:
                raw: bytes = resp.read(1 << 20)
        except (urllib.error.URLError, OSError) as e:
            raise TimestampError(f"TSA {self.url}: {e}") from None
        try:
            tsr = decode_timestamp_response(raw)
        except ValueError:
            # the library's DER parser is strict where OpenSSL-made TSAs are not
            # (their certificate SET is not sorted): check it the way a third
            # party will, with `openssl ts -verify`
            self._openssl_verify(data, raw)
            return raw
        try:
            builder = VerifierBuilder.from_request(req)
            for root in self.roots:
                builder = builder.add_root_certificate(root)
            builder.build().verify_message(tsr, data)
        except (ValueError, VerificationError) as e:
            raise TimestampError(f"TSA {self.url}: the answer does not verify: {e}") from None
        return raw

    def _openssl_verify(self, data: bytes, token: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="dockgate-tsr-") as tmp:
            d, t = Path(tmp) / "data", Path(tmp) / "token.tsr"
            d.write_bytes(data)
            t.write_bytes(token)
            try:
                r = subprocess.run(["openssl", "ts", "-verify", "-data", str(d), "-in", str(t), "-CAfile",
                                    str(self.ca_file)], capture_output=True, text=True, timeout=60, check=False)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise TimestampError(f"TSA {self.url}: cannot check the answer with openssl: {e}") from None
        if r.returncode != 0 or "Verification: OK" not in r.stdout:
            raise TimestampError(f"TSA {self.url}: the answer does not verify: {r.stderr.strip()[-300:]}")


class TimestampWorker(Worker):
    """Every checkpoint without a token gets one, oldest first; *on_token*
    queues the token for the archive."""

    def __init__(self, stamper: Timestamper, folder: Path, on_token: Callable[[Path], None]) -> None:
        super().__init__()
        self.stamper = stamper
        self.folder = folder
        self.on_token = on_token
        self._failures = 0

    async def step(self) -> float:
        for cp in sorted(self.folder.glob("checkpoint-*.json")):
            tsr = cp.with_name(cp.name + TSR_SUFFIX)
            if tsr.exists():
                continue
            try:
                token = await asyncio.to_thread(self.stamper.stamp, cp.read_bytes())
            except TimestampError as e:
                self._failures += 1
                if self._failures == 1:
                    log.warning("%s; checkpoints wait for their timestamps", e)
                return float(min(RETRY_S[1], RETRY_S[0] * 2.0 ** min(self._failures, 10)))
            if self._failures:
                log.info("TSA answers again")
            self._failures = 0
            await asyncio.to_thread(write_atomic, tsr, token, 0o444)
            self.on_token(tsr)
        return RETRY_S[1]


def _token_facts(token: bytes) -> tuple[str, bytes, datetime]:
    """(hash algorithm, message imprint, time) of a TimeStampResp."""
    from rfc3161_client import decode_timestamp_response

    try:
        tst = decode_timestamp_response(token).tst_info
        algo = {"2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.3": "sha512",
                "2.16.840.1.101.3.4.2.2": "sha384"}.get(tst.message_imprint.hash_algorithm.dotted_string, "?")
        return algo, bytes(tst.message_imprint.message), tst.gen_time.astimezone(UTC)
    except ValueError:  # OpenSSL-made TSAs: the library's DER parser is strict; read it the way openssl does
        pass
    with tempfile.NamedTemporaryFile(prefix="dockgate-tsr-") as f:
        f.write(token)
        f.flush()
        r = subprocess.run(["openssl", "ts", "-reply", "-in", f.name, "-text"], capture_output=True, text=True,
                           timeout=60, check=False)
    if r.returncode != 0 or "Status: Granted" not in r.stdout:
        raise ValueError("not a granted RFC 3161 time-stamp response")
    algo_m = re.search(r"Hash Algorithm: (\S+)", r.stdout)
    when = re.search(r"Time stamp: (.+?) GMT", r.stdout)
    data = re.search(r"Message data:\n((?:\s+[0-9a-f]{4} - .*\n)+)", r.stdout)
    if not (algo_m and when and data):
        raise ValueError("a time-stamp response without imprint or time")
    imprint = bytes.fromhex("".join(re.sub(r"\s{2,}\S.*$", "", ln.split(" - ", 1)[1]).replace("-", " ")
                                    for ln in data.group(1).splitlines()).replace(" ", ""))
    stamp = datetime.strptime(" ".join(when.group(1).split()).split(".")[0], "%b %d %H:%M:%S %Y")
    return algo_m.group(1), imprint, stamp.replace(tzinfo=UTC)


def read_token(token: bytes, checkpoint: bytes, tsa_ca: str | None) -> tuple[datetime | None, str | None]:
    """A checkpoint's token checked by itself: (its time, None) or (None,
    what is wrong). Its imprint must be the checkpoint's hash; with
    *tsa_ca*, it must verify against that CA the way a third party checks
    it (``openssl ts -verify``)."""
    try:
        algo, imprint, when = _token_facts(token)
    except (ValueError, OSError, subprocess.TimeoutExpired) as e:
        return None, f"not a readable RFC 3161 token: {e}"
    if algo not in ("sha256", "sha384", "sha512") or hashlib.new(algo, checkpoint).digest() != imprint:
        return None, "its message imprint is not this checkpoint's hash (a token for other bytes)"
    if tsa_ca is not None:
        with tempfile.TemporaryDirectory(prefix="dockgate-tsr-") as tmp:
            d, t = Path(tmp) / "data", Path(tmp) / "token.tsr"
            d.write_bytes(checkpoint)
            t.write_bytes(token)
            r = subprocess.run(["openssl", "ts", "-verify", "-data", str(d), "-in", str(t), "-CAfile", tsa_ca],
                               capture_output=True, text=True, timeout=60, check=False)
        if r.returncode != 0 or "Verification: OK" not in r.stdout:
            return None, f"does not verify against the TSA CA {tsa_ca}: {r.stderr.strip()[-200:]}"
    return when, None
