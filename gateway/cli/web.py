"""`dockgate web-user add|remove|list` and `dockgate web-pin set|remove`:
the accounts the review and the station screen's marking check."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from gateway.errors import DockgateError


def _secret(prompt: str, from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            from gateway.web.accounts import AccountError  # not at import: it hashes a dummy password

            raise AccountError("nothing on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} again: ") != first:
        raise DockgateError("the two entries differ; nothing was changed")
    return first


def cmd_web_user(args: argparse.Namespace) -> int:
    from gateway import default_config_path
    from gateway.config import load_config
    from gateway.web.accounts import add_user, supervisors

    cfg = load_config(args.config or default_config_path())
    if args.action == "list":
        for name, entry in sorted(supervisors(cfg).entries().items()):
            print(f"{name}\t{entry.get('role', 'supervisor')}")
        return 0
    if not args.name:
        raise DockgateError(f"web-user {args.action}: give the account NAME")
    if args.action == "remove":
        if not supervisors(cfg).remove(args.name):
            raise DockgateError(f"no account {args.name!r}")
        print(f"removed {args.name}")
        return 0
    path = add_user(cfg, args.name, _secret(f"password for {args.name}", args.password_stdin))
    print(f"account {args.name} written to {path}; it can log in now (no restart needed)")
    return 0


def cmd_web_pin(args: argparse.Namespace) -> int:
    from gateway import default_config_path
    from gateway.config import load_config
    from gateway.web.accounts import officer_pins, set_pin

    cfg = load_config(args.config or default_config_path())
    if args.action == "remove":
        if not officer_pins(cfg).remove(args.officer):
            raise DockgateError(f"no PIN for officer {args.officer!r}")
        print(f"removed the PIN of {args.officer}")
        return 0
    path = set_pin(cfg, args.officer, _secret(f"PIN for officer {args.officer}", args.pin_stdin))
    print(f"PIN of officer {args.officer} written to {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                 with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    sp = with_config(sub.add_parser("web-user", help="supervisor accounts for the review pages (gateway/web)"))
    sp.add_argument("action", choices=["add", "remove", "list"])
    sp.add_argument("name", nargs="?", help="account name")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sp.set_defaults(fn=cmd_web_user)
    sp = with_config(sub.add_parser("web-pin", help="an officer's PIN for marking clips on the station screen"))
    sp.add_argument("action", choices=["set", "remove"])
    sp.add_argument("officer", help="警号")
    sp.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    sp.set_defaults(fn=cmd_web_pin)
