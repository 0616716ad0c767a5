"""One exception tree for dockgate.

Every error carries the data a person needs to act on it, and says whether it
is *permanent* (retrying cannot help: wrong password, hash mismatch, bad
config) or *transient* (a retry later may succeed: archive unreachable, disk
full, device busy). Retry wrappers look only at ``permanent``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def describe_validation(errors: Iterable[Mapping[str, Any]]) -> list[str]:
    """pydantic's errors as 'dotted.key: what is wrong', one per problem."""
    out = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ()) if not str(x).startswith("function-"))
        msg = "unknown key" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


class DockgateError(Exception):
    """Base of every error dockgate raises on purpose."""

    permanent: bool = True
    #: short machine-readable reason, used as a bounded metric/event label
    reason: str = "error"


class ConfigError(DockgateError):
    """The configuration file is missing, unreadable or invalid."""

    reason = "config"

    def __init__(self, file: Path | str, problems: list[str]) -> None:
        self.file = str(file)
        self.problems = problems
        super().__init__(f"{self.file}: " + "; ".join(problems))


class SecretError(DockgateError):
    """A secret file is missing, empty or readable by other users."""

    reason = "secret"

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"secret {self.path}: {problem}")


class AlreadyRunning(DockgateError):
    reason = "already_running"

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        super().__init__(f"another dockgate holds {lock_path}")


class CannotListen(DockgateError):
    """A server of the station (metrics, web) cannot take its configured
    address: another process holds the port, or the address is not this
    host's. Transient: the holder may go away; the station goes on pulling
    and tries again (``supervise.until_listening``)."""

    permanent = False
    reason = "listen"

    def __init__(self, key: str, listen: str, err: OSError) -> None:
        self.key = key
        self.listen = listen
        self.errno = err.errno
        # the bare reason: aiohttp's message repeats the address
        why = os.strerror(err.errno) if err.errno else str(err)
        super().__init__(f"{key} = {listen!r}: cannot listen there: {why.lower()}")


class ClipInterrupted(DockgateError):
    """The clip could not be read to the end (unplugged, vanished, changed,
    cancelled). Nothing was staged; the clip is pulled again on the next dock."""

    permanent = False
    reason = "interrupted"

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"{path}: {why}")


class StagingFull(DockgateError):
    """Staging has less free space than the configured reserve."""

    permanent = False
    reason = "disk_low"

    def __init__(self, path: Path, free: int, needed: int) -> None:
        self.path = path
        self.free = free
        self.needed = needed
        super().__init__(f"{path}: {free} bytes free, need {needed} (reserve included)")


class UnsafePath(DockgateError):
    """A name on a recorder volume that must not be followed or opened."""

    reason = "unsafe_path"

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"{path}: {why}")
