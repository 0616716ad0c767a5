"""The simulated DV16 recorder (reference §2G, source [I]): a disk that also
answers the JieLi vendor CDBs, byte for byte as ``USBJL.cpp`` sends them.

``handle_cdb(cdb, data_out, data_in_len) -> (status, data_in, sense)`` is the
whole surface, transport-free: the simulated ``SG_IO`` (``sgio_backend``)
calls it on the host, and a userspace bulk-only mass-storage gadget can call
it for every CBW (the guest test bed). Besides the vendor commands it
answers INQUIRY, TEST UNIT READY, READ CAPACITY(10), MODE SENSE(6) and
REQUEST SENSE; data commands on the medium (READ(10) and the like) are the
gadget's, served from its backing file. Anything else is CHECK CONDITION,
ILLEGAL REQUEST (05/20/00).

What the firmware enforces is what the source implies: nothing. The SDK
never sends a password; it reads the admin password (13) and compares on
the PC, so every vendor command is answered without a login. After each
vendor command the return status (14) says 0 (done) or 1 (refused: bad
length, bad clock, no SD card for the switch). A clock *read* (5 on fd 81)
is not in the source; it is answered only when ``device.toml`` says
``clock_read = true`` (the profile setting ``scsi.clock_read``).

Every CDB is recorded in ``cdbs`` (with its data-out) and, as a short name,
in ``log`` (``inquiry``, ``tur``, ``r02`` for a read of sub-command 2,
``w05`` for a write of 5).
"""

from __future__ import annotations

from drivers.base import DriverError
from drivers.codec import dv16_scsi as d
from drivers.codec import record
from drivers.sim.device import SimDevice
from drivers.sim.firmware_base import SimFirmware

_GOOD = (d.GOOD, b"", b"")
MODE_SENSE_6 = 0x1A
REQUEST_SENSE = 0x03
PREVENT_ALLOW = 0x1E


def _check(key: int, asc: int, ascq: int = 0) -> tuple[int, bytes, bytes]:
    return d.CHECK_CONDITION, b"", d.sense_data(key, asc, ascq)


class ScsiFirmware(SimFirmware):
    """A disk answering SCSI commands; the family's vendor commands in ``vendor``."""

    #: 512-byte blocks READ CAPACITY reports (a gadget sets its backing file's)
    capacity_blocks = 2 * 1024 * 1024

    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.cdbs: list[tuple[bytes, bytes]] = []
        self._last_sense = b""

    def inquiry(self) -> bytes:
        return d.inquiry_data(self.dev.scsi_vendor, self.dev.scsi_model)

    def handle_cdb(self, cdb: bytes, data_out: bytes, data_in_len: int) -> tuple[int, bytes, bytes]:
        """Status (00 GOOD, 02 CHECK CONDITION), data-in (at most
        *data_in_len* bytes) and sense data (empty unless CHECK CONDITION)."""
        with self.lock:
            self.cdbs.append((bytes(cdb), bytes(data_out)))
            status, data, sense = self._handle(bytes(cdb), bytes(data_out), data_in_len)
            if status != d.GOOD:
                self._last_sense = sense
            return status, data[:data_in_len], sense

    def _handle(self, cdb: bytes, data_out: bytes, n: int) -> tuple[int, bytes, bytes]:
        if not cdb:
            return _check(d.ILLEGAL_REQUEST, 0x20)
        op = cdb[0]
        if op == d.INQUIRY:
            self.log.append("inquiry")
            return d.GOOD, self.inquiry(), b""
        if op == d.TEST_UNIT_READY:
            self.log.append("tur")
            return _GOOD
        if op == d.READ_CAPACITY_10:
            self.log.append("read_capacity")
            return d.GOOD, d.read_capacity_data(self.capacity_blocks), b""
        if op == MODE_SENSE_6:
            self.log.append("mode_sense")
            return d.GOOD, bytes([3, 0, 0, 0]), b""  # no pages, not write-protected
        if op == REQUEST_SENSE:
            self.log.append("request_sense")
            sense, self._last_sense = self._last_sense or d.sense_data(0), b""
            return d.GOOD, sense, b""
        if op == PREVENT_ALLOW:
            self.log.append("prevent_allow")
            return _GOOD
        return self.vendor(cdb, data_out, n)

    def vendor(self, cdb: bytes, data_out: bytes, n: int) -> tuple[int, bytes, bytes]:
        self.log.append(f"{cdb[0]:02x}")
        return _check(d.ILLEGAL_REQUEST, 0x20)


class Dv16Firmware(ScsiFirmware):
    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.status = 0  # what sub-command 14 answers: the previous command's
        self.sd_card = dev.sd_card

    def vendor(self, cdb: bytes, data_out: bytes, n: int) -> tuple[int, bytes, bytes]:
        try:
            c = d.parse_cdb(cdb)
        except DriverError:
            self.log.append(f"{cdb[0]:02x}")
            return _check(d.ILLEGAL_REQUEST, 0x20)
        if not (c.is_read or c.is_write):
            self.log.append(f"{cdb[0]:02x}{cdb[1]:02x}")
            return _check(d.ILLEGAL_REQUEST, 0x20)
        self.log.append(f"{'r' if c.is_read else 'w'}{c.value:02d}")
        sub = {v: k for k, v in d.SUB.items()}.get(c.value)
        if sub is None:
            return _check(d.ILLEGAL_REQUEST, 0x24)  # invalid field in CDB
        if c.is_read:
            if sub == "return_status":
                return d.GOOD, self.status.to_bytes(4, "little"), b""
            data = self._read(sub)
            if data is None:
                return _check(d.ILLEGAL_REQUEST, 0x24)
            self.status = 0
            return d.GOOD, data.ljust(n, b"\0"), b""
        ok = self._write(sub, data_out[:c.length])
        if ok is None:
            return _check(d.ILLEGAL_REQUEST, 0x24)
        self.status = 0 if ok else 1
        return _GOOD

    def _read(self, sub: str) -> bytes | None:
        dev = self.dev
        if sub == "idcode":
            return (dev.idcode or "ABCDE").encode("ascii")[:6].ljust(6, b"\0")
        if sub == "read_record":
            return record.pack(self.record(), d.RECORD, "gbk")
        if sub == "admin_password":
            return d.password_payload(dev.password)
        if sub == "battery":
            return dev.battery_pct.to_bytes(4, "little")
        if sub == "resolution":
            return (1920).to_bytes(4, "little") + (1080).to_bytes(4, "little")
        if sub == "sd_status":
            return (1 if self.sd_card else 0).to_bytes(4, "little")
        if sub == "set_clock" and dev.clock_read:
            return d.clock_payload(self.clock.now_local())
        return None

    def _write(self, sub: str, data: bytes) -> bool | None:
        if sub == "init":
            return True
        if sub == "set_clock":
            try:
                self.clock.set_local(d.parse_clock(data))
            except DriverError:
                return False
            return True
        if sub == "storage":
            if not self.sd_card:
                return False
            self.enter_storage()
            return True
        if sub in ("write_record", "set_password", "set_idcode", "write_all"):
            return False  # a dock never writes these: refused, so a test sees one that does
        return None
