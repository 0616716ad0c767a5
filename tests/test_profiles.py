"""Firmware profiles are data; two profiles claiming one device is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base import UsbIds
from drivers.profiles import ProfileError, Registry

PROFILE = """
name = "{name}"
protocol = "ums"
[match]
vid = 0x1209
pid = {pid}
"""


def test_shipped_profiles_load_and_match() -> None:
    reg = Registry.load()
    p = reg.match(UsbIds(0x1209, 0x0001, "X"))
    assert p is not None and p.protocol == "ums"
    assert reg.match(UsbIds(0xDEAD, 0xBEEF)) is None


def test_a_plain_storage_clips_name_is_not_parsed_for_facts() -> None:
    p = Registry.load().default_for("ums")
    assert p.officer_from_name("DCIM/20240301/0012345_20240301083015_0001.MP4") is None
    assert p.start_from_name("DCIM/20240301/0012345_20240301083015_0001.MP4") is None


def test_two_profiles_claiming_one_device_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dup.toml").write_text(PROFILE.format(name="dup", pid=1))
    with pytest.raises(ProfileError, match="both claim 1209:0001"):
        Registry.load(tmp_path)


@pytest.mark.parametrize(("extra", "needle"), [
    ('product = "("', "match.product"), ('\n[[names]]\npattern = "["', "names.0.pattern"),
    ('\n[clock]\ntimezone = "../../etc/passwd"', "unknown time zone"),
    ('\n[commands]\nget_info = "X1"', "commands"), ('\n[commands]\nformat_disk = "S013"', "unknown command"),
])
def test_malformed_profiles_are_typed_errors_naming_the_file(extra: str, needle: str) -> None:
    from drivers.profiles import load_profile

    text = PROFILE.format(name="bad", pid=5).replace("pid = 5", "pid = 5\n" + extra if extra.startswith("product")
                                                      else "pid = 5") + ("" if extra.startswith("product") else extra)
    with pytest.raises(ProfileError, match=needle) as e:
        load_profile(text, "vendor/bad.toml")
    assert "vendor/bad.toml" in str(e.value)


def test_extra_profile_and_bad_profile(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(PROFILE.format(name="mine", pid=0x77))
    reg = Registry.load(tmp_path)
    assert reg.match(UsbIds(0x1209, 0x77)).name == "mine"  # type: ignore[union-attr]
    (tmp_path / "bad.toml").write_text(PROFILE.format(name="bad", pid=0x78) + "\nbogus = 1\n")
    with pytest.raises(ProfileError, match="bogus: unknown key"):
        Registry.load(tmp_path)


SITE_4255 = """
name = "site-amba"
protocol = "amba-ascii"
[match]
vid = 0x4255
pid = 0x0001
{regexes}
"""


def test_a_site_profile_on_the_shared_4255_0001_claims_its_model_by_the_devices_own_strings(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(SITE_4255.format(regexes="manufacturer = '^Ambarella$'\nproduct = '^AMBA$'"))
    reg = Registry.load(tmp_path)
    site = reg.match(UsbIds(0x4255, 0x0001, "A1", "AMBA", "Ambarella"))
    assert site is not None and site.name == "site-amba"
    # what the hardware database calls it (udev's ID_*_FROM_DATABASE) is not the device's string
    assert reg.match(UsbIds(0x4255, 0x0001, "A1", "HERO Camera", "GoPro")) is None
    shipped = reg.match(UsbIds(0x4255, 0x0001, None, "dockgate-sim amba-ascii", "dockgate-sim"))
    assert shipped is not None and shipped.name == "amba-ascii"


def test_a_site_profile_with_the_manufacturer_alone_cannot_sit_beside_the_shipped_4255_0001_ones(
        tmp_path: Path) -> None:
    """Nothing would tell it from the shipped profiles' product regexes (which is why
    `dockgate profile new` writes both strings)."""
    (tmp_path / "site.toml").write_text(SITE_4255.format(regexes="manufacturer = '^Ambarella$'"))
    with pytest.raises(ProfileError, match="both claim 4255:0001"):
        Registry.load(tmp_path)
