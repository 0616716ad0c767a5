"""Firmware profiles: one TOML file per recorder model, matched by an explicit
registry. Adding a model is adding a file (docs/profiles.md): everything a
model varies in (transport, interface and endpoints, control request fields,
timeouts, command codes, record layout, clock zone, password encoding, probe,
the storage side after the switch) is data here. A setting left out takes
the family's default, the reading of the reference that most sources share.

Two profiles that could claim the same device are an error at start, not a
coin toss at dock time; a device that two profiles' regexes both accept
matches neither (never guess which protocol to speak to an unknown device).

Why one module of over 400 lines: it is the whole schema of a profile file,
one model per TOML section, each with the checks that keep a wrong profile
from reaching a device, plus the registry that checks them together; split,
a family's settings (DV16's ``[scsi]``, F's ``[zzx]``) would sit apart from
the rules that use them, and a reader would chase one file's keys through
several.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers import PROTOCOLS
from drivers.commands import COMMANDS
from drivers.ids import UsbIds
from gateway.errors import DockgateError, describe_validation

log = logging.getLogger(__name__)

Protocol = Literal["ums", "amba-ctrl", "amba-ascii", "zfy-ctrl", "bc-text", "e12-tcp", "zzx-json", "dv16-scsi"]
assert get_args(Protocol) == PROTOCOLS, "drivers.PROTOCOLS and drivers.profiles.Protocol disagree"


class ProfileError(DockgateError):
    reason = "profile"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as e:  # not a ValueError: pydantic would let it escape untyped
        raise ValueError(f"not a valid regular expression: {e}") from None
    return v


def _opt_regex(v: str | None) -> str | None:
    return None if v is None else _regex(v)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


U8 = Field(None, ge=0, le=0xFF)
U16 = Field(None, ge=0, le=0xFFFF)


class Match(_M):
    """Which USB device this profile claims: VID:PID and, where several
    protocols share one VID:PID (4255:0001 carries four), regexes on the
    string descriptors that tell them apart. A disk may instead be claimed by
    its SCSI INQUIRY text alone (``inquiry``, DV16: its VID:PID is unknown)."""

    vid: int | None = Field(None, ge=0, le=0xFFFF)
    pid: int | None = Field(None, ge=0, le=0xFFFF)
    product: str | None = Field(None, description="regex on the USB product string")
    manufacturer: str | None = Field(None, description="regex on the USB manufacturer string")
    serial: str | None = Field(None, description="regex on the USB serial string")
    inquiry: str | None = Field(None, description="regex on a disk's INQUIRY vendor + product, lowercased, "
                                                  "spaces removed (DV16 SDK: 'dv16devicev1.00')")

    @field_validator("product", "manufacturer", "serial", "inquiry")
    @classmethod
    def _regex_ok(cls, v: str | None) -> str | None:
        return _opt_regex(v)

    @model_validator(mode="after")
    def _claims_something(self) -> Match:
        if (self.vid is None) != (self.pid is None):
            raise ValueError("give both match.vid and match.pid, or neither")
        if self.vid is None and self.inquiry is None:
            raise ValueError("match needs vid and pid, or an inquiry regex")
        return self

    def regexes(self) -> dict[str, str]:
        return {k: v for k, v in (("product", self.product), ("manufacturer", self.manufacturer),
                                  ("serial", self.serial), ("inquiry", self.inquiry)) if v is not None}

    def matches(self, ids: UsbIds) -> bool:
        if self.vid is not None and (ids.vid, ids.pid) != (self.vid, self.pid):
            return False
        for attr, pattern in self.regexes().items():
            value = getattr(ids, attr)
            if value is None or re.search(pattern, value) is None:
                return False
        return True


class Password(_M):
    #: none: no authentication; station: recorders.admin_password_file
    source: Literal["none", "station"] = "none"
    #: how the text becomes bytes (A: UTF-8, C: ASCII); BC+ always sends MD5
    encoding: Literal["utf-8", "ascii", "gbk"] = "utf-8"
    #: the account logged in: BC+ "admin"/"user"; ZFY control: 0x10 admin, 0x11 user
    user: Literal["admin", "user"] = "admin"
    #: ZFY control: the SDK sends the password unpadded; [G] pads it to 6
    pad_to: int = Field(0, ge=0, le=64)
    #: login attempts before the password counts as refused (SDKs: C 6, D 10)
    attempts: int = Field(1, ge=1, le=10)


class Usb(_M):
    configuration: int = Field(1, ge=1, le=255)
    interface: int = Field(0, ge=0, le=255)
    ep_out: int | None = Field(None, ge=0x01, le=0x0F)
    ep_in: int | None = Field(None, ge=0x81, le=0x8F)
    #: per transfer; None: the family's default
    timeout_ms: int | None = Field(None, gt=0, le=60_000)
    #: bulk IN buffer per read (B 64, D 1024)
    read_size: int | None = Field(None, gt=0, le=65536)
    #: BC+: drain bulk IN before every command (reads of drain_size, drain_timeout_ms each)
    drain: bool | None = None
    drain_size: int = Field(4096, gt=0, le=65536)
    drain_timeout_ms: int = Field(100, gt=0, le=10_000)


class Control(_M):
    """Vendor control transfers on EP0 (families A and C)."""

    request_type_out: int | None = U8
    request_type_in: int | None = U8
    request: int | None = U8
    #: A: the storage switch goes out with its own bRequest (0x50)
    storage_request: int | None = U8
    value: int | None = U16
    #: wValue of IN transfers: C's SDK sends 0x00aa, another tool 0; unknown which the firmware needs
    in_value: int | None = U16
    index: int | None = U16
    #: A: every OUT packet is zero-padded to this length; the reply is reply_length bytes
    packet: int | None = Field(None, gt=0, le=4096)
    reply_length: int | None = Field(None, gt=0, le=4096)


class Tcp(_M):
    """TCP families (E, F). Host and port from the dock's hints first."""

    host: str = "127.0.0.1"
    port: int | None = Field(None, gt=0, le=65535)
    #: E: byte order of the 4-byte length prefix (unknown from sources)
    length_order: Literal["big", "little"] = "big"
    connect_timeout_ms: int = Field(3000, gt=0)
    send_timeout_ms: int = Field(3000, gt=0)
    read_timeout_ms: int = Field(5000, gt=0)
    #: E: how long an optional read (battery) may stay silent after E12DATR880
    #: before it counts as unset; None: read_timeout_ms
    optional_timeout_ms: int | None = Field(None, gt=0)
    #: reach the recorder through ``adb -s <usb serial> forward tcp:0 tcp:<port>``
    adb_forward: bool = False


