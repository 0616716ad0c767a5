"""Runtime files under ``state_dir/run``: the single-instance lock and the
live status snapshot that `dockgate status` reads."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from gateway.errors import AlreadyRunning


class InstanceLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "dockgate.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.path) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def daemon_running(run_dir: Path) -> bool:
    path = run_dir / "dockgate.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_status(run_dir: Path, snapshot: dict[str, Any]) -> None:
    # runtime only: atomic rename, no fsync (a lost snapshot is rewritten in 0.5 s)
    final = run_dir / "status.json"
    tmp = run_dir / ".status.json.tmp"
    tmp.write_text(json.dumps(snapshot, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, final)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        data = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    return None


#: `dockgate case export` asks a running daemon to seal its open custody segment (and forward it) now
SEAL_REQUEST = "seal-custody.request"


def request_seal(run_dir: Path) -> bool:
    """Ask the daemon to seal custody now; False when the request cannot be
    written (another user's run directory)."""
    try:
        (run_dir / SEAL_REQUEST).write_text(f"{os.getpid()}\n", encoding="utf-8")
    except OSError:
        return False
    return True


def take_seal_request(run_dir: Path) -> bool:
    """The daemon's side: True once per request."""
    try:
        (run_dir / SEAL_REQUEST).unlink()
    except OSError:  # none asked (or the run directory is not ours to change)
        return False
    return True
