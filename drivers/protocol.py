"""What every command-speaking family shares: the guard that no write goes
out before the read-only probe confirmed the device, the pause between
commands, naming the device in codec errors, and the storage switch."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from drivers.base import (
    DockedDevice,
    DriverError,
    Identity,
    NotProbed,
    NotRecognised,
    Probe,
    StorageMismatch,
    StorageSwitch,
)
from drivers.codec.record import OfficerRecord
from drivers.massstorage import VolumeRecorder
from drivers.profiles import Profile

V = TypeVar("V", int, str)
T = TypeVar("T")


class _Link(Protocol):
    def close(self) -> None: ...


def commands(profile: Profile, defaults: Mapping[str, V]) -> dict[str, V]:
    """The family's command table with the profile's overrides (checked when
    the profile was loaded: names and code types are the family's)."""
    out = dict(defaults)
    for name, code in profile.commands.items():
        if name in out and isinstance(code, type(out[name])):
            out[name] = code
    return out


class ProtocolRecorder(VolumeRecorder):
    """A recorder with a vendor command interface in front of its storage."""

    #: the command interface (USB or TCP), opened on first use
    link: _Link | None = None

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.tz = ZoneInfo(profile.clock.timezone)
        self._probe: Probe | None = None
        self._switched = False
        self._last_command = 0.0
        #: the id the storage volume must be labelled with (label rule "device-id")
        self._device_id: str | None = None

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    # -- identity -------------------------------------------------------------
    def _optional(self, read: Callable[[], T]) -> T | None:
        """A reading no dock should fail on (the battery): None when the device
        refuses or garbles it; a device that went away still fails."""
        try:
            with self._named():
                return read()
        except DriverError as e:
            if not e.permanent:
                raise
            return None

    def _identity(self, rec: OfficerRecord, battery: int | None) -> Identity:
        return Identity(serial=rec.serial, model=self.profile.model or None, officer=rec.officer or None,
                        unit=rec.unit_name or rec.unit_no or None, officer_name=rec.officer_name or None,
                        battery_pct=battery, idcode=self._probe.idcode if self._probe else None)

    # -- guards ---------------------------------------------------------------
    def _require_probe(self, operation: str) -> None:
        if self._probe is None:
            raise NotProbed(self.label, operation)

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """Codec errors carry no device name: add ours."""
        try:
            yield
        except DriverError as e:
            if e.device:
                raise
            raise e.at(self.label) from None

    @contextlib.contextmanager
    def _probing(self) -> Iterator[None]:
        """During the probe, an answer in another family's shape means this is
        not the device the profile says: NotRecognised, permanent. Silence or
        a gone device stay transient."""
        try:
            with self._named():
                yield
        except DriverError as e:
            if not e.permanent or e.reason == "not_recognised":
                raise
            raise NotRecognised(self.label, f"probe answer is not {self.family}'s: {e.detail}") from None

    def _pace(self) -> None:
        """The profile's pause between two commands."""
        delay = self.profile.timing.delay_ms / 1000
        if delay:
            wait = self._last_command + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_command = time.monotonic()

    def _confirm(self, probe: Probe) -> Probe:
        want = self.profile.probe.idcode
        if want is not None and (probe.idcode is None or re.fullmatch(want, probe.idcode) is None):
            raise NotRecognised(self.label, f"IDCode {probe.idcode!r} is not the profile's ({want})")
        self._probe = probe
        return probe

    # -- clock helpers --------------------------------------------------------
    def _local(self, utc: datetime) -> datetime:
        """The recorder's local wall time (naive) for a UTC instant."""
        return utc.astimezone(self.tz).replace(tzinfo=None)

    def _utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    # -- the switch -----------------------------------------------------------
    def _switch(self) -> StorageSwitch:
        self._switched = True
        s = self.profile.storage
        label = self._device_id if s.label == "device-id" else None
        return StorageSwitch(settle_s=s.settle_s, storage_ids=s.ids, volume_label=label, timeout_s=s.timeout_s)

    def attach_storage(self, storage: DockedDevice) -> None:
        want = self._device_id if self.profile.storage.label == "device-id" else None
        got = storage.hints.get("volume_label")
        if want is not None and got is not None and got.casefold() != want.casefold():
            raise StorageMismatch(self.label, f"volume label {got!r} is not this recorder's {want!r}")
        super().attach_storage(storage)