class Scsi(_M):
    """Vendor SCSI commands through the disk (DV16, reference §2G)."""

    #: read the clock with sub-command 5 (fd 81): NOT in the SDK, which only
    #: sets it; without it drift cannot be measured
    clock_read: bool = False
    #: sys_time's size: 7 (USBJL.h's pack(1), as read) or 8 (default packing)
    clock_size: Literal[7, 8] = 7
    #: msdc: as the SDK (SD status 12 non-zero, then sub-command 6; the clips
    #: are then on the same disk after settle_s); none: the disk already
    #: shows the card (unknown which a device needs)
    storage_switch: Literal["msdc", "none"] = "msdc"
    #: the INQUIRY text (inquiry_key) the read-only probe must see
    inquiry_key: str = "dv16devicev1.00"
    #: timeouts of the SDK: 2 s for data-in, 10 s for data-out
    timeout_in_ms: int = Field(2000, gt=0, le=60_000)
    timeout_out_ms: int = Field(10_000, gt=0, le=60_000)


class Zzx(_M):
    """Family F's app (reference §2F, §5)."""

    #: open the app's port through adb: ``am broadcast -a <action> --ei <extra> <tcp.port>``,
    #: then ``adb forward``; false: the port is reachable as [tcp] says (or the dock's hints)
    broadcast: bool = True
    action: str = Field("com.zzx.sdk", pattern=r"^[A-Za-z0-9_.]+$")
    extra: str = Field("port", pattern=r"^[A-Za-z0-9_]+$")
    #: the app build: "standard", or "p5x_szlj", whose GetZFYInfo moves fields
    #: (serial: the device number's last 5 characters; policeName: the user
    #: number; groupNo: the model number)
    build: Literal["standard", "p5x_szlj"] = "standard"


class Timing(_M):
    #: pause between two commands (no source needs one; slow firmware may)
    delay_ms: int = Field(0, ge=0, le=10_000)


class ProbeSpec(_M):
    """The read-only probe: which one is the family's; here only what to expect."""

    #: regex the IDCode (C, D, E, F) must match; None: any well-formed IDCode
    idcode: str | None = None
    @field_validator("idcode")
    @classmethod
    def _regex_ok(cls, v: str | None) -> str | None:
        return _opt_regex(v)


class Record(_M):
    """The officer record's layout (C: 100 bytes, E: 89 bytes)."""

    size: int | None = Field(None, gt=0, le=4096)
    #: serial, officer number, officer name, unit number, unit name
    offsets: tuple[int, int, int, int, int] | None = None
    widths: tuple[int, int, int, int, int] | None = None
    #: text encoding of names; "auto" guesses between GBK and UTF-8
    encoding: Literal["auto", "gbk", "utf-8"] = "auto"

    @model_validator(mode="after")
    def _inside(self) -> Record:
        if self.size is not None and self.offsets is not None and self.widths is not None:
            for o, w in zip(self.offsets, self.widths, strict=True):
                if o + w > self.size:
                    raise ValueError(f"field at {o} of {w} bytes leaves the {self.size}-byte record")
        return self


