"""Archive backends: where evidence goes to live for years."""

from __future__ import annotations

from gateway.archive.base import Archive, ArchiveObject, Receipt
from gateway.archive.wrappers import Limited, Retrying, install_faults
from gateway.config import Config


def open_backend(cfg: Config) -> Archive:
    a = cfg.archive
    if a.backend == "directory":
        from gateway.archive.directory import DirectoryArchive

        return DirectoryArchive(a.path, verify=a.verify)
    from gateway.archive.s3 import open_s3

    return open_s3(a, cfg.paths.state_dir)


def open_archive(cfg: Config) -> Archive:
    """The configured backend with retries and limits around it."""
    backend = open_backend(cfg)
    install_faults(backend)
    f = cfg.forward
    return Retrying(Limited(backend, f.concurrency, f.bandwidth_bytes_per_s), attempts=f.attempts_per_try)


__all__ = ["Archive", "ArchiveObject", "Receipt", "open_archive", "open_backend"]
