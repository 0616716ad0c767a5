"""Simulated recorders and the demo: ``sim make``, ``sim station``,
``sim attach``, ``sim detach`` and ``demo``."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers import PROTOCOLS
from gateway.cli.common import config_of, parse_size, with_config
from gateway.errors import DockgateError

if TYPE_CHECKING:
    from gateway.config import Config


def cmd_sim_make(args: argparse.Namespace) -> int:
    from drivers.sim.make import make_recorder

    paths = make_recorder(Path(args.dir), clips=args.clips, size=args.size, serial=args.serial,
                          officer=args.officer, unit=args.unit, protocol=args.protocol,
                          password=args.password, clock_offset_s=args.clock_offset,
                          link_rate=args.link_rate, seed=args.seed)
    print(f"{args.dir}: recorder {args.serial} (officer {args.officer}, {args.protocol}) "
          f"with {len(paths)} clips of {args.size} bytes")
    return 0


def cmd_sim_station(args: argparse.Namespace) -> int:
    from gateway.cli.simstation import write_station

    if args.mqtt and not re.match(r"^[^:]+:\d{1,5}$", args.mqtt):
        raise DockgateError(f"--mqtt wants HOST:PORT, got {args.mqtt!r}")
    cfg = write_station(Path(args.workdir), station_id=args.id, slots=args.slots, mqtt=args.mqtt)
    print(f"wrote {cfg}\nstart it:  dockgate run -c {cfg}\n"
          f"dock one:  dockgate sim attach RECORDER_DIR -c {cfg} --slot 1")
    return 0


def _sim_dir(cfg: Config, slot: int) -> Path:
    if cfg.detect.backend != "sim" or cfg.detect.sim_dir is None:
        raise DockgateError(f"{cfg.source}: detect.backend is not \"sim\"")
    if not 1 <= slot <= cfg.detect.slots:
        raise DockgateError(f"--slot must be 1..{cfg.detect.slots}")
    return cfg.detect.sim_dir


def cmd_sim_attach(args: argparse.Namespace) -> int:
    from drivers.sim.device import load_sim_device
    from drivers.sim.dock import DockError, attach, slot_file

    cfg = config_of(args)
    # several recorders take consecutive slots in one call: a rack docked at
    # one instant (a Python start per recorder spreads 25 docks over seconds).
    # Every recorder and slot is checked before any is docked.
    slots = range(args.slot, args.slot + len(args.dir))
    sim_dir = _sim_dir(cfg, slots[0])
    if slots[-1] > cfg.detect.slots:
        raise DockgateError(f"{len(slots)} recorders from --slot {args.slot} need slots up to {slots[-1]}; "
                            f"the station has {cfg.detect.slots}")
    devs = [load_sim_device(Path(d)) for d in args.dir]
    taken = [str(n) for n in slots if slot_file(sim_dir, n).exists()]
    if taken:
        raise DockError(f"slot {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} occupied; detach first")
    for n, dev in zip(slots, devs, strict=True):
        attach(sim_dir, n, dev.folder)
        print(f"docked {dev.serial} in slot {n}")
    return 0


def cmd_sim_detach(args: argparse.Namespace) -> int:
    from drivers.sim.dock import detach

    cfg = config_of(args)
    detach(_sim_dir(cfg, args.slot), args.slot)
    print(f"undocked slot {args.slot}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli.demo import run_demo

    workdir = Path(args.workdir or time.strftime("dockgate-demo-%Y%m%d-%H%M%S"))
    return run_demo(workdir, recorders=args.recorders, clips=args.clips, size=args.size)


def add_parsers(sub: Any) -> None:
    """``demo`` and ``sim make|station|attach|detach``."""
    sp = sub.add_parser("demo", help="run a whole simulated station and verify its archive")
    sp.add_argument("--workdir", help="where to put it (default: ./dockgate-demo-<time>)")
    sp.add_argument("--recorders", type=int, default=3)
    sp.add_argument("--clips", type=int, default=4)
    sp.add_argument("--size", type=parse_size, default=parse_size("4M"))
    sp.set_defaults(fn=cmd_demo)

    sim = sub.add_parser("sim", help="simulated recorders and docking").add_subparsers(
        dest="sim_cmd", required=True, metavar="SIMCOMMAND")
    sp = sim.add_parser("make", help="create a simulated recorder with synthetic clips")
    sp.add_argument("dir")
    sp.add_argument("--clips", type=int, default=5)
    sp.add_argument("--size", type=parse_size, default=parse_size("4M"))
    sp.add_argument("--serial", default="SIM0001",
                    help="7 characters at most where the officer record holds it (zfy-ctrl, e12-tcp, dv16-scsi)")
    sp.add_argument("--officer", default="012345")
    sp.add_argument("--unit", default="")
    sp.add_argument("--protocol", default="ums", choices=PROTOCOLS,
                    help="the recorder's protocol family (docs/profiles.md)")
    sp.add_argument("--password", default="000000")
    sp.add_argument("--clock-offset", type=float, default=0.0, help="recorder clock - true time, s")
    sp.add_argument("--link-rate", type=parse_size, default=0, help="simulated USB speed, bytes/s")
    sp.add_argument("--seed", type=int)
    sp.set_defaults(fn=cmd_sim_make)

    sp = sim.add_parser("station", help="write a ready config for a simulated station")
    sp.add_argument("workdir")
    sp.add_argument("--mqtt", metavar="HOST:PORT")
    sp.add_argument("--slots", type=int, default=8)
    sp.add_argument("--id", default="sim-station-01")
    sp.set_defaults(fn=cmd_sim_station)

    sp = with_config(sim.add_parser("attach", help="dock simulated recorders (several: consecutive slots)"))
    sp.add_argument("dir", nargs="+")
    sp.add_argument("--slot", type=int, required=True, help="the (first) slot")
    sp.set_defaults(fn=cmd_sim_attach)

    sp = with_config(sim.add_parser("detach", help="undock a simulated recorder"))
    sp.add_argument("--slot", type=int, required=True)
    sp.set_defaults(fn=cmd_sim_detach)
