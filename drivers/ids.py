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
    #: SCSI INQUIRY vendor and product of a disk (udev ID_VENDOR/ID_MODEL of the
    #: block device, sysfs ``vendor``/``model``); None for devices that are no disk
    scsi_vendor: str | None = None
    scsi_model: str | None = None

    @property
    def inquiry(self) -> str | None:
        """The INQUIRY text as a profile's ``inquiry`` regex sees it (``inquiry_key``)."""
        if self.scsi_vendor is None and self.scsi_model is None:
            return None
        return inquiry_key(self.scsi_vendor or "", self.scsi_model or "")

    @property
    def vidpid(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"

    def __str__(self) -> str:
        return self.vidpid + (f" serial={self.serial}" if self.serial else "")

    def describe(self) -> str:
        """VID:PID with the strings a profile matches on, as ``lsusb -v`` shows
        them: ``4255:0001 manufacturer 'Ambarella' product 'AMBA' serial 'A1'``."""
        return " ".join([self.vidpid] + [f"{k} {v!r}" for k, v in (
            ("manufacturer", self.manufacturer), ("product", self.product), ("serial", self.serial),
            ("inquiry", None if self.inquiry is None else f"{self.scsi_vendor or ''}|{self.scsi_model or ''}"))
            if v is not None])


def inquiry_key(vendor: str, product: str) -> str:
    """How the JieLi DV16 SDK compares a disk's INQUIRY text: vendor and
    product concatenated, lowercased, spaces removed (``dv16devicev1.00``)."""
    return (vendor + product).lower().replace(" ", "")
