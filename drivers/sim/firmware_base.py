"""The part every simulated recorder firmware shares, whatever its protocol
family: the recorder's own clock (``SimClock``, kept ``clock_offset_s`` away from
true time, local time being UTC+8), the state of one recorder's command interface
(``SimFirmware``: login, the storage switch and its ``on_switch`` call, the log of
commands seen), the USB surface the simulated backend drives (``UsbFirmware``,
which stalls whatever a family does not override) and ``SimStall``, the stall a
USB family answers with. It knows no family's frames and imports no family's
module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from drivers.codec import ControlSetup, record
from drivers.sim.device import SimDevice

LOCAL = timezone(timedelta(hours=8))  # recorders keep local (Beijing) time
#: a simulated recorder leaves the bus at the latest this long after the switch
LEAVE_AFTER_S = 1.0


class SimStall(Exception):
    """The device stalls the request (EPIPE on the host)."""


class SimClock:
    def __init__(self, offset_s: float) -> None:
        self.offset = timedelta(seconds=offset_s)

    def now_utc(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def now_local(self) -> datetime:
        return self.now_utc().astimezone(LOCAL).replace(tzinfo=None)

    def set_utc(self, t: datetime) -> None:
        self.offset = t - datetime.now(UTC)

    def set_local(self, local: datetime) -> None:
        self.set_utc(local.replace(tzinfo=LOCAL))


class SimFirmware:
    def __init__(self, dev: SimDevice) -> None:
        self.dev = dev
        self.clock = SimClock(dev.clock_offset_s)
        self.logged_in = False
        self.switched = threading.Event()
        self.lock = threading.Lock()
        self.log: list[str] = []  # commands seen, for tests
        #: called once when the firmware accepted the storage switch
        self.on_switch: Callable[[], None] | None = None

    def enter_storage(self) -> None:
        if not self.switched.is_set():
            self.switched.set()
            if self.on_switch is not None:
                self.on_switch()

    def record(self) -> record.OfficerRecord:
        d = self.dev
        return record.OfficerRecord(d.serial, d.officer, d.officer_name, d.unit_no, d.unit)


class UsbFirmware(SimFirmware):
    #: per interface number: (class, endpoint addresses)
    interfaces: list[tuple[int, tuple[int, ...]]] = [(0xFF, (0x01, 0x81))]

    def control_out(self, setup: ControlSetup, data: bytes) -> None:
        raise SimStall

    def control_in(self, setup: ControlSetup) -> bytes:
        raise SimStall

    def bulk_out(self, ep: int, data: bytes) -> None:
        raise SimStall

    def bulk_in(self, ep: int, size: int) -> bytes | None:
        """Pending reply bytes, or None: the read times out."""
        return None

    def pending(self) -> bool:
        return False
