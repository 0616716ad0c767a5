"""Trusted timestamps: every checkpoint gets an RFC 3161 token from the TSA
(a local `openssl ts -reply`), archived beside it; while the TSA cannot be
reached the requests wait and go out when it answers; a third party checks a
token with `openssl ts -verify` alone, as docs/verify.md writes it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, dockgate, wait_until
from tests.servers import OpensslTsa

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def tokens_for_every_checkpoint(custody: Path) -> bool:
    cps = sorted(custody.glob("checkpoint-*.json"))
    return bool(cps) and all(cp.with_name(cp.name + ".tsr").exists() for cp in cps)


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("tsa")
    tsa = OpensslTsa(tmp / "tsa")
    tsa.down()  # the TSA is unreachable while the station works
    station = write_station(tmp / "st", reserve_bytes=0)
    station.write_text(station.read_text().replace(
        "[evidence]\n", f'[evidence]\ntsa_url = "{tsa.url}"\ntsa_ca_file = "{tsa.ca}"\n', 1))
    rec = tmp / "rec"
    dockgate("sim", "make", str(rec), "--clips", "2", "--size", "30k", "--serial", "TSA00001")
    custody = tmp / "st" / "archive" / "custody" / "sim-station-01"
    d = DaemonProc(station, tmp / "daemon1.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["queue"]["clips"] == 0, timeout=60, what="archived")
    finally:
        assert d.stop() == 0
    waited = list(custody.glob("*.tsr"))
    tsa.up()
    d = DaemonProc(station, tmp / "daemon2.log").start()
    try:
        wait_until(lambda: tokens_for_every_checkpoint(custody), timeout=60, what="a token for every checkpoint")
    finally:
        d.stop()
    yield {"custody": custody, "ca": tsa.ca, "waited": waited, "tmp": tmp}
    tsa.down()


def openssl_verify(checkpoint: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    # exactly the command docs/verify.md gives
    return subprocess.run(["openssl", "ts", "-verify", "-data", str(checkpoint), "-in",
                           str(checkpoint.with_name(checkpoint.name + ".tsr")), "-CAfile", str(ca)],
                          capture_output=True, text=True, check=False)


def test_requests_wait_while_the_tsa_is_unreachable(stamped: dict[str, Any]) -> None:
    assert stamped["waited"] == []  # none while it was down; every one once it answered
    assert tokens_for_every_checkpoint(stamped["custody"])


def test_every_token_verifies_with_openssl_alone(stamped: dict[str, Any]) -> None:
    for cp in sorted(stamped["custody"].glob("checkpoint-*.json")):
        r = openssl_verify(cp, stamped["ca"])
        assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout + r.stderr


def test_one_flipped_bit_in_a_checkpoint_fails_the_token(stamped: dict[str, Any], tmp_path: Path) -> None:
    cp = sorted(stamped["custody"].glob("checkpoint-*.json"))[-1]
    bad = tmp_path / cp.name
    data = bytearray(cp.read_bytes())
    data[10] ^= 1
    bad.write_bytes(bytes(data))
    bad.with_name(bad.name + ".tsr").write_bytes(cp.with_name(cp.name + ".tsr").read_bytes())
    assert openssl_verify(bad, stamped["ca"]).returncode != 0


def test_the_docs_give_the_command_the_test_runs() -> None:
    assert "openssl ts -verify -data" in (ROOT / "docs" / "verify.md").read_text()
