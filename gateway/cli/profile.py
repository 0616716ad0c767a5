"""`dockgate profile new`: a site firmware profile's skeleton for a real
device, from what the station saw of it (``--slot N``: the newest
``foreign_device``/``unrecognised_device`` event of that slot, and the
device's sysfs if it is still docked there) or from ``lsusb -v`` output
(``--from-lsusb FILE``).

The skeleton claims the device by VID:PID and its OWN manufacturer and
product strings (exact, anchored) and, for a disk, its SCSI INQUIRY text
(``[match] inquiry``; a ``dv16-scsi`` profile's probe key too), takes every other setting from the
family's shipped profile (``--protocol``) or from a profile the site already
has (``--like``), and the command interface and endpoints from the device's
descriptors where they are known. It is checked before it is written: it
loads as a profile, overlaps no profile the station has, and claims the
device; so ``dockgate check-config`` accepts it. What it cannot know (the
probe's IDCode, the storage side's ids, clip names) is left to the admin,
with pointers to docs/profiles.md.

Why one module of this size: the two sources (lsusb text, the station's event
plus sysfs) meet in one ``Device``, and the skeleton and its check are
written against that alone; split, each half would need the other's types.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers import PROTOCOLS
from drivers.ids import UsbIds
from gateway.cli.common import UsageError, with_config

if TYPE_CHECKING:  # the schemas (pydantic) load when a command runs, not to build the parser
    from drivers.profiles import Profile, Registry
    from gateway.config import Config

#: the events that describe a device no profile served, newest first
FOREIGN_EVENTS = {"foreign_device", "unrecognised_device"}
#: keys written as hexadecimal (as lsusb and the shipped profiles show them)
HEX_KEYS = {"vid", "pid", "ep_out", "ep_in", "request_type_out", "request_type_in", "request",
            "storage_request", "value", "in_value", "index"}
VENDOR_CLASS, STORAGE_CLASS = 0xFF, 0x08


@dataclass
class Interface:
    number: int
    cls: int
    subclass: int = 0
    protocol: int = 0
    #: (address, transfer type: "bulk", "interrupt", "isochronous")
    endpoints: list[tuple[int, str]] = field(default_factory=list)

    def triple(self) -> str:
        return f"{self.cls:02x}/{self.subclass:02x}/{self.protocol:02x}"

    def bulk(self) -> tuple[int | None, int | None]:
        """Its first bulk OUT and bulk IN endpoint addresses."""
        outs = [a for a, t in self.endpoints if t == "bulk" and not a & 0x80]
        ins = [a for a, t in self.endpoints if t == "bulk" and a & 0x80]
        return (outs[0] if outs else None), (ins[0] if ins else None)


@dataclass
class Device:
    """What the skeleton is made from: the device's ids, its own strings,
    and its interfaces (with endpoints where the source shows them)."""

    vid: int
    pid: int
    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None
    interfaces: list[Interface] = field(default_factory=list)
    #: a disk's SCSI INQUIRY vendor and product (what a ``dv16-scsi`` profile matches on)
    scsi_vendor: str | None = None
    scsi_model: str | None = None
    #: where the facts came from (the skeleton's header says so)
    source: str = ""

    @property
    def ids(self) -> UsbIds:
        return UsbIds(self.vid, self.pid, self.serial, self.product, self.manufacturer, self.scsi_vendor,
                      self.scsi_model)

    def command_interface(self) -> Interface | None:
        """The vendor-class interface a bulk or control family talks to."""
        vendor = [i for i in self.interfaces if i.cls == VENDOR_CLASS]
        with_bulk = [i for i in vendor if all(a is not None for a in i.bulk())]
        return (with_bulk or vendor)[0] if vendor else None

    def storage_only(self) -> bool:
        return bool(self.interfaces) and all(i.cls == STORAGE_CLASS for i in self.interfaces)


# ---- lsusb -v ------------------------------------------------------------------------------------

_HEAD = re.compile(r"^Bus \d+ Device \d+: ID ([0-9a-fA-F]{4}):([0-9a-fA-F]{4})")
_FIELD = re.compile(r"^\s+(\w+)\s+(\S+)(?:\s(.*))?$")


def parse_lsusb(text: str) -> list[Device]:
    """Every device of ``lsusb -v`` output (first configuration, alternate
    setting 0 of each interface). The string descriptors are what lsusb
    printed after their index, exactly: what the device sent."""
    devices: list[Device] = []
    dev: Device | None = None
    intf: Interface | None = None
    configs = 0
    for line in text.splitlines():
        if m := _HEAD.match(line):
            dev = Device(int(m.group(1), 16), int(m.group(2), 16))
            devices.append(dev)
            intf, configs = None, 0
            continue
        m = _FIELD.match(line)
        if dev is None or m is None:
            continue
        key, first, rest = m.group(1), m.group(2), m.group(3) or ""
        if key in ("idVendor", "idProduct"):
            setattr(dev, "vid" if key == "idVendor" else "pid", int(first, 16))
        elif key in ("iManufacturer", "iProduct", "iSerial") and first.isdigit() and int(first) and rest:
            setattr(dev, {"iManufacturer": "manufacturer", "iProduct": "product", "iSerial": "serial"}[key], rest)
        elif key == "bNumInterfaces":
            configs += 1
        elif configs > 1:
            continue  # a second configuration: the station uses the first
        elif key == "bInterfaceNumber":
            intf = Interface(int(first), 0)
        elif intf is not None and key == "bAlternateSetting" and first != "0":
            intf = None  # an alternate setting: alt 0 is what the driver claims
        elif intf is not None and key in ("bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"):
            setattr(intf, {"bInterfaceClass": "cls", "bInterfaceSubClass": "subclass",
                           "bInterfaceProtocol": "protocol"}[key], int(first))
            if key == "bInterfaceProtocol" and all(i.number != intf.number for i in dev.interfaces):
                dev.interfaces.append(intf)
        elif intf is not None and key == "bEndpointAddress":
            intf.endpoints.append((int(first, 16), ""))
        elif intf is not None and key == "Transfer" and intf.endpoints and first == "Type":
            addr, _ = intf.endpoints[-1]
            intf.endpoints[-1] = (addr, rest.strip().lower())
    return devices


def device_from_lsusb(path: Path, want: str | None) -> Device:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    devices = [d for d in parse_lsusb(text) if d.vid or d.pid]
    if want:
        devices = [d for d in devices if f"{d.vid:04x}:{d.pid:04x}" == want.lower()]
    # hubs (class 09) are never recorders
    devices = [d for d in devices if not d.interfaces or any(i.cls != 0x09 for i in d.interfaces)]
    if not devices:
        raise UsageError(f"{path}: no {'device ' + want if want else 'USB device'} in this `lsusb -v` output "
                         "(record it with `lsusb -v -d VID:PID > FILE`)")
    if len(devices) > 1:
        raise UsageError(f"{path}: several devices ({', '.join(f'{d.vid:04x}:{d.pid:04x}' for d in devices)}); "
                         "say which with -d VID:PID")
    devices[0].source = f"`lsusb -v` output {path}"
    return devices[0]


# ---- a slot: the station's events and the device's sysfs -----------------------------------------

def _hex(path: Path) -> int | None:
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def sysfs_interfaces(port: str, vid: int, pid: int, sys_root: Path = Path("/sys")) -> list[Interface] | None:
    """The interfaces and endpoints of the device on USB port *port*, read
    from sysfs (no transfer to the device), if that device is still there
    with these ids; else None."""
    dev = sys_root / "bus" / "usb" / "devices" / port
    if not re.fullmatch(r"\d+-[\d.]+", port) or (_hex(dev / "idVendor"), _hex(dev / "idProduct")) != (vid, pid):
        return None
    out = []
    for d in sorted(dev.glob(f"{port}:*.*")):
        number, cls = _hex(d / "bInterfaceNumber"), _hex(d / "bInterfaceClass")
        if number is None or cls is None or (_hex(d / "bAlternateSetting") or 0) != 0:
            continue
        intf = Interface(number, cls, _hex(d / "bInterfaceSubClass") or 0, _hex(d / "bInterfaceProtocol") or 0)
        for ep in sorted(d.glob("ep_*")):
            addr = _hex(ep / "bEndpointAddress")
            try:
                kind = (ep / "type").read_text().strip().lower()
            except OSError:
                kind = ""
            if addr is not None:
                intf.endpoints.append((addr, kind))
        out.append(intf)
    return out


def _interfaces_of(classes: str) -> list[Interface]:
    """The event's ``ff/ff/ff 08/06/50`` (classes only: numbers and endpoints unknown)."""
    out = []
    for n, triple in enumerate(classes.split()):
        parts = triple.split("/")
        if len(parts) == 3 and all(re.fullmatch(r"[0-9a-fA-F]{2}", p) for p in parts):
            out.append(Interface(-1 - n, int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)))
    return out


