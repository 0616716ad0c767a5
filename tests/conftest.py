from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.config import Config, load_config
from tests.helpers import DaemonProc
from tests.servers import MotoServer, moto


@pytest.fixture(scope="session", autouse=True)
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`status` and `events` keep what they read of a config in the user's cache folder (gateway/cli/digest.py):
    the tests' (and the `dockgate` processes they start) in one of their own, never the user's."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def s3server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def s3auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """An S3 API server that checks credentials (the station's are on it)."""
    with moto(tmp_path_factory.mktemp("moto-auth"), auth=True) as server:
        yield server


@pytest.fixture
def station(tmp_path: Path) -> Path:
    """A simulated station's config (the same file `dockgate sim station` writes)."""
    return write_station(tmp_path / "station", slots=4, reserve_bytes=0)


@pytest.fixture
def cfg(station: Path) -> Config:
    return load_config(station)


@pytest.fixture
def daemon(station: Path, tmp_path: Path) -> Iterator[DaemonProc]:
    d = DaemonProc(station, tmp_path / "daemon.log")
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.stop()
