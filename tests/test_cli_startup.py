"""The command line starts cheaply (issue 30): building the parser imports
no command's machinery, and the read-only commands a script polls
(`status`, `events`) load the config's schema and the catalog, nothing
that signs, verifies or talks to recorders. Asserted on the modules a
fresh process has loaded, not on times (a shared machine's times are noise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.catalog import Catalog
from gateway.config import load_config

#: what costs the CLI's start most (python -X importtime): the config's and the profiles' schema
#: (pydantic), signing and verifying (cryptography), the catalog (sqlite3), the web (aiohttp)
HEAVY = ("pydantic", "cryptography", "sqlite3", "aiohttp", "drivers.profiles", "gateway.config", "gateway.catalog")

#: what `status` and `events` never need: keys, recorders, the web
NOT_FOR_READING = ("cryptography", "aiohttp", "drivers.profiles", "drivers.base", "gateway.evidence.signing")


def loaded_by(*argv: str) -> set[str]:
    """The modules a new `dockgate ARGV` process has loaded when it ends."""
    code = ("import json, sys\nfrom gateway.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint('\\nMODULES ' + json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.rpartition("\nMODULES ")[2]))


def heavy(mods: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in mods if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["events", "--help"], ["sim", "make", "--help"],
                                  ["profile", "new", "--help"]], ids=" ".join)
def test_help_builds_the_parser_without_any_command_s_machinery(argv: list[str]) -> None:
    assert heavy(loaded_by(*argv), HEAVY) == []


@pytest.mark.parametrize("argv", [["status", "--json"], ["events", "--json", "--since", "0"]], ids=" ".join)
def test_status_and_events_read_the_catalog_without_keys_recorders_or_web(station: Path, argv: list[str]) -> None:
    Catalog(load_config(station).catalog_path).close()  # a catalog to read, as after a first start
    mods = loaded_by(*argv, "-c", str(station))
    assert "gateway.catalog.reports" in mods  # it did read the catalog
    assert heavy(mods, NOT_FOR_READING) == []


#: what they do not need once the config was validated and is unchanged (gateway/cli/digest.py): its schema
NOT_AGAIN = (*NOT_FOR_READING, "pydantic", "gateway.config", "gateway.values", "gateway.evidence")
#: ... but for the reader of whose custody log the state folder holds (json and os alone)
CUSTODY_OWNER = {"gateway.evidence", "gateway.evidence.newest"}


@pytest.mark.parametrize("argv", [["status", "--json"], ["events", "--json", "--since", "0"]], ids=" ".join)
def test_status_and_events_on_an_unchanged_config_do_not_validate_it_again(station: Path, argv: list[str]) -> None:
    Catalog(load_config(station).catalog_path).close()
    first = loaded_by(*argv, "-c", str(station))
    assert "gateway.config" in first  # validated, then kept
    mods = loaded_by(*argv, "-c", str(station))
    assert "gateway.catalog.reports" in mods
    assert heavy(mods - CUSTODY_OWNER, NOT_AGAIN) == []
