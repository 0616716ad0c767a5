"""国密: a station with national_crypto on stamps an SM3 digest and an SM2
signature beside SHA-256 and Ed25519; OpenSSL 3 checks them with the
commands in docs/verify.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import DaemonProc, attach, dockgate
from tests.test_casefile import flip, recorder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("gm")
    station = write_station(tmp / "station", slots=1, reserve_bytes=0, custody_rotate_s=1.0)
    dockgate("keygen", "--sm2", str(tmp / "station" / "secrets" / "sm2.key"))
    text = station.read_text().replace("[evidence]\n", f'[evidence]\nnational_crypto = true\n'
                                                       f'sm2_key_file = "{tmp / "station" / "secrets" / "sm2.key"}"\n')
    station.write_text(text)
    cfg = load_config(station)
    rec = recorder(tmp / "rec", "ZF00042", "0123456", "张伟", {"20240301083015": "2024-03-01T08:30:15Z"})
    d = DaemonProc(station, tmp / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 1 and s["queue"]["clips"] == 0, timeout=60,
                   what="clip archived")
    finally:
        assert d.stop() == 0
    (manifest,) = cfg.archive.path.rglob("*.manifest.json")
    yield {"archive": cfg.archive.path, "pub": cfg.public_key_file, "sm2pub": tmp / "station" / "secrets" / "sm2.pub.pem",
           "clip": Path(str(manifest)[: -len(".manifest.json")])}


def docs_script() -> str:
    doc = (Path(__file__).parent.parent / "docs" / "verify.md").read_text()
    section = doc[doc.index("## 国密"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def openssl(clip: Path, sm2pub: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-uo", "pipefail", "-c", docs_script()], env={**os.environ, "CLIP": str(clip),
                          "SM2PUB": str(sm2pub)}, capture_output=True, text=True, check=False)


def test_the_sm2_signature_verifies_with_the_openssl_command_in_the_docs(run: dict[str, Path]) -> None:
    r = openssl(run["clip"], run["sm2pub"])
    out = r.stdout.splitlines()
    assert out[0] == out[1] and len(out[0]) == 64  # SM3 of the clip = the manifest's
    assert out[2] == "Verified OK", r.stdout + r.stderr


def test_one_flipped_bit_in_the_manifest_fails_the_sm2_check(run: dict[str, Path], tmp_path: Path) -> None:
    clip = tmp_path / run["clip"].name
    for suffix in ("", ".manifest.json", ".manifest.json.sm2.sig"):
        shutil.copy(str(run["clip"]) + suffix, str(clip) + suffix)
    flip(Path(str(clip) + ".manifest.json"))
    r = openssl(clip, run["sm2pub"])
    assert "Verification failure" in r.stdout + r.stderr and "Verified OK" not in r.stdout


def test_ed25519_and_sha256_still_hold_beside_them(run: dict[str, Path]) -> None:
    r = dockgate("verify", "--archive", str(run["archive"]), "--pubkey", str(run["pub"]))
    assert r.stdout.startswith("OK: 1 clips")


def test_verify_checks_the_sm2_signature_and_sm3_digest_too(run: dict[str, Path], tmp_path: Path) -> None:
    r = dockgate("verify", "--archive", str(run["archive"]), "--pubkey", str(run["pub"]),
                 "--sm2-pubkey", str(run["sm2pub"]), "--json")
    assert json.loads(r.stdout)["ok"] is True
    copy = tmp_path / "archive"
    shutil.copytree(run["archive"], copy)
    (sig,) = copy.rglob("*.manifest.json.sm2.sig")
    flip(sig)
    r = dockgate("verify", "--archive", str(copy), "--pubkey", str(run["pub"]), "--sm2-pubkey", str(run["sm2pub"]),
                 "--json", check=False)
    assert r.returncode == 1
    # the SM2 check, and the custody index, which named the signature's hash when it was made
    assert sorted(f["check"] for f in json.loads(r.stdout)["failures"]) == ["index-replaced", "manifest-sm2-signature"]
    r = dockgate("verify", "--archive", str(copy), "--pubkey", str(run["pub"]), "--json", check=False)
    assert r.returncode == 1  # without the SM2 key too: custody indexes every signature by hash
    assert [(f["check"], f["object"]) for f in json.loads(r.stdout)["failures"]] == [
        ("index-replaced", str(sig.relative_to(copy)))]
