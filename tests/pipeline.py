"""Building blocks for unit tests of the pipeline stages: a catalog with
clips in a given state, staged bytes and manifests on disk, and an archive
whose faults a test scripts (test code only, never in the product)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from drivers.base import ClipRef, DockedDevice, UsbIds
from gateway.archive import Archive, ArchiveObject, Receipt
from gateway.archive.directory import DirectoryArchive
from gateway.catalog import Catalog, event
from gateway.config import Config
from gateway.pipeline.staging import Staging


@dataclass
class Station:
    cfg: Config
    catalog: Catalog
    staging: Staging
    archive_root: Path

    def staged(self, data: bytes | None = None, name: bytes | None = None, officer: str = "012345",
               mtime_ns: int = 1) -> str:
        """A clip pulled and staged, as a dock session leaves it; its file
        written at *mtime_ns* (1970 unless a test needs a plausible time)."""
        data = os.urandom(4096) if data is None else data
        sha = hashlib.sha256(data).hexdigest()
        dock = self.catalog.open_dock(DockedDevice(1, UsbIds(0x1209, 1, "SN1"), None, "sim"), "generic-ums")
        ref = ClipRef(name or f"DCIM/{sha[:8]}.MP4".encode(), len(data), mtime_ns)
        (item,), _ = self.catalog.discover(dock, "SN1", officer, [ref])
        self.catalog.begin_pull(item.id)
        temp = self.staging.temp_path(item.id)
        temp.write_bytes(data)
        final = self.staging.commit(temp, sha)
        self.catalog.finish_pull(item.id, sha, len(data), self.staging.relative(final),
                                 pulled=event("pulled", 1, sha256=sha), seen_again=event("seen_again", 1))
        return sha

    def stamped(self, data: bytes | None = None) -> str:
        """A clip staged and stamped (a stand-in manifest; forwarding does not read it)."""
        sha = self.staged(data)
        manifest = self.staging.root / "manifests" / f"{sha}.manifest.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_bytes(b'{"sha256": "%s"}' % sha.encode())
        manifest.with_name(manifest.name + ".sig").write_bytes(b"s" * 64)
        self.catalog.stamped(sha, f"012345/2026-11-27/SN1/{sha[:8]}.MP4", self.staging.relative(manifest),
                             "ff" * 32, False, 1.0, None, event("stamped", sha256=sha))
        return sha

    def state(self, sha: str) -> str:
        clip = self.catalog.clip(sha)
        assert clip is not None
        return clip.state

    def event_types(self) -> list[str]:
        return [e.type for e in self.catalog.events()]


def make_station(tmp_path: Path, cfg: Config) -> Station:
    staging = Staging(tmp_path / "staging", 0)
    staging.prepare()
    root = tmp_path / "archive"
    root.mkdir(exist_ok=True)
    return Station(cfg, Catalog(tmp_path / "catalog.sqlite"), staging, root)


class Scripted(Archive):
    """A real directory archive with faults scripted by the test: each put
    first asks ``fault(obj_or_key)``; an exception it returns is raised."""

    name = "scripted"

    def __init__(self, root: Path) -> None:
        self.inner = DirectoryArchive(root)
        self.fault: Callable[[str], BaseException | None] = lambda key: None
        self.puts: list[str] = []

    def _check(self, key: str) -> None:
        self.puts.append(key)
        err = self.fault(key)
        if err is not None:
            raise err

    def put(self, obj: ArchiveObject) -> Receipt:
        self._check(obj.key)
        return self.inner.put(obj)

    def put_bytes(self, key: str, data: bytes) -> Receipt:
        self._check(key)
        return self.inner.put_bytes(key, data)

    def sha256(self, key: str) -> str | None:
        return self.inner.sha256(key)

    def read(self, key: str) -> BinaryIO:
        return self.inner.read(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self.inner.keys(prefix)
