"""Secrets come from files (systemd LoadCredential= friendly), never from the
config itself, and a file other users can read is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.errors import SecretError


def readable_by_others(path: Path, st: os.stat_result) -> bool:
    """Whether *path*'s mode lets anyone but its owner at it. A credential systemd hands the
    service (a file in ``$CREDENTIALS_DIRECTORY``) may be read-only to the group as well:
    systemd 257 (Debian 13) makes them 0440, 252 (Debian 12) 0400, in a folder that
    belongs to the service alone."""
    mode = st.st_mode
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and path.parent == Path(creds) and not mode & (stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO):
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def read_secret(path: Path) -> str:
    """The secret in *path* (already resolved by the config: systemd
    credentials first, then beside the config file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SecretError(path, "file not found") from None
    except OSError as e:
        raise SecretError(path, f"cannot stat: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(path, "not a regular file")
    if readable_by_others(path, st):
        raise SecretError(path, f"mode {stat.S_IMODE(st.st_mode):04o} lets other users read it; "
                                f"chmod 600 it")
    try:
        value = path.read_text(encoding="utf-8").strip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise SecretError(path, f"cannot read: {e}") from None
    if not value:
        raise SecretError(path, "empty")
    return value