class Storage(_M):
    """The mass-storage device the recorder becomes after the switch."""

    vid: int | None = U16
    pid: int | None = U16
    #: seconds the switch usually takes; the session waits for the device
    settle_s: float = Field(5.0, ge=0, le=300)
    #: report the storage missing after this many seconds
    timeout_s: float = Field(30.0, gt=0, le=600)
    #: none: any label; device-id: the label equals the id the recorder gave (B's @Gdv)
    label: Literal["none", "device-id"] = "none"

    @model_validator(mode="after")
    def _both(self) -> Storage:
        if (self.vid is None) != (self.pid is None):
            raise ValueError("give both storage.vid and storage.pid, or neither")
        if self.timeout_s < self.settle_s:
            raise ValueError("storage.timeout_s is shorter than storage.settle_s")
        return self

    @property
    def ids(self) -> UsbIds | None:
        return None if self.vid is None or self.pid is None else UsbIds(self.vid, self.pid)


class Clips(_M):
    include: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    exclude: list[str] = Field(default_factory=list)


class NamePattern(_M):
    """How a model's clip names carry facts. Only where a source gives the
    rule (family A's script: reference §2A, §5); a name is not parsed for
    facts otherwise. Groups: ``officer``; ``start`` (parsed with
    ``time_format``), or ``date`` and ``time`` (joined, then parsed)."""

    pattern: str
    time_format: str = "%Y%m%d%H%M%S"
    #: what the pattern is searched in: the file name, or the path from the volume root ("DCIM/240305/x.MP4")
    on: Literal["name", "path"] = "name"
    #: characters deleted from the officer group (A's script: "0_")
    strip: str = ""

    @field_validator("pattern")
    @classmethod
    def _regex_ok(cls, v: str) -> str:
        return _regex(v)

    def facts(self, relpath: str) -> tuple[str | None, datetime | None]:
        """(officer, start as the recorder's naive local time) from a clip's path."""
        m = re.search(self.pattern, relpath if self.on == "path" else relpath.rsplit("/", 1)[-1])
        if m is None:
            return None, None
        groups = m.groupdict()
        officer = groups.get("officer")
        if officer is not None:
            officer = officer.translate({ord(c): None for c in self.strip}) or None
        text = groups.get("start")
        if text is None and groups.get("date") is not None and groups.get("time") is not None:
            text = groups["date"] + groups["time"]
        start = None
        if text:
            try:
                start = datetime.strptime(text, self.time_format)
            except ValueError:
                start = None
        return officer, start


