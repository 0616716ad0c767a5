"""What `status` and `events` need of the config, without validating it
again when nothing changed (issue 30).

Why: a script polls `dockgate status --json` and `events --since N` as new
processes; validating the config (pydantic, ~150 ms to import, and the
schema's models ~80 ms more) was most of their time, yet they read five
values of it. So the config stays validated, once: when a full
``load_config`` succeeds, the few resolved values these commands read
(station id, placeholder flag, state folder) are kept in a per-user cache
file together with a fingerprint of exactly the bytes that were validated:
SHA-256 over the main file's path and content, the drop-in folder's listing
and every drop-in's path and content in the order they merge. A later run
whose fingerprint matches uses those values without importing pydantic;
anything else (a changed or added file, a cache that cannot be read or is
not this user's, another version of dockgate) does the full load, which
raises ConfigError naming the key as before, and refreshes the cache.

What the values resolve to may depend on more than those bytes: a relative
``state_dir`` is resolved against the config's real folder (symlinks
followed) and ``~`` against $HOME. Both are in the fingerprint (the
config's absolute and real path, $HOME), so a different resolution is a
miss, never a stale answer. The file is read once for the fingerprint
before the load and once after: if they differ (edited meanwhile) nothing
is kept.

Where: ``$XDG_CACHE_HOME/dockgate/`` (else ``~/.cache/dockgate/``), mode
0700, one file (0600) per config, named by the hash of its absolute path.
It is per user because the people who run `status` are members of the
dockgate group, not root, and must not write into the station's folders;
no writable place (no home, a read-only one: the service's ProtectHome) is
simply no cache: the full load, no error. The daemon never uses this.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway import __version__, drop_in_dir

if TYPE_CHECKING:
    from gateway.config import Config

#: bump when what is kept changes meaning
FORMAT = 1


@dataclass(frozen=True)
class Digest:
    """The config as `status` and `events` read it."""

    station_id: str
    #: station.id is still the shipped placeholder (gateway.config.PLACEHOLDER_STATION_IDS)
    placeholder_id: bool
    state_dir: Path
    #: the config file as the command named it
    source: Path

    @property
    def catalog_path(self) -> Path:  # as Config.catalog_path
        return self.state_dir / "catalog.sqlite"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def custody_dir(self) -> Path:
        return self.state_dir / "custody"

    @property
    def drop_in_dir(self) -> Path:
        return drop_in_dir(self.source)

    @classmethod
    def of(cls, cfg: Config) -> Digest:
        return cls(cfg.station.id, cfg.placeholder_id, cfg.paths.state_dir, cfg.source)


def fingerprint(path: Path) -> str | None:
    """SHA-256 of what ``load_config(path)`` reads and resolves against
    (None: something cannot be read; the full load says what)."""
    h = hashlib.sha256()

    def part(b: bytes) -> None:
        h.update(len(b).to_bytes(8, "big") + b)

    try:
        part(f"{FORMAT} {__version__}".encode())
        part(os.fsencode(os.path.abspath(path)))
        part(os.fsencode(os.path.realpath(path)))
        part(os.fsencode(os.environ.get("HOME", "")))
        part(path.read_bytes())
        folder = drop_in_dir(path)
        try:
            names = sorted(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            names = []
        part("\0".join(names).encode("utf-8", "surrogateescape"))
        # the drop-ins load_config merges, in its order (sorted by name, *.toml, no dot files)
        for name in names:
            if name.endswith(".toml") and not name.startswith(".") and len(name) > len(".toml"):
                p = folder / name
                part(os.fsencode(p))
                part(p.read_bytes())
    except (OSError, ValueError):
        return None
    return h.hexdigest()


def cache_file(path: Path) -> Path | None:
    """This user's cache file for the config *path* (None: no place for one)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        home = os.environ.get("HOME")
        if not home or not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    name = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:32]
    return Path(base) / "dockgate" / f"config-{name}.json"


def _read(file: Path, fp: str, source: Path) -> Digest | None:
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None  # not this user's own: not trusted
        with os.fdopen(fd, "rb", closefd=False) as f:
            kept = json.loads(f.read(65536))
        if kept.get("format") != FORMAT or kept.get("version") != __version__ or kept.get("fingerprint") != fp:
            return None
        return Digest(str(kept["station_id"]), bool(kept["placeholder_id"]), Path(kept["state_dir"]), source)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    finally:
        os.close(fd)


def _write(file: Path, fp: str, d: Digest) -> None:
    """Keep *d* for *fp*; any failure is no cache, never an error."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}")
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps({"format": FORMAT, "version": __version__, "fingerprint": fp, "station_id": d.station_id,
                           "placeholder_id": d.placeholder_id, "state_dir": str(d.state_dir)}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, file)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def load_digest(path: Path | str) -> Digest:
    """The values `status`/`events` read: from the cache when the config's
    bytes are the ones validated before, else from a full ``load_config``
    (its ConfigError as ever), then kept."""
    path = Path(path)
    fp = fingerprint(path)
    file = cache_file(path)
    if fp is not None and file is not None and (hit := _read(file, fp, path)) is not None:
        return hit
    from gateway.config import load_config

    d = Digest.of(load_config(path))
    if fp is not None and file is not None and fingerprint(path) == fp:
        _write(file, fp, d)
    return d
