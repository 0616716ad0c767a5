"""Secret files: only their owner may read them, except that a credential systemd hands
the service may also be read-only to the group (systemd 257, Debian 13, makes them 0440)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.errors import SecretError
from gateway.evidence.signing import keygen, load_signer
from gateway.secrets import read_secret


def test_a_credential_systemd_hands_over_read_only_to_the_group_is_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    pw, key = creds / "admin_password", creds / "station.key"
    pw.write_text("000000\n")
    keygen(key)
    for f in (pw, key):
        os.chmod(f, 0o440)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_secret(pw) == "000000"
    load_signer(key)
    os.chmod(pw, 0o460)  # the group may write: refused even there
    with pytest.raises(SecretError, match="chmod 600"):
        read_secret(pw)


def test_a_group_readable_secret_outside_the_credentials_folder_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    pw, key = tmp_path / "admin_password", tmp_path / "station.key"
    pw.write_text("000000\n")
    keygen(key)
    for f in (pw, key):
        os.chmod(f, 0o440)
    with pytest.raises(SecretError, match="chmod 600"):
        read_secret(pw)
    with pytest.raises(SecretError, match="chmod 600"):
        load_signer(key)
