"""The protocol family table: profile ``protocol`` -> driver class, imported
lazily so a station without pyusb installed can still serve plain storage.
Every name in ``drivers.PROTOCOLS`` has exactly one entry here; the
shared driver suite and the simulator iterate over this table."""

from __future__ import annotations

import importlib

from drivers import PROTOCOLS
from drivers.base import DockedDevice, Recorder
from drivers.profiles import Profile, ProfileError

#: protocol -> "module:class"
FAMILIES: dict[str, str] = {
    "ums": "drivers.ums:UmsRecorder",
    "amba-ctrl": "drivers.amba_ctrl:AmbaCtrlRecorder",
    "amba-ascii": "drivers.amba_ascii:AmbaAsciiRecorder",
    "zfy-ctrl": "drivers.zfy_ctrl:ZfyCtrlRecorder",
    "bc-text": "drivers.bc_text:BcTextRecorder",
    "e12-tcp": "drivers.e12_tcp:E12TcpRecorder",
    "zzx-json": "drivers.zzx_json:ZzxJsonRecorder",
    "dv16-scsi": "drivers.dv16_scsi:Dv16ScsiRecorder",
}
assert tuple(FAMILIES) == PROTOCOLS, "drivers.families and drivers.PROTOCOLS disagree"


def driver_class(protocol: str) -> type[Recorder]:
    target = FAMILIES.get(protocol)
    if target is None:
        raise ProfileError(protocol, [f"protocol {protocol!r} has no driver"])
    module, _, cls_name = target.partition(":")
    cls: type[Recorder] = getattr(importlib.import_module(module), cls_name)
    return cls


def open_recorder(device: DockedDevice, profile: Profile) -> Recorder:
    """The driver for *device*; nothing is sent to the device yet (the first
    transfer is ``probe``'s)."""
    recorder = driver_class(profile.protocol)(device, profile)
    rate = getattr(device.details, "link_rate", 0) if device.source == "sim" else 0
    if rate:
        from drivers.sim.link import SimLink

        recorder = SimLink(recorder, rate)
    return recorder
