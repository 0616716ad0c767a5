"""dockgate: the edge gateway for body-worn recorder docking stations."""

__version__ = "0.1.0"

#: where every command looks when not given -c (the Debian package's conffile); here, not in
#: gateway.config, so that the CLI's parser names it without importing the schema (pydantic)
DEFAULT_CONFIG = "/etc/dockgate/dockgate.toml"
