"""The config is validated once, and every problem names its key and the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError, SecretError
from gateway.secrets import read_secret
from tests.helpers import dockgate

MINIMAL = """
[station]
id = "p01"
[paths]
state_dir = "state"
staging = "staging"
[archive]
backend = "directory"
path = "/mnt/archive"
[evidence]
signing_key_file = "station.key"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "dockgate.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_minimal_config_resolves_paths_next_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.paths.state_dir == tmp_path / "state"
    assert cfg.archive.path == Path("/mnt/archive")
    assert cfg.detect.backend == "udev"


def test_example_config_is_valid() -> None:
    cfg = load_config(Path(__file__).parent.parent / "config" / "dockgate.example.toml")
    assert cfg.station.id


@pytest.mark.parametrize(("text", "needle"), [
    (MINIMAL + "\n[detect]\nslotz = 3\n", "detect.slotz: unknown key"),
    (MINIMAL.replace('id = "p01"', 'id = "bad id!"'), "station.id:"),
    (MINIMAL + "\n[detect]\nslots = 0\n", "detect.slots:"),
    (MINIMAL.replace('backend = "directory"', 'backend = "ftp"'), "archive:"),
    (MINIMAL.replace('path = "/mnt/archive"', ""), "archive.path: Field required"),
    (MINIMAL + "\n[detect]\nbackend = \"sim\"\n", "sim_dir"),
    (MINIMAL + '\n[forward]\nconcurrency = "many"\n', "forward.concurrency:"),
    (MINIMAL.replace('backend = "directory"', 'backend = "directory"\nkey_template = "{officer}/{stem}"'),
     "archive.key_template:"),
    ("[station\n", "not valid TOML"),
])
def test_bad_config_names_the_key_and_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value)
    assert needle in str(e.value)


def test_check_config_cli_exit_codes(tmp_path: Path, station: Path) -> None:
    ok = dockgate("check-config", "-c", str(station))
    assert "ok" in ok.stdout
    bad = write(tmp_path, MINIMAL + "\nsurprise = 1\n")
    r = dockgate("check-config", "-c", str(bad), check=False)
    assert r.returncode == 1  # the check failed
    assert "surprise: unknown key" in r.stderr
    missing = dockgate("check-config", "-c", str(tmp_path / "nope.toml"), check=False)
    assert missing.returncode == 2 and "no such config file" in missing.stderr  # nothing to check


def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    s = tmp_path / "pw"
    s.write_text("000000\n")
    os.chmod(s, 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        read_secret(s)
    os.chmod(s, 0o600)
    assert read_secret(s) == "000000"
    with pytest.raises(SecretError, match="not found"):
        read_secret(tmp_path / "absent")
