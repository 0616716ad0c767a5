"""A simulated recorder: a folder with ``device.toml`` and ``storage/``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import DockgateError, describe_validation


class SimDeviceError(DockgateError):
    reason = "sim_device"

    def __init__(self, folder: Path, problem: str) -> None:
        self.folder = folder
        super().__init__(f"simulated recorder {folder}: {problem}")


class SimDevice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    serial: str = Field(min_length=1, max_length=64)
    officer: str = Field("", max_length=32, description="警号, officer number")
    officer_name: str = Field("", max_length=64)
    unit: str = Field("", max_length=64, description="unit name")
    unit_no: str = Field("", max_length=13)
    info_layout: Literal[94, 89] = Field(94, description="ZFY_INFO layout the firmware answers with")
    model: str = Field("", max_length=64)
    protocol: Literal["ums", "zfy", "zfy-serial", "amba"] = "ums"
    password: str = Field("000000", max_length=32)
    clock_offset_s: float = Field(0.0, description="recorder clock minus true time")
    vid: int | None = Field(None, ge=0, le=0xFFFF)
    pid: int | None = Field(None, ge=0, le=0xFFFF)
    product: str | None = None
    #: simulated link speed in bytes/s (USB 2 ≈ 35e6); 0 = as fast as the disk
    link_rate: int = Field(0, ge=0)

    folder: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _fits_zfy_info(self) -> SimDevice:
        if self.protocol in ("zfy", "zfy-serial"):
            from drivers.zfy_info import LAYOUTS

            widths = LAYOUTS[self.info_layout]
            values = (("serial", self.serial), ("officer", self.officer),
                      ("officer_name", self.officer_name), ("unit_no", self.unit_no), ("unit", self.unit))
            for (name, value), width in zip(values, widths, strict=True):
                if len(value.encode("gbk", "replace")) > width:
                    raise ValueError(f"{name} {value!r} does not fit the {width}-byte field of the "
                                     f"{self.info_layout}-byte ZFY_INFO")
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
