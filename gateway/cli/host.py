"""What the host needs from a station's config: ``udev-rules`` and
``setup-systemd`` (the rules and files themselves: ``install.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import config_of, with_config


def cmd_udev_rules(args: argparse.Namespace) -> int:
    from drivers.profiles import Registry
    from gateway.cli.install import udev_rules

    cfg = config_of(args) if args.config else None
    registry = Registry.load(cfg.recorders.profiles_dir if cfg else None)
    print(udev_rules(registry, cfg.detect.ports if cfg else None), end="")
    return 0


def cmd_setup_systemd(args: argparse.Namespace) -> int:
    from gateway.cli.install import systemd_setup

    for path in systemd_setup(config_of(args), Path(args.root)):
        print(f"wrote {path}")
    print("now: systemctl daemon-reload && systemctl restart dockgate")
    return 0


def add_parsers(sub: Any) -> None:
    """``udev-rules`` and ``setup-systemd``."""
    sp = sub.add_parser("udev-rules", help="print udev rules for every recorder the firmware profiles know")
    sp.add_argument("-c", "--config", help="also the profiles in this config's recorders.profiles_dir, and "
                                           "any storage on the dock ports of its detect.ports")
    sp.set_defaults(fn=cmd_udev_rules)

    sp = with_config(sub.add_parser("setup-systemd", help="write the unit's drop-in (writable archive and "
                                                          "staging paths) and the recorder mount mode"))
    sp.add_argument("--root", default="/", help=argparse.SUPPRESS)
    sp.set_defaults(fn=cmd_setup_systemd)
