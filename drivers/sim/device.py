"""A simulated recorder: a folder with ``device.toml`` and ``storage/``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.profiles import Protocol
from gateway.errors import DockgateError, describe_validation


class SimDeviceError(DockgateError):
    reason = "sim_device"

    def __init__(self, folder: Path, problem: str) -> None:
        self.folder = folder
        super().__init__(f"simulated recorder {folder}: {problem}")


class SimDevice(BaseModel):
    """``device.toml``: what the simulated recorder is and holds. Left-out USB
    ids, product string and storage side come from the family's shipped
    profile (``drivers.sim.bus``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serial: str = Field(min_length=1, max_length=64)
    officer: str = Field("", max_length=32, description="警号, officer number")
    officer_name: str = Field("", max_length=64)
    unit: str = Field("", max_length=64, description="unit name")
    unit_no: str = Field("", max_length=13)
    model: str = Field("", max_length=64)
    protocol: Protocol = "ums"
    #: "": unset (E goes silent when asked for it)
    password: str = Field("000000", max_length=32)
    clock_offset_s: float = Field(0.0, description="recorder clock minus true time")
    vid: int | None = Field(None, ge=0, le=0xFFFF)
    pid: int | None = Field(None, ge=0, le=0xFFFF)
    #: USB string descriptors; None: what the family's shipped profile matches
    product: str | None = None
    manufacturer: str | None = None
    usb_serial: str | None = Field(None, description="iSerialNumber; default: serial (BC+: <serial>_0)")
    #: GA/T 947 IDCode the firmware answers (C, D, E, F); default per family
    idcode: str = Field("", max_length=8)
    battery_pct: int = Field(85, ge=0, le=100)
    #: false: the battery level is unset (E goes silent after E12DATR880, the others refuse the read)
    battery_set: bool = True
    #: the storage side after the switch; None: the profile's, else a sim id
    storage_vid: int | None = Field(None, ge=0, le=0xFFFF)
    storage_pid: int | None = Field(None, ge=0, le=0xFFFF)
    storage_settle_s: float = Field(0.3, ge=0, le=60, description="seconds until the storage device appears")
    volume_label: str | None = Field(None, description="label of the storage volume; default: serial")
    #: E12: byte order of the length prefix the firmware uses
    length_order: Literal["big", "little"] = "big"
    #: BC+: which way the +SYSTIME: offset counts (the real sign is unknown)
    systime_offset: Literal["east", "west"] = "east"
    #: ZZX: a recording recorder refuses the storage switch
    recording: bool = False
    #: DV16: the disk's SCSI INQUIRY vendor and product (the SDK matches "dv16devicev1.00")
    scsi_vendor: str = Field("DV16", max_length=8)
    scsi_model: str = Field("DEVICE V1.00", max_length=16)
    #: DV16: a card is in (SD status, sub-command 12); without one the switch is refused
    sd_card: bool = True
    #: DV16: answer a clock read (5 on fd 81), which the SDK never sends
    clock_read: bool = False
    #: ZZX: reached through a simulated adbd (adb connect 127.0.0.1:<port>); the app
    #: listens only after the com.zzx.sdk broadcast. False: its port is in the dock's hints
    adb: bool = False
    #: ZZX: the app build ("p5x_szlj" moves GetZFYInfo's fields)
    zzx_build: Literal["standard", "p5x_szlj"] = "standard"
    #: simulated link speed in bytes/s (USB 2 ≈ 35e6); 0 = as fast as the disk
    link_rate: int = Field(0, ge=0)

    folder: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _fits_the_wire(self) -> SimDevice:
        from drivers.codec import record

        layout = {"zfy-ctrl": record.ZFY_CTRL, "e12-tcp": record.E12, "dv16-scsi": record.E12}.get(self.protocol)
        if layout is not None:
            rec = record.OfficerRecord(self.serial, self.officer, self.officer_name, self.unit_no, self.unit)
            problems = record.fits(rec, layout, "gbk")
            if problems:
                raise ValueError(f"does not fit the {layout.size}-byte officer record: " + "; ".join(problems))
        if self.protocol == "bc-text" and any("," in v for v in (self.serial, self.officer, self.officer_name,
                                                                  self.unit_no, self.unit)):
            raise ValueError("BC+ officer fields are comma-separated: no commas in them")
        if self.protocol == "dv16-scsi" and len(self.password.encode("ascii", "replace")) > 16:
            raise ValueError("a DV16 password is at most 16 bytes")
        return self

    @property
    def storage(self) -> Path:
        return self.folder / "storage"


def load_sim_device(folder: Path) -> SimDevice:
    folder = folder.resolve()
    toml = folder / "device.toml"
    try:
        raw = tomllib.loads(toml.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimDeviceError(folder, "device.toml not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SimDeviceError(folder, f"device.toml unreadable: {e}") from None
    try:
        dev = SimDevice.model_validate({**raw, "folder": folder})
    except ValidationError as e:
        raise SimDeviceError(folder, "device.toml: " + "; ".join(describe_validation(e.errors()))) from None
    if not dev.storage.is_dir():
        raise SimDeviceError(folder, "storage/ folder not found")
    return dev
