"""Recorders whose clips are read from a mass-storage volume (all families:
the protocol families only differ in how they unlock and identify)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from drivers.base import ClipRef, DeviceGone, DeviceTimeout, Recorder, Skipped
from drivers.volume import Volume

VOLUME_TIMEOUT_S = 15.0


class VolumeRecorder(Recorder):
    _volume_path: Path | None = None

    def _attach_volume(self, timeout: float = VOLUME_TIMEOUT_S) -> Path:
        """Find the storage the device exposes (after unlocking, where needed)."""
        path = self.device.volume
        if path is None and self.device.locate_volume is not None:
            path = self.device.locate_volume(timeout)
            if path is None:
                raise DeviceTimeout(self.label, f"storage did not appear within {timeout:.0f}s")
        if path is None:
            raise DeviceGone(self.label, "no mass-storage volume")
        self._volume_path = path
        return path

    def _volume(self) -> Volume:
        if self._volume_path is None:
            raise DeviceGone(self.label, "storage is not unlocked")
        return Volume(self._volume_path, self.profile.clips.include, self.profile.clips.exclude)

    def list_clips(self, skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]:
        return self._volume().walk(skipped)

    def open_clip(self, ref: ClipRef) -> BinaryIO:
        return self._volume().open(ref.relpath)

    def delete_clip(self, ref: ClipRef) -> None:
        self._volume().delete(ref.relpath, expect=(ref.size, ref.mtime_ns))
