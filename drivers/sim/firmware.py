"""Simulated recorder firmware: the registry of one class per real protocol
family (``FIRMWARE``, protocol name -> class), and the one import place for the
simulator's firmware names. The classes live by transport: what all families
share in ``firmware_base``, the USB control-transfer families (A, C) in
``firmware_usb_control``, the USB bulk-text families (B, D) in
``firmware_usb_bulk``, the TCP families (E, F) in ``firmware_tcp``, the
vendor-SCSI disk (DV16) in ``firmware_scsi``; this module
imports them and none of them imports it. What every family does, and no more
than the reference says a real one puts on the wire and enforces:

* The read-only probe (IDCode, ``@Ver``, ``GBIDCODE?``, ping) answers
  without a login; everything else that needs one is refused until the
  password was accepted, with the family's documented error reply (A: byte 2
  != 01; C: status 00; D: an ``Error:`` line; F: ``{"password":"false"}``; E
  checks no password at all).
* The recorder keeps its own clock, ``clock_offset_s`` away from true time,
  in local time (UTC+8) where the family speaks local time.
* "Enter storage" is the last thing it answers: the command interface then
  leaves (the USB device drops off the bus once its reply was read; the TCP
  server closes), and ``on_switch`` tells the dock to bring up the storage
  device after the settle time.
* Frames of another family are not answered (silence: the caller times out)
  or stalled (control transfers), never guessed at.

The firmware is transport-free: the simulated USB backend and the TCP server
feed it transfers and return its replies.
"""

from __future__ import annotations

from drivers.sim.firmware_base import LEAVE_AFTER_S, LOCAL, SimClock, SimFirmware, SimStall, UsbFirmware
from drivers.sim.firmware_scsi import Dv16Firmware, ScsiFirmware
from drivers.sim.firmware_tcp import E12Firmware, TcpFirmware, ZzxFirmware
from drivers.sim.firmware_usb_bulk import AmbaAsciiFirmware, BcTextFirmware
from drivers.sim.firmware_usb_control import AmbaCtrlFirmware, ZfyCtrlFirmware

__all__ = [
    "FIRMWARE",
    "LEAVE_AFTER_S",
    "LOCAL",
    "AmbaAsciiFirmware",
    "AmbaCtrlFirmware",
    "BcTextFirmware",
    "Dv16Firmware",
    "E12Firmware",
    "ScsiFirmware",
    "SimClock",
    "SimFirmware",
    "SimStall",
    "TcpFirmware",
    "UsbFirmware",
    "ZfyCtrlFirmware",
    "ZzxFirmware",
]


#: protocol -> firmware class (every family but plain storage)
FIRMWARE: dict[str, type[SimFirmware]] = {
    "amba-ctrl": AmbaCtrlFirmware,
    "amba-ascii": AmbaAsciiFirmware,
    "zfy-ctrl": ZfyCtrlFirmware,
    "bc-text": BcTextFirmware,
    "e12-tcp": E12Firmware,
    "zzx-json": ZzxFirmware,
    "dv16-scsi": Dv16Firmware,
}
