"""A simulated USB link: reads at the speed device.toml's ``link_rate`` says,
so that tests and the demo can watch (and interrupt) a pull in progress."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO

from drivers.base import ClipRef, DockedDevice, Identity, Probe, Recorder, Skipped, StorageSwitch


class _Throttled(io.RawIOBase):
    def __init__(self, inner: BinaryIO, rate: int) -> None:
        self._inner = inner
        self._rate = rate
        self._start = time.monotonic()
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        # a USB bulk pipe hands over at most ~1 MiB per transfer
        view = memoryview(b)[: 1 << 20]
        n = self._inner.readinto(view)  # type: ignore[attr-defined]
        if n:
            self._done += n
            ahead = self._done / self._rate - (time.monotonic() - self._start)
            if ahead > 0:
                time.sleep(ahead)
        return int(n or 0)

    def fileno(self) -> int:
        return self._inner.fileno()

    def close(self) -> None:
        self._inner.close()
        super().close()


class SimLink(Recorder):
    """Delegates to the real family driver; only the byte rate is simulated."""

    def __init__(self, inner: Recorder, rate: int) -> None:
        super().__init__(inner.device, inner.profile)
        self.family = inner.family
        self._inner = inner
        self._rate = rate

    def probe(self) -> Probe:
        return self._inner.probe()

    def enter_storage(self) -> StorageSwitch | None:
        return self._inner.enter_storage()

    def attach_storage(self, storage: DockedDevice) -> None:
        self._inner.attach_storage(storage)

    def unlock(self, password: str | None) -> None:
        self._inner.unlock(password)

    def identify(self) -> Identity:
        return self._inner.identify()

    def read_clock(self) -> datetime | None:
        return self._inner.read_clock()

    def set_clock(self, utc: datetime) -> bool:
        return self._inner.set_clock(utc)

    def list_clips(self, skipped: Callable[[Skipped], None]) -> Iterator[ClipRef]:
        return self._inner.list_clips(skipped)

    def open_clip(self, ref: ClipRef) -> BinaryIO:
        return _Throttled(self._inner.open_clip(ref), self._rate)  # type: ignore[return-value]

    def delete_clip(self, ref: ClipRef) -> None:
        self._inner.delete_clip(ref)

    def close(self) -> None:
        self._inner.close()
