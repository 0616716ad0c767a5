"""The JieLi "DV16" family (reference §2G, source [I]): a recorder that is a
disk from the start and takes 16-byte vendor CDBs through it (``SG_IO``,
``drivers/sgio.py``).

The dock, in the SDK's order:

* ``probe``: INQUIRY and nothing else (a standard, read-only command every
  disk answers). A disk whose vendor + product text (``inquiry_key``) is not
  the profile's is ``NotRecognised`` and is sent no vendor CDB at all.
* ``unlock``: the SDK's ``GetJL_Password``: read the admin password (13) in
  clear and compare it **on the station** (``hmac.compare_digest``). No
  password ever goes to the device. A mismatch is ``WrongPassword``; every
  later command refuses until a password matched.
* ``identify``: init (1, as ``Init_Device``), IDCode (2), the 89-byte officer
  record (3), battery (8, optional), each followed by the return status (14)
  as the SDK reads it.
* the clock: set (5) in local time. The SDK has no clock read, so drift is
  not measured unless the profile opts into reading 5 (``scsi.clock_read``).
* ``enter_storage``: per ``scsi.storage_switch``: ``msdc`` as ``SetMSDC``
  (SD status 12 non-zero, else refused; then 6) and wait until the disk
  answers TEST UNIT READY; ``none``: nothing to send. Either way the clips
  are on the same disk, already mounted: the volume detection reported.
"""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import datetime

from drivers.base import (
    CommandFailed,
    DeviceGone,
    DockedDevice,
    DriverError,
    Identity,
    MalformedReply,
    NotRecognised,
    Probe,
    StorageMismatch,
    StorageSwitch,
    WrongPassword,
)
from drivers.codec import dv16_scsi, record
from drivers.profiles import Profile
from drivers.protocol import ProtocolRecorder, commands
from drivers.sgio import KERNEL, SgBackend, SgLink


def backend_for(device: DockedDevice) -> SgBackend:
    """The kernel, or the simulator's stand-in at the ioctl for a simulated disk."""
    if device.source == "sim":
        from drivers.sim.sgio_backend import SIM_SG

        return SIM_SG
    return KERNEL


#: between two TEST UNIT READYs while the card comes up after the switch
READY_POLL_S = 0.1


class Dv16ScsiRecorder(ProtocolRecorder):
    family = "dv16-scsi"

    def __init__(self, device: DockedDevice, profile: Profile) -> None:
        super().__init__(device, profile)
        self.subs = commands(profile, dv16_scsi.SUB)
        r, d = profile.record, dv16_scsi.RECORD
        self.layout = record.Layout(r.size or d.size, r.offsets or d.offsets, r.widths or d.widths)
        self.link: SgLink | None = None
        self._unlocked = False
        self._idcode: str | None = None

    # -- the wire -----------------------------------------------------------------
    def _link(self) -> SgLink:
        if self.link is None:
            node = self.device.hints.get("scsi_node")
            if not node:
                raise DeviceGone(self.label, "detection named no SCSI node (sg or block) for this disk yet")
            s = self.profile.scsi
            self.link = SgLink(node, self.label, backend_for(self.device), s.timeout_in_ms, s.timeout_out_ms)
        return self.link

    def _read(self, name: str, length: int | None = None) -> bytes:
        n = dv16_scsi.LENGTH[name] if length is None else length
        self._pace()
        data = self._link().read(dv16_scsi.read_cdb(name, n, self.subs[name]), n, name)
        if len(data) != n:
            raise MalformedReply("", name, f"{len(data)} bytes of {n}", data)
        return data

    def _write(self, name: str, data: bytes = b"") -> None:
        self._pace()
        self._link().write(dv16_scsi.write_cdb(name, len(data), self.subs[name]), data, name)

    def _checked(self, name: str) -> None:
        """The return status (14) the SDK reads after *name*."""
        dv16_scsi.check_status(self._read("return_status"), name)

    def _require_unlock(self, operation: str) -> None:
        self._require_probe(operation)
        if not self._unlocked:
            raise CommandFailed(self.label, operation, "the admin password was not checked")

    # -- the contract ---------------------------------------------------------------
    def probe(self) -> Probe:
        with self._probing():
            raw = self._link().read(dv16_scsi.inquiry_cdb(), dv16_scsi.INQUIRY_LEN, "inquiry")
            inq = dv16_scsi.parse_inquiry(raw)
        want = self.profile.scsi.inquiry_key
        if inq.key != want:
            raise NotRecognised(self.label, f"INQUIRY {inq.vendor!r} {inq.product!r} is not {want!r}; "
                                            "no vendor command sent")
        self._probe = Probe(self.family, product=inq.product, manufacturer=inq.vendor,
                            usb_serial=self.device.ids.serial,
                            detail=f"INQUIRY {inq.vendor}|{inq.product}|{inq.revision}")
        return self._probe

    def unlock(self, password: str | None) -> None:
        self._require_probe("password check")
        with self._named():
            device_password = dv16_scsi.parse_password(self._read("admin_password"))
        if not dv16_scsi.password_matches(device_password, password or "", self.profile.password.encoding):
            raise WrongPassword(self.label)
        self._unlocked = True

    def identify(self) -> Identity:
        self._require_unlock("identify")
        with self._named():
            self._write("init")
            code = dv16_scsi.parse_idcode(self._read("idcode"))
            self._checked("idcode")
            want = self.profile.probe.idcode
            if want is not None and re.fullmatch(want, code) is None:
                raise NotRecognised(self.label, f"IDCode {code!r} is not the profile's ({want})")
            self._idcode = code
            payload = self._read("read_record", self.layout.size)
            self._checked("read_record")
            rec = record.unpack(payload, self.layout, self.profile.record.encoding)

        def battery() -> int:
            value = dv16_scsi.parse_battery(self._read("battery"))
            self._checked("battery")
            return value

        return dataclasses.replace(self._identity(rec, self._optional(battery)), idcode=code)

    def read_clock(self) -> datetime | None:
        if not self.profile.scsi.clock_read:
            return None  # the SDK has no clock read
        self._require_unlock("read clock")
        with self._named():
            local = dv16_scsi.parse_clock(self._read("set_clock", self.profile.scsi.clock_size))
        return self._utc(local)

    def set_clock(self, utc: datetime) -> bool:
        self._require_probe("set clock")
        if not self.profile.clock.set:
            return False
        self._require_unlock("set clock")
        with self._named():
            self._write("set_clock", dv16_scsi.clock_payload(self._local(utc), self.profile.scsi.clock_size))
            self._checked("set_clock")
        return True

    def enter_storage(self) -> StorageSwitch | None:
        self._require_probe("enter storage")
        self._require_unlock("enter storage")
        if self.device.volume is None:
            raise StorageMismatch(self.label, "the disk has no mounted volume")
        if self.profile.scsi.storage_switch == "msdc":
            with self._named():
                if not dv16_scsi.parse_sd_status(self._read("sd_status")):
                    raise CommandFailed(self.label, "storage", "no SD card in the recorder (SD status 0)")
                self._write("storage")
                self._wait_ready()
        self._volume_path = self.device.volume
        return None  # the clips are on this same disk

    def _wait_ready(self) -> None:
        """TEST UNIT READY until the card answers (NOT READY and UNIT
        ATTENTION are what a disk says while its medium changes)."""
        deadline = time.monotonic() + self.profile.storage.timeout_s
        while True:
            try:
                self._link().execute(bytes(6), "test unit ready")
                return
            except DriverError as e:
                if e.permanent or time.monotonic() > deadline:
                    raise
            time.sleep(READY_POLL_S)
