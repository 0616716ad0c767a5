"""Archive backends: where evidence goes to live for years."""

from __future__ import annotations

from gateway.archive.base import (
    Archive,
    ArchiveConflict,
    ArchiveError,
    ArchiveObject,
    ArchiveRefused,
    ArchiveUnavailable,
    BadKey,
    Receipt,
    SourceFault,
    VerifyFailed,
)
from gateway.archive.wrappers import Limited, Retrying
from gateway.config import Config


def open_backend(cfg: Config) -> Archive:
    a = cfg.archive
    if a.backend == "directory":
        from gateway.archive.directory import DirectoryArchive

        return DirectoryArchive(a.path, verify=a.verify)
    from gateway.archive.s3 import open_s3

    return open_s3(a, cfg.paths.state_dir)


def wrap(backend: Archive, cfg: Config) -> Archive:
    """Retries and limits around a backend, as the daemon runs it."""
    f = cfg.forward
    return Retrying(Limited(backend, f.concurrency, f.bandwidth_bytes_per_s), attempts=f.attempts_per_try)


def open_archive(cfg: Config) -> Archive:
    """The configured backend with retries and limits around it."""
    return wrap(open_backend(cfg), cfg)


__all__ = ["Archive", "ArchiveConflict", "ArchiveError", "ArchiveObject", "ArchiveRefused", "ArchiveUnavailable",
           "BadKey", "Receipt", "SourceFault", "VerifyFailed", "open_archive", "open_backend", "wrap"]
