"""The simulated USB families that speak over control transfers: A, Ambarella
control packets (``AmbaCtrlFirmware``), and C, GA/T 947 frames
(``ZfyCtrlFirmware``). Each takes a request in a vendor OUT transfer, keeps its one
reply for the IN transfer that follows, and stalls a setup packet or frame that is
not its family's.
"""

from __future__ import annotations

from drivers.base import DriverError
from drivers.codec import ControlSetup, amba_ctrl, record, zfy_ctrl
from drivers.sim.device import SimDevice
from drivers.sim.firmware_base import SimStall, UsbFirmware

# -- A: Ambarella control transfers ----------------------------------------------

class AmbaCtrlFirmware(UsbFirmware):
    interfaces = [(0xFF, (0x01, 0x81))]

    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.reply = b""

    def control_out(self, setup: ControlSetup, data: bytes) -> None:
        if setup.request_type != 0x40 or setup.request not in (0x55, 0x50) or setup.value != 0x0080:
            raise SimStall
        try:
            cmd, rest = amba_ctrl.parse_packet(data)
        except DriverError:
            raise SimStall from None
        with self.lock:
            self.log.append(f"{cmd:02x}")
            if cmd == amba_ctrl.LOGIN:
                self.logged_in = rest.rstrip(b"\0").decode("utf-8", "replace") == self.dev.password
                self.reply = bytes([0, 0, 1 if self.logged_in else 0]) + bytes(7)
            elif cmd == amba_ctrl.STORAGE and self.logged_in:
                self.reply = bytes(10)
                self.enter_storage()
            else:
                self.reply = bytes(10)

    def control_in(self, setup: ControlSetup) -> bytes:
        if setup.request_type != 0xC0 or setup.request != 0x55:
            raise SimStall
        with self.lock:
            out, self.reply = self.reply or bytes(10), b""
            return out[:setup.length]

    def pending(self) -> bool:
        return bool(self.reply)


# -- C: GA/T 947 frames over control transfers -------------------------------------------

class ZfyCtrlFirmware(UsbFirmware):
    interfaces = [(0xFF, (0x01, 0x81))]

    def __init__(self, dev: SimDevice) -> None:
        super().__init__(dev)
        self.reply = b""

    def control_out(self, setup: ControlSetup, data: bytes) -> None:
        if setup.request_type != 0x40 or setup.request != 0x55 or setup.value != 0x00AA:
            raise SimStall
        try:
            req = zfy_ctrl.parse_request(data)
        except DriverError:
            raise SimStall from None
        with self.lock:
            self.log.append(f"{req.cmd:02x}")
            ok, payload = self._handle(req)
            # a reply is as long as its request; a refused read carries zeros
            body = payload if ok else bytes(len(req.payload))
            self.reply = zfy_ctrl.reply(req.cmd, body.ljust(len(req.payload), b"\0")[:len(req.payload)], ok,
                                        req.cls)

    def _handle(self, req: zfy_ctrl.Request) -> tuple[bool, bytes]:
        c = zfy_ctrl.COMMANDS
        if req.cls != zfy_ctrl.CORE:
            return False, b""
        if req.cmd == c["idcode"]:
            return True, self.dev.idcode.encode("ascii")
        if req.cmd in (c["login_admin"], c["login_user"]):
            self.logged_in = req.payload.rstrip(b"\0").decode("ascii", "replace") == self.dev.password
            return self.logged_in, b""
        if not self.logged_in:
            return False, b""
        if req.cmd == c["read_record"]:
            return True, record.pack(self.record(), record.ZFY_CTRL, "gbk")
        if req.cmd == c["set_clock"]:
            try:
                local = zfy_ctrl.parse_clock(req.payload)
            except DriverError:
                return False, b""
            self.clock.set_local(local)
            return True, zfy_ctrl.clock_payload(self.clock.now_local())
        if req.cmd == c["battery"]:
            if not self.dev.battery_set:
                return False, b"\x00"  # unset: the failure status (its value is unknown, §4.3)
            return True, bytes([self.dev.battery_pct])
        if req.cmd == c["resolution"]:
            return True, b"\x01"
        if req.cmd == c["storage"]:
            self.enter_storage()
            return True, b""
        return False, b""

    def control_in(self, setup: ControlSetup) -> bytes:
        # the SDK reads with wValue 0x00aa, another tool with 0: both answered
        if setup.request_type != 0xC0 or setup.request != 0x55 or setup.value not in (0x00AA, 0):
            raise SimStall
        with self.lock:
            out, self.reply = self.reply, b""
            return out[:setup.length]

    def pending(self) -> bool:
        return bool(self.reply)
