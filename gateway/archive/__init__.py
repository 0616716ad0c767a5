"""Archive backends: where evidence goes to live for years."""

from __future__ import annotations

from gateway.archive.base import Archive, ArchiveObject, Receipt
from gateway.config import Config


def open_archive(cfg: Config) -> Archive:
    a = cfg.archive
    if a.backend == "directory":
        from gateway.archive.directory import DirectoryArchive

        return DirectoryArchive(a.path, verify=a.verify)
    raise ValueError(f"unknown archive backend {a.backend!r}")  # config validation prevents this


__all__ = ["Archive", "ArchiveObject", "Receipt", "open_archive"]
