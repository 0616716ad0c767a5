"""Who may use the pages: supervisor accounts and officers' PINs, each a
small JSON file of Argon2id hashes (argon2-cffi), and the lock-out that
rate-limits guesses at either.

Neither file ever holds a password or PIN, only its hash; both are written
durably (temp, fsync, rename) with mode 0600, so a half-written file never
locks everyone out. ``dockgate web-user add NAME`` and ``dockgate web-pin set
OFFICER`` write them; the daemon re-reads a file when it changes on disk, so
a new account works without a restart."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.config import Config
from gateway.durable import write_atomic
from gateway.errors import DockgateError

_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
#: new PINs: 6 to 12 digits (docs/web.md: with the lock-out, a sweep of 10^6 takes years);
#: older 4-digit PINs still verify until they are set again
_PIN = re.compile(r"^\d{6,12}$")
#: OWASP's Argon2id floor (19 MiB, 2 passes, 1 lane), not argon2-cffi's default 64 MiB: every login
#: check allocates this much, inside the daemon's memory budget (hashes made with other parameters
#: still verify: they are in the hash)
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
#: checked against when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY = _hasher.hash("not a password")


class AccountError(DockgateError):
    """An account or PIN cannot be written as asked (bad name, short password)."""

    reason = "usage"


def _resolve(cfg: Config, p: Path | None, default: str) -> Path:
    if p is None:
        return cfg.paths.state_dir / "web" / default
    p = p.expanduser()
    return p if p.is_absolute() else cfg.source.resolve().parent / p


def accounts_path(cfg: Config) -> Path:
    return _resolve(cfg, cfg.web.accounts_file, "accounts.json")


def pins_path(cfg: Config) -> Path:
    return _resolve(cfg, cfg.web.officer_pins_file, "officer-pins.json")


class HashFile:
    """name -> Argon2id hash, re-read when the file changes."""

    def __init__(self, path: Path, section: str) -> None:
        self.path = path
        self.section = section
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, dict[str, Any]] = {}

    def entries(self) -> dict[str, dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._entries = None, {}
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self._entries = dict(doc.get(self.section, {}))
            self._stamp = stamp
        return self._entries

    def check(self, name: str, secret: str) -> bool:
        """True if *secret* is *name*'s; the same work whether or not *name* exists."""
        entry = self.entries().get(name)
        try:
            return bool(_hasher.verify(entry["hash"] if entry else _DUMMY, secret)) and entry is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def set(self, name: str, secret: str, **extra: Any) -> None:
        doc: dict[str, Any] = {self.section: dict(self.entries())}
        doc[self.section][name] = {"hash": _hasher.hash(secret), "set_at": time.time(), **extra}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(doc, ensure_ascii=False, indent=1).encode(), mode=0o600)

    def remove(self, name: str) -> bool:
        entries = dict(self.entries())
        if entries.pop(name, None) is None:
            return False
        write_atomic(self.path, json.dumps({self.section: entries}, ensure_ascii=False, indent=1).encode(),
                     mode=0o600)
        return True


def supervisors(cfg: Config) -> HashFile:
    return HashFile(accounts_path(cfg), "users")


def officer_pins(cfg: Config) -> HashFile:
    return HashFile(pins_path(cfg), "officers")


def add_user(cfg: Config, name: str, password: str, role: str = "supervisor") -> Path:
    if not _NAME.match(name):
        raise AccountError(f"account name {name!r}: 1-64 of A-Z a-z 0-9 . _ @ -")
    if len(password) < 10:
        raise AccountError("the password must be at least 10 characters")
    f = supervisors(cfg)
    f.set(name, password, role=role)
    return f.path


def set_pin(cfg: Config, officer: str, pin: str) -> Path:
    if not officer.strip() or len(officer) > 64 or not officer.isprintable():
        raise AccountError("the officer number must be 1-64 printable characters")
    if not _PIN.match(pin):
        raise AccountError("a PIN is 6-12 digits")
    f = officer_pins(cfg)
    f.set(officer, pin)
    return f.path


@dataclass
class Attempt:
    """One guess at a secret, counted before it is checked (``Lockout.begin``)."""

    keys: tuple[str, ...]
    at: float


@dataclass
class Lockout:
    """At most *attempts* guesses that were not right per key (an account, a
    PIN's officer, a client address) in *window_s*; then the key is locked
    for *lockout_s*, doubled for each further lock-out of it within a day,
    and even the right secret is refused until it ends.

    A guess is counted before it is checked, and at most one check is in
    flight per key: a hundred guesses sent at once are checked one after
    another and stop at the limit, never all checked side by side while the
    count lags behind (``begin``, then ``end``)."""

    attempts: int
    lockout_s: float
    window_s: float = 900.0
    _fails: dict[str, list[float]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)
    #: lock-outs of each key in the last day: each one lasts twice the one before
    _lockouts: dict[str, list[float]] = field(default_factory=dict)
    _inflight: set[str] = field(default_factory=set)

    def locked(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        until = self._locked.get(key)
        if until is None:
            return False
        if now >= until:
            del self._locked[key]
            self._fails.pop(key, None)
            return False
        return True

    def begin(self, keys: tuple[str, ...], now: float | None = None) -> Attempt | None:
        """Reserve one guess on every key, or None (refused unchecked): a key
        is locked, already has a check in flight, or has no guess left."""
        now = time.monotonic() if now is None else now
        if any(self.locked(k, now) or k in self._inflight for k in keys):
            return None
        for k in keys:
            recent = [t for t in self._fails.get(k, []) if now - t < self.window_s]
            if len(recent) >= self.attempts:
                self._lock(k, now)
                return None
            self._fails[k] = [*recent, now]
        self._inflight.update(keys)
        return Attempt(keys, now)

    def end(self, attempt: Attempt, right: bool, now: float | None = None) -> bool:
        """The check is done. Right: the reserved guess is taken back and the
        keys' failures forgotten. Wrong: it stays counted; True if that
        locked a key."""
        now = time.monotonic() if now is None else now
        self._inflight.difference_update(attempt.keys)
        if right:
            for k in attempt.keys:
                self._fails.pop(k, None)
            return False
        locked = False
        for k in attempt.keys:
            if len([t for t in self._fails.get(k, []) if now - t < self.window_s]) >= self.attempts:
                self._lock(k, now)
                locked = True
        return locked

    def _lock(self, key: str, now: float) -> None:
        if key in self._locked:
            return
        day = [t for t in self._lockouts.get(key, []) if now - t < 86400] + [now]
        self._lockouts[key] = day
        self._locked[key] = now + self.lockout_s * 2 ** min(len(day) - 1, 16)

    def lock_s(self, key: str, now: float | None = None) -> float:
        """Seconds left on *key*'s lock-out (0: not locked)."""
        now = time.monotonic() if now is None else now
        return max(0.0, self._locked.get(key, now) - now) if self.locked(key, now) else 0.0