class Clock(_M):
    #: the zone the recorder keeps its clock in, where the family sends local time
    timezone: str = "Asia/Shanghai"
    #: set the recorder's clock at dock (families that can)
    set: bool = True
    #: D: which way +SYSTIME:'s zone offset counts. No source says: "east"
    #: (minutes east of UTC, 480 at UTC+8) is the common reading, unverified;
    #: "west" (-480 at UTC+8) the other
    systime_offset: Literal["east", "west"] = "east"

    @field_validator("timezone")
    @classmethod
    def _tz_ok(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Sidecar(_M):
    #: gps: a track for the clip; mark: the officer flagged the clip important
    kind: Literal["gps", "mark"]
    #: replaces the clip's extension, e.g. ".GPS" for 0001.MP4 -> 0001.GPS
    suffix: str = Field(min_length=1)


class Profile(_M):
    name: str
    description: str = ""
    model: str = ""
    protocol: Protocol
    match: Match
    password: Password = Password()
    usb: Usb = Usb()
    control: Control = Control()
    tcp: Tcp = Tcp()
    scsi: Scsi = Scsi()
    zzx: Zzx = Zzx()
    timing: Timing = Timing()
    probe: ProbeSpec = ProbeSpec()
    record: Record = Record()
    storage: Storage = Storage()
    clips: Clips = Clips()
    names: list[NamePattern] = Field(default_factory=list)
    clock: Clock = Clock()
    #: command codes that differ from the family's (names: see the family's codec)
    commands: dict[str, int | str] = Field(default_factory=dict)
    sidecars: list[Sidecar] = Field(default_factory=list)
    source: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _commands_known(self) -> Profile:
        known = COMMANDS.get(self.protocol, {})
        problems = []
        for name, code in self.commands.items():
            if name not in known:
                problems.append(f"unknown command {name!r} for {self.protocol}; known: "
                                f"{', '.join(sorted(known)) or 'none'}")
            elif type(code) is not type(known[name]):
                problems.append(f"{name}: {self.protocol} command codes are "
                                f"{type(known[name]).__name__}s, not {code!r}")
        if problems:
            raise ValueError("commands: " + "; ".join(problems))
        return self

    def matches(self, ids: UsbIds) -> bool:
        return self.match.matches(ids)

    def specificity(self) -> int:
        return len(self.match.regexes())

    def officer_from_name(self, relpath: str) -> str | None:
        """The officer a clip's path names, by the first pattern that gives
        one; None without patterns (the device's own record is the source)."""
        for p in self.names:
            officer, _start = p.facts(relpath)
            if officer:
                return officer
        return None

    def start_from_name(self, relpath: str) -> datetime | None:
        """When the clip started, as the recorder's naive local time, by the
        first pattern that gives one; None without patterns."""
        for p in self.names:
            _officer, start = p.facts(relpath)
            if start is not None:
                return start
        return None


def load_profile(text: str, source: str) -> Profile:
    try:
        raw = tomllib.loads(text)
        return Profile.model_validate({**raw, "source": source})
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(source, [f"not valid TOML: {e}"]) from None
    except ValidationError as e:
        raise ProfileError(source, describe_validation(e.errors())) from None


def _overlap(a: Match, b: Match) -> bool:
    """Whether nothing tells the two claims apart: same VID:PID and no string
    descriptor for which both give different regexes."""
    if (a.vid is None) != (b.vid is None):
        return False  # one by VID:PID, one by INQUIRY: the more specific wins (Registry.match)
    if (a.vid, a.pid) != (b.vid, b.pid):
        return False
    ra, rb = a.regexes(), b.regexes()
    return not any(k in rb and ra[k] != rb[k] for k in ra)


class Registry:
    """All known profiles, checked for overlaps once."""

    def __init__(self, profiles: Iterable[Profile]) -> None:
        self.profiles = list(profiles)
        problems = []
        for i, p in enumerate(self.profiles):
            for q in self.profiles[:i]:
                if p.name == q.name:
                    problems.append(f"{p.source} and {q.source} share the name {p.name!r}")
                if _overlap(p.match, q.match):
                    m = p.match
                    what = f"{m.vid:04x}:{m.pid or 0:04x}" if m.vid is not None else f"INQUIRY {m.inquiry!r}"
                    problems.append(f"{p.source} and {q.source} both claim {what}"
                                    " with nothing to tell them apart (product, manufacturer or serial regex)")
        if problems:
            raise ProfileError("firmware profiles", problems)

    @classmethod
    def load(cls, extra_dir: Path | None = None) -> Registry:
        profiles = []
        for entry in sorted(resources.files("firmware_profiles").iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".toml"):
                profiles.append(load_profile(entry.read_text(encoding="utf-8"),
                                             f"firmware_profiles/{entry.name}"))
        if extra_dir is not None:
            if not extra_dir.is_dir():
                raise ProfileError(str(extra_dir), ["profiles directory not found"])
            for f in sorted(extra_dir.glob("*.toml")):
                profiles.append(load_profile(f.read_text(encoding="utf-8"), str(f)))
        return cls(profiles)

    def match(self, ids: UsbIds) -> Profile | None:
        """The profile that claims this device, or None: no profile, or two
        equally specific ones (never guess a protocol for a device)."""
        hits = sorted(((p.specificity(), p) for p in self.profiles if p.matches(ids)),
                      key=lambda h: -h[0])
        if not hits:
            return None
        if len(hits) > 1 and hits[0][0] == hits[1][0]:
            log.warning("%s matches profiles %s and %s alike; treating it as unknown",
                        ids, hits[0][1].name, hits[1][1].name)
            return None
        return hits[0][1]

    def match_storage(self, ids: UsbIds) -> Profile | None:
        """The profile whose storage side has these ids (a recorder that was
        switched to storage with no session waiting for it), or None when no
        profile or more than one claims them."""
        hits = [p for p in self.profiles if p.storage.ids is not None
                and (p.storage.ids.vid, p.storage.ids.pid) == (ids.vid, ids.pid)]
        return hits[0] if len(hits) == 1 else None

    def default_for(self, protocol: str) -> Profile:
        """The family's shipped profile (the simulator's defaults)."""
        mine = [p for p in self.profiles if p.protocol == protocol]
        mine.sort(key=lambda p: not p.source.startswith("firmware_profiles/"))
        if not mine:
            raise ProfileError("firmware profiles", [f"no profile for protocol {protocol!r}"])
        return mine[0]
