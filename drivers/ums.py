"""Plain USB mass storage: the recorder is a volume and nothing else.

No authentication and no clock access; identity comes from the USB serial,
the profile's file-name patterns and whatever detection read from the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO

from drivers.base import ClipRef, DeviceGone, Identity, Recorder, Skipped
from drivers.volume import Volume


class UmsRecorder(Recorder):
    family = "ums"

    def _volume(self) -> Volume:
        if self.device.volume is None:
            raise DeviceGone(self.label, "no mass-storage volume is mounted")
        return Volume(self.device.volume, self.profile.clips.include, self.profile.clips.exclude)

    def unlock(self, password: str | None) -> None:
        self._volume()

    def identify(self) -> Identity:
        hints = self.device.hints
        serial = self.device.ids.serial or hints.get("serial") or "unknown"
        officer = hints.get("officer")
        if officer is None:
            for ref in self._volume().walk(lambda s: None):
                officer = self.profile.officer_from_name(ref.name)
                if officer:
                    break
        return Identity(serial=serial, model=hints.get("model") or self.profile.model or None,
                        officer=officer, unit=hints.get("unit"),
                        officer_name=hints.get("officer_name"))

    def read_clock(self) -> datetime | None:
        return None

    def set_clock(self, utc: datetime) -> bool:
        return False

    def list_clips(self, skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]:
        return self._volume().walk(skipped)

    def open_clip(self, ref: ClipRef) -> BinaryIO:
        return self._volume().open(ref.relpath)

    def delete_clip(self, ref: ClipRef) -> None:
        self._volume().delete(ref.relpath)
