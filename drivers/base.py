"""The recorder driver contract.

A *driver* is one docked recorder, opened through the protocol family its
firmware profile names (``drivers.families.open_recorder``). The gateway
calls the methods below from worker threads (they block on USB, TCP or disk);
an instance is used by one thread at a time and never shared between slots.

Order of calls in a dock session, the order every vendor tool uses::

    probe() -> unlock(password) -> identify() -> read_clock() -> set_clock(utc)
    -> enter_storage()                      (last command: the interface goes away)
    -> [the session waits for the storage device on the same slot]
    -> attach_storage(storage_device)       (not called when enter_storage gave None)
    -> list_clips() -> open_clip(ref)* -> [delete_clip(ref)*] -> close()

Contract, method by method:

* ``probe() -> Probe``: confirm, **without changing any device state**, that
  the device is what the profile says (descriptors, IDCode, ``@Ver``,
  ``GBIDCODE?``, a ping). Only the profile's read-only probe is sent; no probe
  of another family is ever tried. ``NotRecognised`` (permanent) if the
  answer is not the family's (or the IDCode not the profile's);
  ``DeviceTimeout``/``DeviceGone`` (transient) if nothing answers. Until
  ``probe`` has succeeded, every method that would send a command
  (``unlock``, ``identify``, the clock, ``enter_storage``) refuses with
  ``NotProbed`` (permanent) and sends nothing. Plain storage (``ums``) has
  nothing to probe: its ``probe`` only reports what detection saw.
* ``unlock(password)``: authenticate with the admin password where the
  family has one; a family without authentication accepts any value,
  including ``None``. ``WrongPassword`` (permanent) if refused. Storage is not
  exposed by ``unlock``: that is ``enter_storage``.
* ``identify() -> Identity``: device serial, model, officer number (警号),
  unit, battery, IDCode, where the family can read them. Never guesses:
  unknown fields are ``None``.
* ``read_clock()``: the recorder's clock as an aware UTC datetime, or
  ``None`` where the family has no read-only clock command. Read as close to
  the station's own clock reading as possible; drift = recorder - station.
* ``set_clock(utc) -> bool``: set the recorder's clock; ``False`` where the
  family cannot. A refusal by the device is ``CommandFailed``.
* ``enter_storage() -> StorageSwitch | None``: switch the recorder to
  mass-storage mode. This is the **last command**: the vendor interface leaves
  the bus and a mass-storage device appears on the same port after about
  ``settle_s``; the returned ``StorageSwitch`` says what to expect (its ids
  where the profile knows them, the volume label where the family ties it to
  the identity, how long to wait before reporting it never came). ``None``
  means the volume is already there (plain storage). Refused by the device:
  ``CommandFailed``; a command after the switch fails as a gone device does
  (``DeviceGone``).
* ``attach_storage(storage)``: hand the driver the re-enumerated storage
  device (a ``DockedDevice`` with ``volume`` set). ``StorageMismatch``
  (permanent) if it has no volume or its label contradicts the identity.
* ``list_clips(skipped)``: every clip on the volume that the profile's globs
  select, as ``ClipRef`` (path relative to the volume root, size, mtime).
  Symlinks, FIFOs, devices and names leaving the volume are never followed or
  opened; they are reported through ``skipped``. Before the storage is
  reachable: ``StorageMismatch`` (permanent: the caller skipped a step).
* ``open_clip(ref)``: an unbuffered binary stream over the clip's bytes,
  opened without following any symlink on the way.
* ``delete_clip(ref)``: remove the clip from the recorder (release policy
  only, after the archive verified it), only if it is still the file listed.
* ``close()``: release the device; safe to call twice and after errors.

Failures. Drivers raise only ``DriverError`` subclasses (the volume layer's
``UnsafeEntry`` and ``VolumeError`` included; no ``OSError``, ``USBError`` or
socket error escapes). Each carries ``permanent``; callers decide by it, never
by the type:

==================  =========  ==============================================
error               permanent  meaning
==================  =========  ==============================================
NotRecognised       yes        the probe's answer is not the profile's family
NotProbed           yes        a write was asked for before a probe succeeded
WrongPassword       yes        the device refused the password
MalformedReply      yes        a reply breaks the family's framing
CommandFailed       per case   the device answered "failed"
StorageRefused      no         a CommandFailed: the storage switch refused for
                               a documented reason (ZZX: recording time, cut)
StorageMismatch     yes        the storage side is missing or is not this
                               recorder's
UnsafeEntry         yes        a name on the volume that must not be followed
VolumeError         per errno  the volume cannot be read (EIO, ENODEV, ENXIO,
                               ESTALE, EAGAIN: transient; the rest permanent)
DeviceTimeout       no         no (complete) answer within the profile's time
DeviceGone          no         the device left the bus or closed the socket
==================  =========  ==============================================
"""

