"""Firmware profiles: one TOML file per recorder model, matched by an explicit
registry. Adding a model is adding a file; two profiles claiming the same
device is an error at start, not a coin toss at dock time."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.base import UsbIds
from gateway.errors import DockgateError, describe_validation

PROTOCOLS = ("ums", "zfy", "zfy-serial", "amba")


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


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_M):
    vid: int = Field(ge=0, le=0xFFFF)
    pid: int = Field(ge=0, le=0xFFFF)
    product: str | None = Field(None, description="regex on the USB product string")

    @field_validator("product")
    @classmethod
    def _regex_ok(cls, v: str | None) -> str | None:
        return None if v is None else _regex(v)


class Password(_M):
    #: none: no authentication; station: recorders.admin_password_file
    source: Literal["none", "station"] = "none"


class Clips(_M):
    include: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    exclude: list[str] = Field(default_factory=list)


class NamePattern(_M):
    pattern: str
    time_format: str = "%Y%m%d%H%M%S"

    @field_validator("pattern")
    @classmethod
    def _regex_ok(cls, v: str) -> str:
        return _regex(v)


class Clock(_M):
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz_ok(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Serial(_M):
    baudrate: int = Field(115200, gt=0)


class Zfy(_M):
    #: text encoding of ZFY_INFO names; "auto" guesses between GBK and UTF-8
    info_encoding: Literal["auto", "gbk", "utf-8"] = "auto"


class Sidecar(_M):
    #: gps: a track for the clip; mark: the officer flagged the clip important
    kind: Literal["gps", "mark"]
    #: replaces the clip's extension, e.g. ".GPS" for 0001.MP4 -> 0001.GPS
    suffix: str = Field(min_length=1)


class Profile(_M):
    name: str
    description: str = ""
    model: str = ""
    protocol: Literal["ums", "zfy", "zfy-serial", "amba"]
    match: Match
    password: Password = Password()
    clips: Clips = Clips()
    names: list[NamePattern] = Field(default_factory=list)
    clock: Clock = Clock()
    serial: Serial = Serial()
    zfy: Zfy = Zfy()
    #: ZFY command numbers that differ from the defaults, e.g. get_time = "N007"
    commands: dict[str, str] = Field(default_factory=dict)
    sidecars: list[Sidecar] = Field(default_factory=list)
    source: str = Field("", exclude=True)

    @field_validator("commands")
    @classmethod
    def _commands_ok(cls, v: dict[str, str]) -> dict[str, str]:
        from drivers.zfy_proto import COMMANDS

        for name, num in v.items():
            if name not in COMMANDS:
                raise ValueError(f"unknown command {name!r}; known: {sorted(COMMANDS)}")
            if not re.fullmatch(r"[SN]\d{3}", num):
                raise ValueError(f"{name}: {num!r} is not like S001 or N012")
        return v

    def matches(self, ids: UsbIds) -> bool:
        if (ids.vid, ids.pid) != (self.match.vid, self.match.pid):
            return False
        if self.match.product is None:
            return True
        return ids.product is not None and re.search(self.match.product, ids.product) is not None

    def officer_from_name(self, name: str) -> str | None:
        for p in self.names:
            m = re.search(p.pattern, name)
            if m and m.groupdict().get("officer"):
                return m.group("officer")
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
    # a profile without a product regex claims every product of its VID:PID
    return (a.vid, a.pid) == (b.vid, b.pid) and (
        a.product is None or b.product is None or a.product == b.product)


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
                    problems.append(f"{p.source} and {q.source} both claim "
                                    f"{p.match.vid:04x}:{p.match.pid:04x}")
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
        hits = [p for p in self.profiles if p.matches(ids)]
        # a product-specific profile beats a VID:PID-only one
        hits.sort(key=lambda p: p.match.product is None)
        return hits[0] if hits else None

    def default_for(self, protocol: str) -> Profile:
        for p in self.profiles:
            if p.protocol == protocol:
                return p
        raise ProfileError("firmware profiles", [f"no shipped profile for protocol {protocol!r}"])
