"""USB identity of a device, shared by the driver contract and the profiles
(kept apart so that ``drivers.base`` and ``drivers.profiles`` need not import
each other)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UsbIds:
    vid: int
    pid: int
    serial: str | None = None
    product: str | None = None
    manufacturer: str | None = None

    @property
    def vidpid(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"

    def __str__(self) -> str:
        return self.vidpid + (f" serial={self.serial}" if self.serial else "")

    def describe(self) -> str:
        """VID:PID with the strings a profile matches on, as ``lsusb -v`` shows
        them: ``4255:0001 manufacturer 'Ambarella' product 'AMBA' serial 'A1'``."""
        return " ".join([self.vidpid] + [f"{k} {v!r}" for k, v in (
            ("manufacturer", self.manufacturer), ("product", self.product), ("serial", self.serial))
            if v is not None])
