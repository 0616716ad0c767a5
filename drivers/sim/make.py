"""`dockgate sim make`: create a simulated recorder with synthetic clips
(DCIM/<date>/<officer>_<start>_<seq>.MP4, the simulator's own naming; family A
as its source's script reads names: DCIM/<YYMMDD>/, time at characters 21-26)."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.sim.device import load_sim_device
from gateway.errors import DockgateError

_CHUNK = 1 << 20


def _toml_str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_recorder(folder: Path, *, clips: int, size: int, serial: str, officer: str,
                  unit: str = "", protocol: str = "ums", password: str = "000000",
                  clock_offset_s: float = 0.0, link_rate: int = 0, seed: int | None = None,
                  start: datetime | None = None) -> list[Path]:
    """Write device.toml and ``clips`` clips of ``size`` bytes; return their paths."""
    if folder.exists() and any(folder.iterdir()):
        raise DockgateError(f"{folder} exists and is not empty")
    if clips < 0 or size < 0:
        raise DockgateError("--clips and --size must not be negative")
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    lines = [f"serial = {_toml_str(serial)}", f"officer = {_toml_str(officer)}",
             f"unit = {_toml_str(unit)}", f"protocol = {_toml_str(protocol)}",
             f"password = {_toml_str(password)}", f"clock_offset_s = {float(clock_offset_s)}",
             f"link_rate = {int(link_rate)}"]
    (folder / "device.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_sim_device(folder)  # refuse now what the simulated firmware could not answer
    rng = random.Random(seed if seed is not None else f"{serial}/{officer}")
    # 1-15 minutes between clips; a recorder docks with every clip in its past
    # (the first a shift ago, earlier when there are too many for one shift)
    gaps = random.Random(f"{seed if seed is not None else f'{serial}/{officer}'}/gaps")
    steps = [gaps.randint(60, 900) for _ in range(clips)]
    now = datetime.now(UTC).replace(microsecond=0)
    t = start or min(now - timedelta(hours=8), now - timedelta(seconds=sum(steps) + 60))
    paths = []
    for i in range(clips):
        t += timedelta(seconds=steps[i])
        local = t + timedelta(hours=8, seconds=clock_offset_s)  # recorders run on local time
        if protocol == "amba-ctrl":
            # laid out for [A]'s rule: DCIM/<YYMMDD>/, the time of day at characters 21-26
            day = folder / "storage" / "DCIM" / local.strftime("%y%m%d")
            name = f"{(officer or 'X')[:8]:_<8}_0000_{local:%y%m%d%H%M%S}.MP4"
        else:  # the simulator's own naming; no profile parses it (no source gives one)
            day = folder / "storage" / "DCIM" / local.strftime("%Y%m%d")
            name = f"{officer or 'X'}_{local.strftime('%Y%m%d%H%M%S')}_{i + 1:04d}.MP4"
        day.mkdir(parents=True, exist_ok=True)
        p = day / name
        with open(p, "wb") as f:
            # synthetic payload, not a container: an MP4 header without an index
            # would read as a clip cut short (tests make real MP4s with ffmpeg)
            left = size
            while left > 0:
                n = min(left, _CHUNK)
                f.write(rng.randbytes(n))
                left -= n
        ts = t.timestamp()
        os.utime(p, (ts, ts))
        paths.append(p)
    return paths
