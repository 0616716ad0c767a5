"""Each family's command codes by name: the defaults a profile's
``[commands]`` table may override. Pure data, shared by the codecs (which
use them) and the profiles (which check an override names a real command)."""

from __future__ import annotations

AMBA_CTRL: dict[str, int] = {"login": 0x12, "storage": 0x23}
ZFY_CTRL: dict[str, int] = {
    "login_admin": 0x10, "login_user": 0x11, "idcode": 0x20, "read_record": 0x30, "write_record": 0x31,
    "set_clock": 0x41, "storage": 0x51, "resolution": 0x60, "battery": 0x70,
    "set_user_password": 0xA1, "set_admin_password": 0xA2,
}
BC_TEXT: dict[str, str] = {
    "idcode": "GBIDCODE?", "login": "LOGIN", "read_record": "GBCFG?", "set_clock": "SYSTIME",
    "read_clock": "SYSTIME?", "battery": "BATVAL?", "video": "MVEINFO?", "storage": "UDISKEN=1",
    "storage_state": "PCUDISKSTAT?", "logout": "LOGOUT",
}
E12_TCP: dict[str, str] = {
    "ping": "F808", "init": "S001", "release": "S002", "set_clock": "S003", "read_record": "S004",
    "write_record": "S005", "resolution": "S006", "battery": "S007", "storage": "S008", "idcode": "S009",
    "admin_password": "S010", "user_password": "S011", "read_clock": "N030",
}
ZZX_JSON: dict[str, int] = {
    "init": 1, "idcode": 2, "read_record": 3, "write_record": 4, "set_clock": 5, "storage": 6,
    "resolution": 7, "battery": 8, "read_clock": 16, "disk": 18,
}
#: DV16: the sub-command (CDB bytes 2-5) of fd 81 reads and fb 82 writes (USB_CMD in USBJL.h)
DV16_SCSI: dict[str, int] = {
    "init": 1, "idcode": 2, "read_record": 3, "write_record": 4, "set_clock": 5, "storage": 6,
    "resolution": 7, "battery": 8, "write_all": 9, "set_password": 10, "set_idcode": 11,
    "sd_status": 12, "admin_password": 13, "return_status": 14,
}

#: protocol -> its command table (families without one take no overrides)
COMMANDS: dict[str, dict[str, int] | dict[str, str]] = {
    "amba-ctrl": AMBA_CTRL, "zfy-ctrl": ZFY_CTRL, "bc-text": BC_TEXT, "e12-tcp": E12_TCP, "zzx-json": ZZX_JSON,
    "dv16-scsi": DV16_SCSI,
}
