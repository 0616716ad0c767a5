"""The simulated dock: which recorder folder sits in which slot.

State lives in files under ``detect.sim_dir`` (``slot-N.json``), like a real
dock whose slots stay occupied whether or not the daemon runs: a daemon that
starts with recorders docked serves them, as after a reboot.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.durable import fsync_dir, write_atomic
from gateway.errors import DockgateError


class DockError(DockgateError):
    reason = "dock"


def slot_file(sim_dir: Path, slot: int) -> Path:
    return sim_dir / f"slot-{slot}.json"


def attach(sim_dir: Path, slot: int, recorder: Path) -> None:
    f = slot_file(sim_dir, slot)
    if f.exists():
        raise DockError(f"slot {slot} is occupied; detach it first")
    sim_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(f, json.dumps({"recorder": str(recorder.resolve())}).encode())


def detach(sim_dir: Path, slot: int) -> None:
    f = slot_file(sim_dir, slot)
    try:
        f.unlink()
    except FileNotFoundError:
        raise DockError(f"slot {slot} is empty") from None
    fsync_dir(sim_dir)


def read_slots(sim_dir: Path, slots: int) -> dict[int, tuple[Path | None, str]]:
    """slot -> (recorder folder or None when the slot file is garbage, raw text)."""
    out: dict[int, tuple[Path | None, str]] = {}
    for n in range(1, slots + 1):
        try:
            text = slot_file(sim_dir, n).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, UnicodeDecodeError):
            out[n] = (None, "")
            continue
        try:
            rec = json.loads(text)["recorder"]
            out[n] = (Path(rec), text) if isinstance(rec, str) else (None, text)
        except (ValueError, KeyError, TypeError):
            out[n] = (None, text)
    return out
