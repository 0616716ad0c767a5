"""Protocol family registry: profile ``protocol`` -> driver class, imported
lazily so a station without pyusb installed can still serve plain storage."""

from __future__ import annotations

import importlib

from drivers.base import DockedDevice, Recorder
from drivers.profiles import Profile, ProfileError

_FAMILIES = {
    "ums": "drivers.ums:UmsRecorder",
    "zfy": "drivers.zfy:ZfyRecorder",
    "zfy-serial": "drivers.zfy:ZfySerialRecorder",
    "amba": "drivers.amba:AmbaRecorder",
}


def open_recorder(device: DockedDevice, profile: Profile) -> Recorder:
    target = _FAMILIES.get(profile.protocol)
    if target is None:
        raise ProfileError(profile.source, [f"protocol {profile.protocol!r} has no driver yet"])
    module, _, cls_name = target.partition(":")
    cls: type[Recorder] = getattr(importlib.import_module(module), cls_name)
    recorder = cls(device, profile)
    rate = getattr(device.details, "link_rate", 0) if device.source == "sim" else 0
    if rate:
        from drivers.sim.link import SimLink

        recorder = SimLink(recorder, rate)
    return recorder
