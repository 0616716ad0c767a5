"""Plain USB mass storage: the recorder is a volume and nothing else.

No authentication and no clock access; identity comes from the USB serial,
whatever detection read from the device and the profile's file-name rule
where a source gives one (the shipped profile has none).
The volume is there from the start: ``enter_storage`` has nothing to do.
"""

from __future__ import annotations

from datetime import datetime

from drivers.base import DockedDevice, Identity, Probe, StorageSwitch
from drivers.massstorage import VolumeRecorder
from drivers.profiles import Profile


class UmsRecorder(VolumeRecorder):
    family = "ums"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self._volume_path = device.volume

    def probe(self) -> Probe:
        ids = self.device.ids
        return Probe(self.family, product=ids.product, manufacturer=ids.manufacturer, usb_serial=ids.serial,
                     storage_ready=self.device.volume is not None, detail="mass storage")

    def unlock(self, password: str | None) -> None:
        return None

    def identify(self) -> Identity:
        hints = self.device.hints
        serial = self.device.ids.serial or hints.get("serial") or "unknown"
        # no officer record on the device: detection's hint, else the session
        # applies the profile's naming rule (if any) once it has listed the clips
        return Identity(serial=serial, model=hints.get("model") or self.profile.model or None,
                        officer=hints.get("officer"), unit=hints.get("unit"),
                        officer_name=hints.get("officer_name"))

    def read_clock(self) -> datetime | None:
        return None

    def set_clock(self, utc: datetime) -> bool:
        return False

    def enter_storage(self) -> StorageSwitch | None:
        return None
