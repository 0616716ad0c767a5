"""dockgate: the edge gateway for body-worn recorder docking stations."""

import os
from pathlib import Path

__version__ = "0.1.0"

#: where every command looks when not given -c (the Debian package's conffile); here, not in
#: gateway.config, so that the CLI's parser names it without importing the schema (pydantic)
DEFAULT_CONFIG = "/etc/dockgate/dockgate.toml"


def default_config_path() -> Path:
    """The config a command reads when not given -c: $DOCKGATE_CONFIG, else ``DEFAULT_CONFIG``."""
    return Path(os.environ.get("DOCKGATE_CONFIG") or DEFAULT_CONFIG)


def drop_in_dir(path: Path) -> Path:
    """``FILE.d/``: the drop-ins merged over *path*."""
    return path.with_name(path.name + ".d")
