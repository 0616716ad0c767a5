from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.config import Config, load_config
from tests.helpers import DaemonProc
from tests.servers import MotoServer, moto


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
