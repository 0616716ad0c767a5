"""The `dockgate` command line: the parser, one family of commands per
module (station, verify, case, sim, host, web), and the exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import station
from gateway.cli.common import CannotRead, with_config
from gateway.errors import DockgateError

#: what scripts poll as new processes (issue 30): their command line is parsed by their own family's parsers
#: only (station's), without importing and building every other family's (most of the CLI's start)
POLLED = ("status", "events")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; for an *argv* naming a ``POLLED`` command, one that knows only its family."""
    p = argparse.ArgumentParser(prog="dockgate", description="The `dockgate` command line.")
    p.add_argument("--version", action="version", version=f"dockgate {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    station.add_parsers(sub)  # run, check-config, status, events, keygen, assign
    if argv and argv[0] in POLLED:
        return p
    from gateway.cli import case, host, profile, sim, verify, web

    verify.add_parsers(sub)  # verify, witness
    case.add_parsers(sub, with_config)  # case export|report, retention report, legal-hold
    host.add_parsers(sub)  # udev-rules, setup-systemd
    profile.add_parsers(sub)  # profile new
    sim.add_parsers(sub)  # demo, sim make|station|attach|detach
    web.add_commands(sub, with_config)  # web-user, web-pin (gateway/web)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.fn(args))
    except PermissionError as e:
        print(f"dockgate: error: {CannotRead(e.filename or e)}", file=sys.stderr)
        return 2
    except DockgateError as e:
        print(f"dockgate: error: {e}", file=sys.stderr)
        # 2: usage or environment (the station is not set up right: `run` stops
        # for good, systemd does not restart it); 1: the command's own check failed
        return 2 if e.reason in ("config", "secret", "profile", "usage", "permission", "catalog") else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
