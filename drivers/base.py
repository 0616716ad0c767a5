"""The recorder driver contract.

A *driver* is one docked recorder, opened through the protocol family its
firmware profile names. The gateway calls the methods below from worker
threads (they may block on USB, serial or disk); a driver instance is used by
one thread at a time and never shared between slots.

Order of calls in a dock session::

    unlock(password) -> identify() -> read_clock() -> set_clock(now)
    -> list_clips() -> open_clip(ref)* -> [delete_clip(ref)*] -> close()

Contract, method by method:

* ``unlock(password)``: authenticate with the admin password and make the
  storage reachable (mass-storage mode). ``WrongPassword`` if refused; a
  family without authentication accepts any value, including ``None``.
  Before ``unlock`` no method may expose clip data.
* ``identify()``: device serial, model, officer number (警号), unit, battery
  where the family can read them. Never guesses: unknown fields are ``None``.
* ``read_clock()``: the recorder's clock as an aware UTC datetime, or
  ``None`` where the family cannot read it. Read as close to the station's
  own clock reading as possible; drift = recorder - station.
* ``set_clock(utc)``: set the recorder's clock; returns ``False`` where the
  family cannot.
* ``list_clips()``: every clip on the volume that the profile's globs
  select, as ``ClipRef`` (path relative to the volume root, size, mtime).
  Symlinks, FIFOs, devices and names leaving the volume are never followed or
  opened; they are reported through ``skipped``.
* ``open_clip(ref)``: an unbuffered binary stream over the clip's bytes,
  opened without following any symlink on the way.
* ``delete_clip(ref)``: remove the clip from the recorder (release policy
  only, after the archive verified it).
* ``close()``: release the device; safe to call twice and after errors.

Errors are ``DriverError`` subclasses; ``permanent`` tells the session whether
retrying the same dock can help.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from gateway.errors import DockgateError

if TYPE_CHECKING:
    from drivers.profiles import Profile


@dataclass(frozen=True)
class UsbIds:
    vid: int
    pid: int
    serial: str | None = None
    product: str | None = None
    manufacturer: str | None = None

    def __str__(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}" + (f" serial={self.serial}" if self.serial else "")


@dataclass(frozen=True)
class DockedDevice:
    """What detection knows of a docked recorder before any driver talks to it."""

    slot: int
    ids: UsbIds
    #: the mounted mass-storage volume, where the device exposes one
    volume: Path | None
    #: which detection backend saw it ("udev", "sim")
    source: str
    #: facts the detection backend read from the device without unlocking it
    #: (udev properties, the simulator's vendor info); used only as fallbacks
    hints: Mapping[str, str] = field(default_factory=dict)
    #: opaque backend handle (udev device, simulator folder); never interpreted
    details: Any = None
    #: for recorders that expose storage only after unlocking: waits up to the
    #: given seconds for the volume to appear and returns it (None: not yet)
    locate_volume: Callable[[float], Path | None] | None = None


@dataclass(frozen=True)
class Identity:
    serial: str
    model: str | None = None
    officer: str | None = None
    unit: str | None = None
    officer_name: str | None = None
    battery_pct: int | None = None


@dataclass(frozen=True)
class ClipRef:
    """A clip on a recorder volume. ``relpath`` is raw bytes (file names on
    recorders are often GBK, not UTF-8) relative to the volume root."""

    relpath: bytes
    size: int
    mtime_ns: int

    @property
    def display(self) -> str:
        return self.relpath.decode("utf-8", "backslashreplace")

    @property
    def name(self) -> str:
        return os.path.basename(self.display)


@dataclass(frozen=True)
class Skipped:
    """An entry on the volume that was deliberately not read."""

    relpath: bytes
    why: str

    @property
    def display(self) -> str:
        return self.relpath.decode("utf-8", "backslashreplace")


class DriverError(DockgateError):
    reason = "driver"

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        super().__init__(f"{device}: {message}")


class WrongPassword(DriverError):
    reason = "wrong_password"

    def __init__(self, device: str) -> None:
        super().__init__(device, "admin password refused by the recorder")


class DeviceTimeout(DriverError):
    permanent = False
    reason = "timeout"


class MalformedReply(DriverError):
    reason = "malformed_reply"

    def __init__(self, device: str, command: str, why: str, raw: bytes = b"") -> None:
        self.command = command
        self.raw = raw
        super().__init__(device, f"malformed reply to {command}: {why}")


class DeviceGone(DriverError):
    permanent = False
    reason = "device_gone"


class Recorder(abc.ABC):
    """One docked recorder, opened through its protocol family."""

    family: str = "abstract"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        self.device = device
        self.profile = profile

    @property
    def label(self) -> str:
        return f"slot {self.device.slot} {self.device.ids}"

    @abc.abstractmethod
    def unlock(self, password: str | None) -> None: ...

    @abc.abstractmethod
    def identify(self) -> Identity: ...

    @abc.abstractmethod
    def read_clock(self) -> datetime | None: ...

    @abc.abstractmethod
    def set_clock(self, utc: datetime) -> bool: ...

    @abc.abstractmethod
    def list_clips(self, skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]: ...

    @abc.abstractmethod
    def open_clip(self, ref: ClipRef) -> BinaryIO: ...

    @abc.abstractmethod
    def delete_clip(self, ref: ClipRef) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most families hold nothing
        """Release the device. Default: nothing to release."""