from __future__ import annotations

import abc
import errno as _errno
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Self

from drivers.ids import UsbIds
from gateway.errors import DockgateError, UnsafePath

if TYPE_CHECKING:  # an annotation only: the catalog's records name ClipRef without the profile schema
    from drivers.profiles import Profile

__all__ = ["UsbIds"]


@dataclass(frozen=True)
class DockedDevice:
    """What detection knows of a docked device before any driver talks to it:
    a recorder's vendor interface, or the mass-storage device it became."""

    slot: int
    ids: UsbIds
    #: the mounted mass-storage volume, where the device exposes one
    volume: Path | None
    #: which detection backend saw it ("udev", "sim")
    source: str
    #: facts the detection backend read without talking to the device:
    #: ``usb_bus``/``usb_address`` (pyusb look-up), ``port`` (USB port path),
    #: ``tcp_host``/``tcp_port`` (TCP families), ``volume_label``; fallbacks only.
    #: Informative only (events): ``interfaces`` (class/subclass/protocol per interface,
    #: ``ff/ff/ff 08/06/50``), ``hwdb_vendor``/``hwdb_model`` (udev's database names)
    hints: Mapping[str, str] = field(default_factory=dict)
    #: opaque backend handle (udev device path, simulator folder); never interpreted
    details: Any = None


@dataclass(frozen=True)
class Probe:
    """What the read-only probe learnt, before any write."""

    family: str
    #: GA/T 947 IDCode (manufacturer + model code), where the family has one
    idcode: str | None = None
    product: str | None = None
    manufacturer: str | None = None
    usb_serial: str | None = None
    #: the storage state a device advertises before the switch (BC+ serials
    #: ``<sn>_<0/1>``), None where unknown
    storage_ready: bool | None = None
    #: the family's own answer to the probe, for the event log
    detail: str = ""


@dataclass(frozen=True)
class StorageSwitch:
    """What ``enter_storage`` tells the session to expect on the same slot."""

    #: seconds the device usually needs to come back as storage
    settle_s: float
    #: the storage side's ids, where the profile knows them
    storage_ids: UsbIds | None
    #: the volume label the storage must carry, where the family ties it to
    #: the identity (Ambarella ASCII: the @Gdv id)
    volume_label: str | None
    #: after this many seconds without a storage device, report it missing
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Identity:
    serial: str
    model: str | None = None
    officer: str | None = None
    unit: str | None = None
    officer_name: str | None = None
    battery_pct: int | None = None
    idcode: str | None = None


@dataclass(frozen=True)
class ClipRef:
    """A clip on a recorder volume. ``relpath`` is raw bytes (file names on
    recorders are often GBK, not UTF-8) relative to the volume root."""

    relpath: bytes
    size: int
    mtime_ns: int
    #: hard links to the file (st_nlink): above 1 it also lives elsewhere,
    #: possibly outside the volume (a Linux-formatted card); pulled, and said
    links: int = field(default=1, compare=False)

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


