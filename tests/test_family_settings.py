"""What the shipped profiles claim, after re-reading the sources (reference
§5): a file-name rule only where a source gives one (family A's script), the
includes and clock settings no source contradicts, and the settings that
stand in for what no source says (D's +SYSTIME: offset sign)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.detect.sim import SimDetector
from drivers.families import FAMILIES, open_recorder
from drivers.profiles import Clock, Registry, load_profile

REGISTRY = Registry.load()
INVENTED = r"\d{6,7}_(?P<start>\d{14})"


@pytest.mark.parametrize("protocol", [p for p in FAMILIES if p != "amba-ctrl"])
def test_no_family_without_a_source_parses_clip_names(protocol: str) -> None:
    assert REGISTRY.default_for(protocol).names == []


def test_no_shipped_profile_carries_the_invented_name_pattern() -> None:
    assert all(INVENTED not in n.pattern for p in REGISTRY.profiles for n in p.names)


def test_family_a_reads_officer_and_time_as_its_sources_script_does() -> None:
    a = REGISTRY.default_for("amba-ctrl")
    path = "DCIM/240305/JDOE_____0000_240305140709.MP4"  # 20 characters before the time
    # up to the first "2", every "0" and "_" deleted; day from the folder, time from characters 21-26
    assert a.officer_from_name(path) == "JDOE"
    assert a.start_from_name(path) == datetime(2024, 3, 5, 14, 7, 9)


def test_family_a_keeps_the_officer_when_the_name_is_too_short_for_a_time() -> None:
    a = REGISTRY.default_for("amba-ctrl")
    assert a.officer_from_name("DCIM/240305/JDOE.MP4") == "JDOE.MP4"
    assert a.start_from_name("DCIM/240305/JDOE.MP4") is None


def test_family_a_rule_needs_the_dcim_layout() -> None:
    assert REGISTRY.default_for("amba-ctrl").officer_from_name("MISC/JDOE_0000_240305140709.MP4") is None


def test_family_b_does_not_set_the_clock_by_default_and_a_site_can_turn_it_on() -> None:
    b = REGISTRY.default_for("amba-ascii")
    assert b.clock.set is False
    assert b.model_copy(update={"clock": Clock(set=True)}).clock.set is True


def test_family_c_includes_only_what_no_source_contradicts() -> None:
    c = REGISTRY.default_for("zfy-ctrl")
    assert not {"*.gps", "*.imp", "*.avi", "*.amr"} & set(c.clips.include)
    assert c.sidecars == []


def test_a_site_profile_may_add_sidecars_and_includes() -> None:
    text = ('name = "site-c"\nprotocol = "zfy-ctrl"\n[match]\nvid = 0x4255\npid = 1\nproduct = "^X$"\n'
            '[clips]\ninclude = ["*.mp4", "*.gps"]\n[[sidecars]]\nkind = "gps"\nsuffix = ".GPS"\n')
    p = load_profile(text, "site.toml")
    assert "*.gps" in p.clips.include and p.sidecars[0].suffix == ".GPS"


def test_d_offset_sign_defaults_to_the_common_reading() -> None:
    assert REGISTRY.default_for("bc-text").clock.systime_offset == "east"


@pytest.mark.parametrize("sign", ["east", "west"])
def test_d_clock_is_read_right_when_the_profile_names_the_devices_offset_sign(tmp_path: Path, sign: str) -> None:
    from drivers.sim.make import make_recorder

    folder = tmp_path / "rec"
    make_recorder(folder, clips=0, size=0, serial="SN1", officer="065432", protocol="bc-text")
    with open(folder / "device.toml", "a", encoding="utf-8") as f:
        f.write(f'systime_offset = "{sign}"\n')
    det = SimDetector(tmp_path / "dock", 2, REGISTRY)
    device = det.describe(1, folder)
    base = REGISTRY.match(device.ids)
    assert base is not None
    profile = base.model_copy(update={"clock": Clock(systime_offset=sign)})
    rec = open_recorder(device, profile)
    try:
        rec.probe()
        rec.unlock("000000")
        clock = rec.read_clock()
        assert clock is not None and abs((clock - datetime.now(UTC)).total_seconds()) < 5
    finally:
        rec.close()
        det._unplug_slot(1)