def device_from_slot(cfg: Config, slot: int, sys_root: Path = Path("/sys")) -> tuple[Device, str | None]:
    """The device the station last reported as foreign or unrecognised in
    *slot*, and a note when it is no longer docked there."""
    from gateway.cli.status import read_events
    from gateway.process.runfiles import daemon_running, read_status

    ev = next((e for e in read_events(cfg, None, 1000, FOREIGN_EVENTS) if e["slot"] == slot), None)
    if ev is None:
        raise UsageError(f"slot {slot}: the station has reported no foreign_device or unrecognised_device there "
                         "(dock the device, then `dockgate events --type foreign_device`)")
    data = ev["data"]
    try:
        vid, pid = int(data["vid"], 16), int(data["pid"], 16)
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"slot {slot}: event {ev['seq']} ({ev['type']}) names no VID:PID (recorded by an older "
                         "dockgate: dock the device again)") from None
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ev["ts"])))
    dev = Device(vid, pid, data.get("manufacturer"), data.get("product"), data.get("serial"),
                 _interfaces_of(data.get("interfaces") or ""), data.get("scsi_vendor"), data.get("scsi_model"),
                 source=f"slot {slot}, {ev['type']} event {ev['seq']} of {when}")
    port = data.get("port")
    live = sysfs_interfaces(port, vid, pid, sys_root) if isinstance(port, str) else None
    if live is not None:
        dev.interfaces = live
        dev.source += f", descriptors from sysfs (port {port})"
    note = None
    status = read_status(cfg.run_dir) if daemon_running(cfg.run_dir) else None
    if status is not None:
        state = next((s.get("state") for s in status.get("slots", []) if s.get("slot") == slot), None)
        if state not in ("foreign", "error"):
            note = f"slot {slot} is {state} now: this is the device reported there at {when}"
    return dev, note


