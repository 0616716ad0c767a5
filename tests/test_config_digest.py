"""`status` and `events` read a validated config, validated again only when
its files changed (gateway/cli/digest.py): the kept values are used only for
exactly the bytes validated, a typo still fails naming its key, and a user
with nowhere to keep them just validates every time."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gateway.cli.digest import Digest, cache_file, load_digest
from gateway.config import load_config
from gateway.errors import ConfigError
from tests.helpers import dockgate


def kept(station: Path) -> dict[str, object]:
    file = cache_file(station)
    assert file is not None
    return dict(json.loads(file.read_text()))


def test_the_digest_is_the_validated_config_s_and_is_kept_for_this_user_only(station: Path) -> None:
    cfg = load_config(station)
    d = load_digest(station)
    assert d == Digest.of(cfg)
    assert (d.catalog_path, d.run_dir, d.custody_dir) == (cfg.catalog_path, cfg.run_dir, cfg.custody_dir)
    file = cache_file(station)
    assert file is not None and file.exists()
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert load_digest(station) == d  # the kept one


def test_a_typo_added_later_still_fails_status_naming_the_key(station: Path) -> None:
    dockgate("status", "-c", str(station))  # validated and kept
    station.write_text(station.read_text().replace("[ingest]", "[ingest]\nreserve_byts = 1"))
    r = dockgate("status", "-c", str(station), check=False)
    assert r.returncode == 2 and "ingest.reserve_byts" in r.stderr, r.stderr
    r = dockgate("events", "-c", str(station), "--json", "--since", "0", check=False)
    assert r.returncode == 2 and "ingest.reserve_byts" in r.stderr, r.stderr


def test_a_new_drop_in_is_validated_before_it_is_read(station: Path) -> None:
    before = load_digest(station)
    folder = station.with_name(station.name + ".d")
    folder.mkdir(exist_ok=True)
    (folder / "50-site.toml").write_text('[station]\nid = "precinct-7"\n')
    assert load_digest(station).station_id == "precinct-7" != before.station_id
    (folder / "60-typo.toml").write_text("[station]\nidd = 'x'\n")
    with pytest.raises(ConfigError, match=r"station\.idd"):
        load_digest(station)
    (folder / "60-typo.toml").unlink()
    (folder / "40-early.toml").write_text('[station]\nid = "never-wins"\n')  # merged before 50-site: it loses
    assert load_digest(station).station_id == "precinct-7"


def test_a_relative_state_dir_is_resolved_where_the_config_really_is(station: Path, tmp_path: Path) -> None:
    text = station.read_text()
    station.write_text(text.replace(f'state_dir = "{station.parent / "state"}"', 'state_dir = "state"'))
    assert load_digest(station).state_dir == station.parent / "state"
    other = tmp_path / "elsewhere"
    other.mkdir()
    link = other / "dockgate.toml"
    link.symlink_to(station)
    assert load_digest(link).state_dir == station.parent / "state" == load_config(link).paths.state_dir
    # a config moved elsewhere with the same bytes: not the old answer
    (other / "dockgate.toml").unlink()
    (other / "dockgate.toml").write_bytes(station.read_bytes())
    assert load_digest(other / "dockgate.toml").state_dir == other / "state"


def test_a_cache_someone_else_could_write_or_a_broken_one_is_not_used(station: Path) -> None:
    load_digest(station)
    file = cache_file(station)
    assert file is not None
    forged = {**kept(station), "station_id": "forged"}
    file.write_text(json.dumps(forged))
    file.chmod(0o622)
    assert load_digest(station).station_id != "forged"  # not trusted: validated and kept again
    assert kept(station)["station_id"] != "forged" and stat.S_IMODE(file.stat().st_mode) == 0o600
    file.write_text("{not json")
    assert load_digest(station) == Digest.of(load_config(station))
    file.write_text(json.dumps({**kept(station), "version": "0.0.0-other", "station_id": "stale"}))
    assert load_digest(station).station_id != "stale"


def test_nowhere_to_keep_it_is_a_full_load_every_time_not_an_error(station: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "read-only-home"
    ro.mkdir(mode=0o500)
    monkeypatch.setenv("XDG_CACHE_HOME", str(ro / "cache"))
    if os.access(ro, os.W_OK):  # root writes anywhere: a file where the folder would be instead
        ro.chmod(0o700)
        (ro / "cache").write_text("")
    assert load_digest(station) == Digest.of(load_config(station))
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("HOME")
    assert cache_file(station) is None
    assert load_digest(station) == Digest.of(load_config(station))
