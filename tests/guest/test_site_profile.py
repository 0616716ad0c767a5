"""A real recorder model the shipped profiles do not know, on a real kernel: it
stays foreign and untouched until the admin adds a site profile the way
docs/profiles.md says ("Adding a site profile"), then it is served.

The recorder is a FunctionFS gadget speaking family B (amba-ascii) with the
strings a real Ambarella body camera sends ("Ambarella", "AMBA") on
4255:0002, a VID:PID no shipped profile or udev rule names. udev's hardware
database calls VID 4255 "GoPro": a profile must match the device's own
strings, never that name.
"""

from __future__ import annotations

import json

from tests.guest.conftest import edit_config, wait_active
from tests.guest.dock import Recorder, archived_hashes, verify, wait_archived
from tests.guest.guestlib import Guest

VID, PID = 0x4255, 0x0002
MANUFACTURER, PRODUCT = "Ambarella", "AMBA"
LOG = "/var/tmp/amba.log"


def foreign_events(g: Guest) -> list[dict]:  # type: ignore[type-arg]
    out = g.run("dockgate events --json --type foreign_device --since 0").stdout
    return [json.loads(line) for line in out.splitlines()]


def requests_received(g: Guest) -> list[str]:
    return [line for line in g.run(f"cat {LOG}").stdout.splitlines() if " request " in line]


def test_an_unknown_model_stays_foreign_until_a_site_profile_from_profile_new_then_is_served(station: Guest) -> None:
    g = station
    g.run("dockgate sim make /var/tmp/amba --clips 3 --size 1500000 --serial AMB0042 --officer 0054321 "
          "--protocol amba-ascii >/dev/null && gadget.sh mkimg /var/tmp/amba.img 16 AMB0042 /var/tmp/amba/storage")
    g.run(f"setsid ffs_recorder.py amba /var/tmp/amba /var/tmp/amba.img --vid {VID:#06x} --pid {PID:#06x} "
          f"--manufacturer {MANUFACTURER} --product {PRODUCT} >{LOG} 2>&1 </dev/null &")
    g.wait_for("dockgate events --json --type foreign_device | grep -q .", 120, "a foreign_device event")

    # no profile claims it: the event says what the device sent, so the admin sees why
    (ev,) = foreign_events(g)
    data = ev["data"]
    assert (data["vid"], data["pid"], data["manufacturer"], data["product"], data["serial"]) == \
        (f"{VID:04x}", f"{PID:04x}", MANUFACTURER, PRODUCT, "AMB0042"), data
    assert data["interfaces"] == "ff/ff/ff", data
    # the hardware database's name differs (udev's hwdb: VID 4255 is "GoPro"): there to inform only
    assert data.get("hwdb_vendor") == "GoPro", data
    slot = ev["slot"]
    st = json.loads(g.run("dockgate status --json").stdout)
    (card,) = [s for s in st["slots"] if s["slot"] == slot]
    assert card["state"] == "foreign" and "'Ambarella'" in card["message"], card
    # ... and nothing was sent to it, not one vendor request
    assert requests_received(g) == []
    assert int(g.run("dockgate status --json | python3 -c 'import json,sys; "
                     "print(sum(json.load(sys.stdin)[\"clips\"].values()))'").stdout) == 0

    # docs/profiles.md, "Adding a site profile", step by step
    edit_config(g, recorders={"profiles_dir": '"/etc/dockgate/profiles"'})
    g.run("install -d -m 0755 /etc/dockgate/profiles")
    p = g.run(f"dockgate profile new --slot {slot} --protocol amba-ascii -o /etc/dockgate/profiles/amba.toml")
    profile = g.run("cat /etc/dockgate/profiles/amba.toml").stdout
    assert "manufacturer = '^Ambarella$'" in profile and "product = '^AMBA$'" in profile, profile
    # the command interface as the device's descriptors say: stock dummy_hcd puts bulk OUT at 0x02
    assert "ep_out = 0x02" in profile and "ep_in = 0x81" in profile, profile
    assert "next" in p.stderr
    g.run("dockgate check-config")
    g.run("dockgate udev-rules -c /etc/dockgate/dockgate.toml > /etc/udev/rules.d/70-dockgate.rules")
    assert 'ATTR{idVendor}=="4255", ATTR{idProduct}=="0002"' in g.run("cat /etc/udev/rules.d/70-dockgate.rules").stdout
    g.run("udevadm control --reload && udevadm trigger --subsystem-match=usb --action=change && udevadm settle")
    g.run("systemctl restart dockgate")
    wait_active(g)

    # served: probe, identity, clock, storage switch, pulled, archived, verified
    wait_archived(g, 3)
    journal = g.run("journalctl -b -u dockgate -o cat").stdout
    assert f"profile=site-{VID:04x}-{PID:04x}-amba" in journal, journal[-3000:]
    assert "storage_switched serial=AMB0042" in journal, journal[-3000:]
    assert requests_received(g), g.run(f"cat {LOG}").stdout
    rec = Recorder("amba", "AMB0042", "/var/tmp/amba.img", 3, VID, PID)
    assert archived_hashes(g) == sorted(rec.hashes(g))
    verify(g)