# ---- the skeleton --------------------------------------------------------------------------------

def anchored(text: str) -> str:
    """A regex matching exactly *text* (only regex syntax escaped: readable)."""
    return "^" + re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text) + "$"


def _toml_str(s: str) -> str:
    if "'" not in s and not any(ord(c) < 0x20 or c == "\x7f" for c in s):
        return f"'{s}'"
    esc = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if ord(c) >= 0x20 and c != "\x7f" else f"\\u{ord(c):04x}" for c in esc) + '"'


def _toml_value(key: str, v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"0x{v:04x}" if key in ("vid", "pid") else f"0x{v:02x}" if key in HEX_KEYS else str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(key, x) for x in v) + "]"
    raise TypeError(f"{key}: cannot write {v!r}")


def _table(name: str, values: dict[str, Any], comments: dict[str, str] | None = None) -> list[str]:
    lines = [f"[{name}]"]
    for k, v in values.items():
        line = f"{k} = {_toml_value(k, v)}"
        if comments and k in comments:
            line += f"  # {comments[k]}"
        lines.append(line)
    return lines


def slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:32].strip("-")


def skeleton(dev: Device, base: Profile, name: str) -> str:
    """The profile's TOML: *dev*'s ids and strings in [match], the rest from
    *base*, the command interface from *dev*'s descriptors where known."""
    # what the base profile's file says (not every default): the skeleton reads like it
    settings = base.model_dump(exclude_unset=True, exclude={"name", "description", "model", "match", "source",
                                                            "protocol"})
    intf = dev.command_interface() if base.protocol != "ums" else None
    usb_notes: dict[str, str] = {}
    if intf is not None and intf.number >= 0:
        usb = dict(settings.get("usb", {}))
        usb["interface"] = intf.number
        usb_notes["interface"] = f"class {intf.triple()}, from the device's descriptors"
        ep_out, ep_in = intf.bulk()
        if ep_out is not None and ep_in is not None and (base.usb.ep_out is not None or base.usb.ep_in is not None):
            usb["ep_out"], usb["ep_in"] = ep_out, ep_in
            usb_notes["ep_out"] = usb_notes["ep_in"] = "bulk, from the device's descriptors"
        settings["usb"] = dict(sorted(usb.items(), key=lambda kv: list(type(base.usb).model_fields).index(kv[0])))
    what = " ".join(x for x in (dev.manufacturer, dev.product) if x) or f"{dev.vid:04x}:{dev.pid:04x}"
    lines = [
        f"# Site profile for {dev.vid:04x}:{dev.pid:04x} {what!r}, written by `dockgate profile new`",
        f"# {time.strftime('%Y-%m-%d')} from {dev.source}.",
        f"# Settings other than [match] are the {base.name!r} profile's ({base.source}):",
        "# check each against a capture of the vendor's software (docs/profiles.md), then:",
        "# dockgate check-config, regenerate the udev rules, reload udev, restart dockgate",
        "# (docs/profiles.md, \"Adding a site profile\").",
        f"# Interfaces: {' '.join(i.triple() for i in dev.interfaces) or 'unknown'}.",
        "",
        f"name = {_toml_str(name)}",
        f"description = {_toml_str(what + ' (site profile)')}",
        f"model = {_toml_str(dev.product or what)}",
        f"protocol = {_toml_str(base.protocol)}",
        "",
        "[match]",
        "# the device's own string descriptors (what `lsusb -v` shows), never the hardware database's names",
        f"vid = 0x{dev.vid:04x}",
        f"pid = 0x{dev.pid:04x}",
    ]
    if dev.manufacturer is not None:
        lines.append(f"manufacturer = {_toml_str(anchored(dev.manufacturer))}")
    if dev.product is not None:
        lines.append(f"product = {_toml_str(anchored(dev.product))}")
    if dev.serial is not None:
        lines.append(f"# serial = {_toml_str(anchored(dev.serial))}   # one device only: a profile is for a model")
    inquiry = dev.ids.inquiry
    if inquiry is not None:
        lines += [f"# the disk's SCSI INQUIRY vendor {dev.scsi_vendor or ''!r} + product {dev.scsi_model or ''!r},",
                  "# lowercased, spaces removed (how the DV16 SDK compares them)",
                  f"inquiry = {_toml_str(anchored(inquiry))}"]
        if base.protocol == "dv16-scsi":
            # the driver's read-only probe compares the same text before any vendor CDB
            scsi = dict(settings.get("scsi", {}))
            scsi["inquiry_key"] = inquiry
            settings["scsi"] = scsi
    for section, values in settings.items():
        if isinstance(values, dict) and section != "commands":
            lines += ["", *_table(section, values, usb_notes if section == "usb" else None)]
        elif section == "commands" and values:
            lines += ["", *_table("commands", values)]
        elif isinstance(values, list):
            for item in values:
                lines += ["", f"[[{section}]]", *(f"{k} = {_toml_value(k, v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


def check_skeleton(text: str, dev: Device, registry: Registry, replacing: Path | None) -> Profile:
    """Load it as the station will, next to every profile the station has
    (one at *replacing* excepted: the file being rewritten), and make sure it
    claims *dev*."""
    from drivers.profiles import ProfileError, Registry, load_profile

    profile = load_profile(text, "new profile")
    others = [p for p in registry.profiles if replacing is None or Path(p.source) != replacing]
    try:
        reg = Registry([*others, profile])
    except ProfileError as e:
        raise UsageError("the new profile cannot sit beside the station's: " + "; ".join(e.problems)
                         + " (--name, or a narrower [match])") from None
    if reg.match(dev.ids) is not profile:
        raise UsageError(f"the new profile would not claim {dev.ids.describe()}: another profile matches it as "
                         "specifically; give this one the manufacturer and product regexes")
    return profile


def _registry(cfg: Config | None) -> Registry:
    from drivers.profiles import Registry

    return Registry.load(cfg.recorders.profiles_dir if cfg is not None else None)


def _config(args: argparse.Namespace, required: bool) -> Config | None:
    from gateway import default_config_path
    from gateway.config import load_config

    path = Path(args.config or default_config_path())
    if not required and args.config is None and not path.exists():
        return None
    return load_config(path)


def cmd_profile_new(args: argparse.Namespace) -> int:
    cfg = _config(args, required=args.slot is not None)
    note = None
    if args.slot is not None:
        assert cfg is not None
        dev, note = device_from_slot(cfg, args.slot, Path(args.sys_root))
    else:
        dev = device_from_lsusb(Path(args.from_lsusb), args.device)
    registry = _registry(cfg)
    if args.like:
        base = next((p for p in registry.profiles if p.name == args.like), None)
        if base is None:
            raise UsageError(f"--like {args.like}: no such profile (known: "
                             f"{', '.join(sorted(p.name for p in registry.profiles))})")
    else:
        protocol = args.protocol or ("ums" if dev.storage_only() else None)
        if protocol is None:
            classes = " ".join(i.triple() for i in dev.interfaces) or "classes unknown"
            raise UsageError(f"{dev.ids.describe()} is not plain mass storage ({classes}): say which protocol "
                             f"family it speaks, --protocol {'|'.join(PROTOCOLS)}, or --like PROFILE "
                             "(docs/profiles.md: From a USB capture to a profile)")
        base = registry.default_for(protocol)
    if args.scsi_vendor is not None or args.scsi_model is not None:
        dev.scsi_vendor, dev.scsi_model = args.scsi_vendor or "", args.scsi_model or ""
    if base.protocol == "dv16-scsi" and dev.ids.inquiry is None:
        raise UsageError(f"{dev.ids.describe()}: a dv16-scsi profile is claimed by the disk's INQUIRY text, which "
                         "is not known here: give --scsi-vendor and --scsi-model (`cat /sys/block/sdX/device/vendor` "
                         "and `.../model`), or dock it and use --slot")
    name = args.name or "site-" + "-".join(x for x in (f"{dev.vid:04x}-{dev.pid:04x}",
                                                       slug(dev.product or dev.manufacturer or "")) if x)
    text = skeleton(dev, base, name)
    out = Path(args.output) if args.output else None
    check_skeleton(text, dev, registry, out.resolve() if out is not None else None)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if out is None:
        sys.stdout.write(text)
        return 0
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists (--force replaces it)")
    from gateway.durable import write_atomic

    write_atomic(out, text.encode(), mode=0o644)
    where = cfg.recorders.profiles_dir if cfg is not None else None
    print(f"wrote {out}: profile {name!r} ({base.protocol}) for {dev.ids.describe()}", file=sys.stderr)
    if where is None or out.resolve().parent != where.resolve():
        print(f"note: dockgate loads site profiles from recorders.profiles_dir ({where or 'not set'}); put it there",
              file=sys.stderr)
    print("next (docs/profiles.md): edit it, `dockgate check-config`, `dockgate udev-rules -c CONFIG > "
          "/etc/udev/rules.d/70-dockgate.rules`, `udevadm control --reload && udevadm trigger "
          "--subsystem-match=usb --action=change`, `systemctl restart dockgate`", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    """``profile new``."""
    sp = sub.add_parser("profile", help="site firmware profiles")
    psub = sp.add_subparsers(dest="profile_cmd", required=True, metavar="COMMAND")
    new = with_config(psub.add_parser(
        "new", help="a site profile's skeleton for a device the station saw (--slot) or `lsusb -v` shows"))
    src = new.add_mutually_exclusive_group(required=True)
    src.add_argument("--slot", type=int, help="the device last reported foreign (or unrecognised) in this slot")
    src.add_argument("--from-lsusb", metavar="FILE", help="`lsusb -v -d VID:PID` output saved in FILE")
    new.add_argument("-d", "--device", metavar="VID:PID", help="with --from-lsusb: which device of the output")
    fam = new.add_mutually_exclusive_group()
    fam.add_argument("--protocol", choices=PROTOCOLS, help="the family it speaks (plain mass storage: ums, "
                                                           "the default for a storage-only device)")
    fam.add_argument("--like", metavar="PROFILE", help="take the settings of this profile (a sibling model)")
    new.add_argument("--scsi-vendor", metavar="TEXT", help="a disk's SCSI INQUIRY vendor (sysfs device/vendor): "
                                                           "matched as [match] inquiry (dv16-scsi)")
    new.add_argument("--scsi-model", metavar="TEXT", help="a disk's SCSI INQUIRY product (sysfs device/model)")
    new.add_argument("--name", help="the profile's name (default: site-VID-PID-product)")
    new.add_argument("-o", "--output", metavar="FILE", help="write it here (default: standard output)")
    new.add_argument("--force", action="store_true", help="replace FILE if it exists")
    new.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    new.set_defaults(fn=cmd_profile_new)