# -- errors -----------------------------------------------------------------

class DriverError(DockgateError):
    reason = "driver"

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        self.detail = message
        super().__init__(f"{device}: {message}" if device else message)

    def at(self, device: str) -> Self:
        """The same error, naming *device* (codecs raise without a name)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.device = device
        clone.args = (f"{device}: {self.detail}",)
        return clone


class NotRecognised(DriverError):
    reason = "not_recognised"


class NotProbed(DriverError):
    reason = "not_probed"

    def __init__(self, device: str, operation: str) -> None:
        super().__init__(device, f"{operation} refused: the read-only probe has not confirmed the device")


class WrongPassword(DriverError):
    reason = "wrong_password"

    def __init__(self, device: str) -> None:
        super().__init__(device, "admin password refused by the recorder")


class DeviceTimeout(DriverError):
    permanent = False
    reason = "timeout"


class DeviceGone(DriverError):
    permanent = False
    reason = "device_gone"
    #: the OS error behind it, when there was one (EACCES: no permission yet)
    errno: int | None = None


class MalformedReply(DriverError):
    reason = "malformed_reply"

    def __init__(self, device: str, command: str, why: str, raw: bytes = b"") -> None:
        self.command = command
        self.raw = raw
        super().__init__(device, f"malformed reply to {command}: {why}")


class CommandFailed(DriverError):
    """The device answered, and its answer is "failed"."""

    reason = "command_failed"

    def __init__(self, device: str, command: str, why: str, *, permanent: bool = True) -> None:
        self.command = command
        self.permanent = permanent
        super().__init__(device, f"{command} failed: {why}")


class StorageRefused(CommandFailed):
    """The recorder refused the storage switch for a reason its firmware
    documents (ZZX: a recording longer than the cut time, or video cut on);
    transient: it may accept once the officer stops recording."""

    reason = "storage_refused"

    def __init__(self, device: str, command: str, why: str) -> None:
        super().__init__(device, command, why, permanent=False)


class StorageMismatch(DriverError):
    reason = "storage_mismatch"


class VolumeError(DriverError):
    """The volume could not be read. Transient where the errno says the
    medium went away or is busy; permanent otherwise."""

    reason = "volume"
    _TRANSIENT = frozenset({_errno.EIO, _errno.ENODEV, _errno.ENXIO, _errno.ESTALE, _errno.EAGAIN,
                            _errno.ENOMEDIUM, _errno.ETIMEDOUT})

    def __init__(self, path: str, error: OSError) -> None:
        self.path = path
        self.errno = error.errno
        self.permanent = error.errno not in self._TRANSIENT
        super().__init__(path, error.strerror or str(error))


class UnsafeEntry(DriverError, UnsafePath):
    """A name on a recorder volume that must not be followed or opened (also
    an ``UnsafePath``, which the gateway already reports per clip)."""

    reason = "unsafe_path"

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        self.device = path
        self.detail = why
        Exception.__init__(self, f"{path}: {why}")


# -- the contract -----------------------------------------------------------

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
    def probe(self) -> Probe: ...

    @abc.abstractmethod
    def unlock(self, password: str | None) -> None: ...

    @abc.abstractmethod
    def identify(self) -> Identity: ...

    @abc.abstractmethod
    def read_clock(self) -> datetime | None: ...

    @abc.abstractmethod
    def set_clock(self, utc: datetime) -> bool: ...

    @abc.abstractmethod
    def enter_storage(self) -> StorageSwitch | None: ...

    @abc.abstractmethod
    def attach_storage(self, storage: DockedDevice) -> None: ...

    @abc.abstractmethod
    def list_clips(self, skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]: ...

    @abc.abstractmethod
    def open_clip(self, ref: ClipRef) -> BinaryIO: ...

    @abc.abstractmethod
    def delete_clip(self, ref: ClipRef) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook, plain storage holds nothing
        """Release the device. Default: nothing to release."""
