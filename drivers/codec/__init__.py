"""Wire codecs, one module per real protocol family: pure functions from
values to the bytes a recorder expects and from its bytes back to values.
No I/O here. Failures are the driver contract's typed errors, raised without
a device name; the driver adds it (``DriverError.at``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ControlSetup:
    """The setup fields of a USB control transfer, as usbmon shows them."""

    request_type: int
    request: int
    value: int
    index: int
    length: int

    @property
    def is_in(self) -> bool:
        return bool(self.request_type & 0x80)

    def __str__(self) -> str:
        return (f"{self.request_type:02x} {self.request:02x} {self.value:04x} "
                f"{self.index:04x} {self.length:04x}")
