"""Recorders whose clips are read from a mass-storage volume: every family.
The protocol families differ only in how they reach it (``enter_storage``
and the re-enumerated device handed to ``attach_storage``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from drivers.base import ClipRef, DockedDevice, Recorder, Skipped, StorageMismatch
from drivers.volume import Volume


class VolumeRecorder(Recorder):
    _volume_path: Path | None = None

    def attach_storage(self, storage: DockedDevice) -> None:
        if storage.volume is None:
            raise StorageMismatch(self.label, f"storage device {storage.ids} on slot {storage.slot} has no volume")
        self._volume_path = storage.volume

    def _volume(self) -> Volume:
        if self._volume_path is None:
            raise StorageMismatch(self.label, "storage is not reachable yet (enter_storage, then attach_storage)")
        return Volume(self._volume_path, self.profile.clips.include, self.profile.clips.exclude)

    def list_clips(self, skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]:
        return self._volume().walk(skipped)

    def open_clip(self, ref: ClipRef) -> BinaryIO:
        return self._volume().open(ref.relpath)

    def delete_clip(self, ref: ClipRef) -> None:
        self._volume().delete(ref.relpath, expect=(ref.size, ref.mtime_ns))
