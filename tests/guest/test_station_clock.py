"""The station's own clock on a real kernel: with time synchronisation stopped
and the clock set by hand (unsynchronised, as timedatectl says), a dock sets
no recorder clock, the manifest says the drift is unverified and one alarm
stands however many recorders dock; once the kernel is synchronised again the
next dock sets the recorder's clock (gateway/timesync.py, docs/threat-model.md).

The recorder is a FunctionFS gadget speaking family D (bc-text), whose clock
can be read (so a drift is measured) and set; it logs the commands it got, so
"no clock set" is read from the recorder's side too (SYSTIME= never came)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.guest.conftest import edit_config, wait_active
from tests.guest.dock import ARCHIVE, make_storage_recorder, status, wait_archived
from tests.guest.guestlib import Guest

FILES = Path(__file__).resolve().parent / "files"
DRIFT = 120.0  # the recorders run two minutes fast
ALARM, CLEARED = "station_clock_unsynchronised", "station_clock_synchronised"


def ntp_synchronized(g: Guest) -> str:
    """What timedatectl says (systemd-timedated reads adjtimex, as dockgate does)."""
    return g.run("timedatectl show -p NTPSynchronized --value").stdout.strip()


def all_events(g: Guest) -> list[dict[str, Any]]:
    out = g.run("dockgate events --json --since 0 --limit 100000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def manifests(g: Guest, officer: str) -> list[dict[str, Any]]:
    out = g.run(f"find {ARCHIVE} -name '{officer}_*.manifest.json' -exec sh -c 'cat \"$1\"; echo' _ {{}} \\;").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def dock_bc_text(g: Guest, name: str, serial: str, officer: str, slot: int) -> None:
    """A bc-text recorder two minutes fast, on dummy_udc.<slot>, with 2 clips."""
    g.run(f"dockgate sim make /var/tmp/{name} --clips 2 --size 600000 --serial {serial} --officer {officer} "
          f"--protocol bc-text --clock-offset {DRIFT} >/dev/null "
          f"&& echo 'idcode = \"BC001\"' >> /var/tmp/{name}/device.toml "  # GBIDCODE?'s answer (sim attach gives one)
          f"&& gadget.sh mkimg /var/tmp/{name}.img 16 {serial} /var/tmp/{name}/storage")
    g.run(f"setsid ffs_recorder.py {name} /var/tmp/{name} /var/tmp/{name}.img --slot {slot} "
          f"--product 'guest bc-text' >/var/tmp/{name}.log 2>&1 </dev/null &")


def commands(g: Guest, name: str) -> list[str]:
    g.wait_for(f"grep -q 'commands:' /var/tmp/{name}.log", 60, f"{name} switched")
    line = next(x for x in g.run(f"cat /var/tmp/{name}.log").stdout.splitlines() if "commands:" in x)
    return line.split("commands:", 1)[1].split()


def test_an_unsynchronised_station_sets_no_recorder_clock_and_raises_one_alarm_until_synchronised(
        station: Guest) -> None:
    g = station
    g.put(FILES / "guest-bc-text.toml", "/etc/dockgate/profiles/guest-bc-text.toml")
    edit_config(g, recorders={"profiles_dir": '"/etc/dockgate/profiles"'})
    g.run("dockgate check-config >/dev/null && systemctl restart dockgate")
    wait_active(g)
    assert ntp_synchronized(g) == "yes"  # the test bed's clock, as a station's NTP keeps it

    # time synchronisation stopped (the image has no NTP unit: set-ntp says so) and the
    # clock set by hand: the kernel marks it unsynchronised
    g.run("timedatectl set-ntp false", check=False)
    assert g.run("timedatectl show -p NTP --value").stdout.strip() == "no"
    g.run(f"date -s @{time.time():.3f} >/dev/null")
    assert ntp_synchronized(g) == "no"

    dock_bc_text(g, "bc1", "BCA00001", "0011111", slot=0)
    wait_archived(g, 2)
    assert "SYSTIME?" in commands(g, "bc1") and "SYSTIME" not in commands(g, "bc1")  # read, never set
    ums = make_storage_recorder(g, "ums2", "UMS0002", clips=1, officer="0022222", slot=1)
    ums.plug(g)  # a second dock while unsynchronised: still one alarm
    wait_archived(g, 3)
    evs = all_events(g)
    assert [e["type"] for e in evs].count(ALARM) == 1, [e for e in evs if e["type"] == ALARM]
    (alarm,) = [e for e in evs if e["type"] == ALARM]
    assert "not synchronised" in alarm["data"]["reason"] and alarm["data"]["maxerror_s"] >= 16, alarm
    assert CLEARED not in [e["type"] for e in evs]
    clock = {e["data"]["serial"]: e for e in evs if e["type"] == "clock"}
    bc1 = clock["BCA00001"]
    assert alarm["seq"] < bc1["seq"]  # raised before the clock step decided
    assert bc1["data"]["set"] is False and bc1["data"]["drift_verified"] is False, bc1
    assert abs(bc1["data"]["drift_s"] - DRIFT) <= 2 and "not synchronised" in bc1["data"]["station_clock"], bc1
    slots = {s.get("serial"): s for s in status(g)["slots"]}
    assert "station clock not synchronised" in (slots["BCA00001"].get("message") or ""), slots
    docks = {d["serial"]: d for d in status(g)["recent_docks"]}
    assert docks["BCA00001"]["clock_drift_s"] is None and not docks["BCA00001"]["clock_set"], docks
    for doc in manifests(g, "0011111"):
        rec, t = doc["recorder"], doc["capture_time"]
        assert rec["clock_set"] is False and rec["clock_drift_verified"] is False, rec
        assert abs(rec["clock_drift_s"] - DRIFT) <= 2, rec
        assert t["drift_verified"] is False and t["drift_s"] is None and t["utc"] == t["recorder_clock"], t
    assert len(manifests(g, "0011111")) == 2

    # synchronised again (what an NTP client does): the next dock sets the clock, the alarm clears once
    g.mark_synchronised()
    assert ntp_synchronized(g) == "yes"
    dock_bc_text(g, "bc3", "BCC00003", "0033333", slot=2)
    wait_archived(g, 5)
    assert "SYSTIME" in commands(g, "bc3")
    evs = all_events(g)
    types = [e["type"] for e in evs]
    assert types.count(ALARM) == 1 and types.count(CLEARED) == 1, [e for e in evs if e["type"] in (ALARM, CLEARED)]
    bc3 = next(e for e in evs if e["type"] == "clock" and e["data"]["serial"] == "BCC00003")
    assert bc3["data"]["set"] is True and bc3["data"]["drift_verified"] is True, bc3
    assert abs(bc3["data"]["drift_s"] - DRIFT) <= 2 and "station_clock" not in bc3["data"], bc3
    docs = manifests(g, "0033333")
    assert len(docs) == 2
    for doc in docs:
        rec, t = doc["recorder"], doc["capture_time"]
        assert rec["clock_set"] is True and rec["clock_drift_verified"] is True and t["drift_verified"] is True
        assert abs(t["drift_s"] - DRIFT) <= 2 and t["utc"] != t["recorder_clock"], t
