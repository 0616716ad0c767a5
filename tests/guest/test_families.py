"""Every recorder family through a real kernel (issue 29), in one station state:
a recorder of each family docks at the guest's station, is archived whole and
verifies; one of the same family whose password is not the station's is
refused with nothing pulled and no secret on the wire; and a disk whose INQUIRY
text is nearly a DV16's is left alone (not one vendor CDB reaches it).

All of it runs from one 'configured' snapshot with one daemon restart: every
family's profile, gadget and simulator is prepared together, the refused
recorders dock together first, the served ones together once all were refused
(each on a dock port of its own: ``detect.ports`` gives every port its slot).
A boot or restore per family cost some 2 minutes each under TCG.

The USB families (A amba-ctrl and C zfy-ctrl over EP0 control transfers, B
amba-ascii and D bc-text over bulk) are FunctionFS gadgets on dummy_hcd
(image/ffs_recorder.py) playing dockgate's simulated firmware byte for byte;
each logs every vendor request with its data stage, so where the password goes
to the device (A, C, D) the test reads what the login carried: the station's
password, in the family's form. B has no authentication (reference §2B), so it
has no wrong-password twin.

DV16 (dv16-scsi) is a userspace bulk-only mass-storage disk (image/ffs_msc.py
--sim) whose vendor CDBs the simulated firmware answers; the station reaches
them through the disk's sg node (the ``sg`` module, and the dock ports'
``scsi_generic`` rule `dockgate udev-rules` writes from ``detect.ports``). The
station reads the device's admin password and compares it itself: no CDB
carries a secret.

The TCP families (E e12-tcp, F zzx-json) talk to the simulator's command server
on the test host, reached from the guest as QEMU user networking puts the host
(10.0.2.2): the station opens it as a site profile's [tcp] section says. F's
profile turns the adb broadcast off (``[zzx] broadcast = false``: the port is
reachable as it is): the guest image has no adb and the phone gadget speaks no
adb, so F's adb path is the driver suite's (drivers/sim/adbd.py), not this
bed's. The phone's USB side is a gadget with adbd's vendor interface the
station must never talk to; when the host's simulator accepts the storage
switch, the phone becomes a mass-storage disk on the same port.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.codec.dv16_scsi import parse_cdb
from drivers.commands import DV16_SCSI
from drivers.sim.bus import DEFAULT_IDCODE
from drivers.sim.device import load_sim_device
from drivers.sim.firmware import E12Firmware, TcpFirmware, ZzxFirmware
from drivers.sim.tcp import SimTcpServer
from tests.guest.conftest import edit_config, wait_active
from tests.guest.dock import Recorder, archived_hashes, status, verify, wait_archived
from tests.guest.guestlib import Guest, GuestError

FILES = Path(__file__).resolve().parent / "files"
PROFILES = "/etc/dockgate/profiles"
#: what the package's postinst puts in /etc/dockgate/credentials/admin_password (the factory default)
STATION_PASSWORD = "000000"
WRONG_PASSWORD = "314159"
OFFICER = "054321"  # six digits: C's and E's officer records hold no more
CLIPS, SIZE = 2, 400_000
DRIFT = 120.0  # every recorder runs two minutes fast
#: the host as QEMU user networking shows it to the guest (slirp: the host's loopback)
HOST_FROM_GUEST = "10.0.2.2"
#: the USB ids of an Android recorder's phone side: Google's "adb debugging" ids, as many keep them
PHONE_IDS = (0x18D1, 0x4EE7)
#: a DV16's USB ids are in no source: these are ids no profile names (it is claimed by INQUIRY alone)
DISK_IDS = (0x1209, 0xD516)
#: the SDK's INQUIRY text (vendor 8, product 16) and a lookalike's, one digit off
DV16_INQUIRY, LOOKALIKE_INQUIRY = ("DV16", "DEVICE V1.00"), ("DV16", "DEVICE V2.00")


def _md5_login(pw: str) -> str:
    return f"BC+LOGIN=admin:{hashlib.md5(pw.encode(), usedforsecurity=False).hexdigest().upper()}\r\n".encode().hex()


@dataclass(frozen=True)
class Family:
    protocol: str
    prefix: str  # of the recorder serials: <prefix>0001 is served, <prefix>0002 refused
    product: str  # the gadget's USB product string
    #: a site profile in tests/guest/files (B, D: dummy_hcd puts bulk OUT at 0x02); None: the shipped
    #: profile matches (A, C: by product string on EP0; DV16: by INQUIRY); TCP families get one per phone
    site_profile: str | None = None
    #: the login's data stage (hex) for a password, as the gadget logs it; None: no password goes to the device
    login: Callable[[str], str] | None = None
    has_password: bool = True
    tcp: bool = False
    scsi: bool = False
    reads_clock: bool = False
    #: the officer comes from the device (a record) or from names the sim writes in a rule the profile
    #: reads; A's shipped naming rule is its own, and `dockgate sim make` does not write it
    officer_known: bool = True


FAMILIES = [
    # reference §3 A1: a1 12 00 12 + the password as UTF-8, zero-padded to 64 bytes
    Family("amba-ctrl", "AMC", "dockgate-sim amba-ctrl", officer_known=False,
           login=lambda pw: "a1120012" + pw.encode().hex() + "00" * (60 - len(pw))),
    Family("amba-ascii", "AMB", "guest amba-ascii", site_profile="guest-amba-ascii.toml", has_password=False),
    # reference §3 C2: a1 b2 c3 d4 00 e1 00 10 00 + the password as ASCII (the SDK pads nothing)
    Family("zfy-ctrl", "ZFY", "dockgate-sim zfy-ctrl", login=lambda pw: "a1b2c3d400e1001000" + pw.encode().hex()),
    # reference §3 D2: BC+LOGIN=admin:<MD5, 32 uppercase hex digits>\r\n
    Family("bc-text", "BCT", "guest bc-text", site_profile="guest-bc-text.toml", login=_md5_login, reads_clock=True),
    Family("dv16-scsi", "DVS", "userspace disk", scsi=True),
    Family("e12-tcp", "E12", "guest e12-tcp", tcp=True, reads_clock=True),
    Family("zzx-json", "ZZX", "guest zzx-json", tcp=True, reads_clock=True),
]


# -- the TCP families' command servers, on the test host ------------------------------------

class LoggedZzxFirmware(ZzxFirmware):
    """What a family-F recorder got in each request body (the password travels in them)."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.bodies: list[dict[str, object]] = []

    def _answer(self, msg_id: int, body: dict[str, object]) -> dict[str, str] | None:
        self.bodies.append(dict(body))
        return super()._answer(msg_id, body)


@dataclass
class HostServer:
    firmware: TcpFirmware
    server: SimTcpServer


def host_server(g: Guest, name: str, tmp: Path) -> HostServer:
    """The simulator's command server for the guest's recorder NAME (its device.toml copied
    from the guest), listening on the host's loopback: the guest reaches it at 10.0.2.2."""
    folder = tmp / name
    (folder / "storage").mkdir(parents=True)
    (folder / "device.toml").write_text(g.run(f"cat /var/tmp/{name}/device.toml").stdout, encoding="utf-8")
    dev = load_sim_device(folder)
    dev = dev.model_copy(update={"idcode": dev.idcode or DEFAULT_IDCODE.get(dev.protocol, "ABCDE")})
    fw: TcpFirmware = E12Firmware(dev) if dev.protocol == "e12-tcp" else LoggedZzxFirmware(dev)
    return HostServer(fw, SimTcpServer(fw, host="127.0.0.1"))


def phone_profile(fam: Family, serial: str, port: int) -> str:
    """A site profile for one Android recorder: its USB side matched by product and serial, its
    command server where this phone's port is reachable (here the test host's simulator)."""
    zzx = '[zzx]\nbroadcast = false\n\n' if fam.protocol == "zzx-json" else ""
    return (f'name = "guest-{fam.protocol}-{serial.lower()}"\n'
            f'description = "{fam.protocol} recorder: USB side a FunctionFS gadget, commands from the test host"\n'
            f'model = "test-bed Android recorder ({fam.protocol})"\nprotocol = "{fam.protocol}"\n\n'
            f"[match]\nvid = {PHONE_IDS[0]:#06x}\npid = {PHONE_IDS[1]:#06x}\n"
            f"product = '^{fam.product}$'\nserial = '^{serial}$'\n\n"
            f'[password]\nsource = "station"\n\n[tcp]\nhost = "{HOST_FROM_GUEST}"\nport = {port}\n\n{zzx}'
            "[storage]\nsettle_s = 2.0\ntimeout_s = 60.0\n\n"
            '[clips]\ninclude = ["*.mp4"]\nexclude = ["system volume information/*"]\n\n'
            '[clock]\ntimezone = "Asia/Shanghai"\n')


# -- the guest side --------------------------------------------------------------------------

@dataclass
class Docked:
    fam: Family
    rec: Recorder
    slot: int  # dummy_udc.N; the station's slot N + 1
    good: bool
    server: HostServer | None = None


def recorder(fam: Family, serial: str, password: str) -> tuple[Recorder, str]:
    """The recorder and the guest command that makes its folder and volume."""
    name = serial.lower()
    make = (f"dockgate sim make /var/tmp/{name} --clips {CLIPS} --size {SIZE} --serial {serial} --officer {OFFICER} "
            f"--protocol {fam.protocol} --password {password} --clock-offset {DRIFT} >/dev/null "
            f"&& gadget.sh mkimg /var/tmp/{name}.img 16 {serial} /var/tmp/{name}/storage")
    vid, pid = PHONE_IDS if fam.tcp else DISK_IDS if fam.scsi else (0x4255, 0x0001)
    return Recorder(name, serial, f"/var/tmp/{name}.img", CLIPS, vid, pid), make


def make_all(g: Guest, makes: list[str]) -> None:
    """Every recorder made, three at a time (each `dockgate sim make` is a Python start-up: seconds
    under TCG; more at once would not fit the guest's memory)."""
    g.run("xargs -d '\\n' -P 3 -I CMD sh -c CMD", input="\n".join(makes) + "\n", timeout=600)


def dock_cmd(d: Docked, inquiry: tuple[str, str] = DV16_INQUIRY) -> str:
    r = d.rec
    if d.fam.scsi:
        gadget = (f"ffs_msc.py {r.name} {r.image} --slot {d.slot} --vid {r.vid:#06x} --pid {r.pid:#06x} "
                  f"--serial {r.serial} --vendor '{inquiry[0]}' --product '{inquiry[1]}' --sim /var/tmp/{r.name}")
    else:
        tcp = " --tcp" if d.fam.tcp else ""
        gadget = (f"ffs_recorder.py {r.name} /var/tmp/{r.name} {r.image} --slot {d.slot} "
                  f"--product '{d.fam.product}' --vid {r.vid:#06x} --pid {r.pid:#06x}{tcp}")
    return f"setsid {gadget} >/var/tmp/{r.name}.log 2>&1 </dev/null &"


def gadget_log(g: Guest, rec: Recorder) -> str:
    return g.run(f"cat /var/tmp/{rec.name}.log").stdout


def requests(g: Guest, rec: Recorder) -> list[str]:
    """The vendor requests the gadget got, in order (`request` lines of either gadget)."""
    return [line.split(" request ", 1)[1] for line in gadget_log(g, rec).splitlines() if " request " in line]


def vendor_cdbs(g: Guest, rec: Recorder) -> list[tuple[str, int, str]]:
    """DV16: every vendor CDB (opcode 0xC0-0xFF; the disk hands its simulator any CDB it does not
    serve itself, the kernel's too) the disk got, as (r|w, sub-command, data out hex)."""
    out = []
    for r in requests(g, rec):
        m = re.match(r"vendor cdb=([0-9a-f]+) out=([0-9a-f]*)", r)
        assert m, r
        if int(m.group(1)[:2], 16) < 0xC0:
            continue
        c = parse_cdb(bytes.fromhex(m.group(1)))
        out.append(("r" if c.is_read else "w", c.value, m.group(2)))
    return out


def events(g: Guest, kind: str) -> list[dict[str, Any]]:
    out = g.run(f"dockgate events --json --since 0 --type {kind}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def guest_minus_host(g: Guest) -> float:
    """How far the guest's clock is ahead of the host's (to about half an ssh round trip)."""
    before = time.time()
    guest = float(g.run("date +%s.%N").stdout)
    return guest - (before + time.time()) / 2


def switch_phones_when_told(g: Guest, phones: list[Docked], timeout: float = 180) -> None:
    """The host's simulator accepted the storage switch: the phone becomes the disk."""
    waiting = list(phones)
    deadline = time.monotonic() + timeout
    while waiting:
        for d in list(waiting):
            assert d.server is not None
            if d.server.firmware.switched.wait(0.2):
                g.run(f"kill -USR1 $(cat /run/ffs-{d.rec.name}.pid)")
                waiting.remove(d)
        if waiting and time.monotonic() > deadline:
            raise GuestError("the station never switched to storage: " + ", ".join(
                f"{d.rec.serial} (firmware saw {d.server.firmware.log if d.server else None})" for d in waiting)
                + "\n" + g.diagnostics())


def test_every_family_docks_through_the_kernel_is_archived_and_a_wrong_password_or_a_lookalike_is_left_alone(
        station: Guest, tmp_path: Path) -> None:
    g = station
    t0 = time.monotonic()
    docked: list[Docked] = []
    makes: list[str] = []
    for fam in FAMILIES:
        for serial, password, served in ((f"{fam.prefix}0001", STATION_PASSWORD, True),
                                         (f"{fam.prefix}0002", WRONG_PASSWORD, False)):
            if served or fam.has_password:
                rec, make = recorder(fam, serial, password)
                docked.append(Docked(fam, rec, 0, served))
                makes.append(make)
    dv16 = next(f for f in FAMILIES if f.scsi)
    rec, make = recorder(dv16, "DVL0001", STATION_PASSWORD)
    look = Docked(dv16, rec, 0, False)
    make_all(g, [*makes, make])
    bad = [d for d in docked if not d.good] + [look]
    good = [d for d in docked if d.good]
    for slot, d in enumerate(bad + good):
        d.slot = slot
    slots = len(bad) + len(good)

    # the dock: one port per recorder (dummy_hcd's root hubs), each a slot of its own; the sg nodes
    # of the dock ports' disks for the station (DV16) as `dockgate udev-rules` writes them from detect.ports.
    # sg is a module Debian's kernel does not load for a USB disk, and the package does not load it
    # either (yet): a DV16 site loads it as the admin does here
    buses = g.run(f"modprobe -r dummy_hcd && modprobe dummy_hcd num={slots} && modprobe sg && "
                  f"for i in $(seq 0 {slots - 1}); do basename /sys/devices/platform/dummy_hcd.$i/usb[0-9]*; done"
                  ).stdout.split()
    assert len(buses) == slots, buses
    ports = "{ " + ", ".join(f'"{b.removeprefix("usb")}-1" = {n + 1}' for n, b in enumerate(buses)) + " }"
    g.run(f"install -d -m 0755 {PROFILES}")
    for name in {f.site_profile for f in FAMILIES if f.site_profile}:
        g.put(FILES / name, f"{PROFILES}/{name}")
    try:
        for d in docked:
            if d.fam.tcp:
                d.server = host_server(g, d.rec.name, tmp_path)
                g.write(f"{PROFILES}/guest-{d.fam.protocol}-{d.rec.name}.toml",
                        phone_profile(d.fam, d.rec.serial, d.server.server.port))
        edit_config(g, recorders={"profiles_dir": f'"{PROFILES}"'}, detect={"slots": str(slots), "ports": ports})
        # the phones' ids and the dock ports are new to the station's udev rules: regenerated as docs/profiles.md says
        g.run("dockgate udev-rules -c /etc/dockgate/dockgate.toml > /etc/udev/rules.d/70-dockgate.rules "
              "&& udevadm control --reload && dockgate check-config >/dev/null && systemctl restart dockgate")
        wait_active(g)
        t_ready = time.monotonic()

        # the refused ones and the lookalike together, then the served ones together
        g.run(" ".join(dock_cmd(d, LOOKALIKE_INQUIRY if d is look else DV16_INQUIRY) for d in bad))
        refused = sum(1 for d in bad if d is not look)
        g.wait_for(f"[ $(dockgate events --json --since 0 --type wrong_password | grep -c .) -ge {refused} ]", 240,
                   f"{refused} wrong_password events")
        t_refused = time.monotonic()
        # the refused ones off the dock (their logs stay): the guest's memory is for the served ones
        g.run("kill " + " ".join(f"$(cat /run/ffs-{d.rec.name}.pid)" for d in bad if d is not look))
        g.run(" ".join(dock_cmd(d) for d in good))
        switch_phones_when_told(g, [d for d in good if d.fam.tcp])
        wait_archived(g, CLIPS * len(good), timeout=420)
        t_archived = time.monotonic()
    finally:
        for d in docked:
            if d.server is not None:
                d.server.server.close()

    journal = g.run("journalctl -b -u dockgate -o cat").stdout
    # status shows the last ten docks: the served ones docked last
    docks = {d["serial"]: d for d in status(g)["recent_docks"]}
    want = sorted(h for d in good for h in d.rec.hashes(g))
    assert archived_hashes(g) == want  # every served recorder whole, nothing of the refused or the lookalike

    # served: switched once, pulled whole, the dock record says who
    for d in good:
        s = d.rec.serial
        # a DV16 is a disk from the start: its switch (sub-command 6) is asserted from its CDBs below
        assert d.fam.scsi or f"storage_switched serial={s}" in journal, (s, journal[-3000:])
        assert journal.count(f"dock_done serial={s}") == 1, (s, journal[-3000:])
        mine = docks[s]
        assert mine["result"] == "done" and (mine["officer"] == OFFICER or not d.fam.officer_known), mine
        if d.fam.reads_clock:
            # E's and F's clock is the test host's (their simulator runs there): the guest's TCG clock
            # wanders from it by seconds under load, so the drift the station sees is DRIFT less that wander
            want_drift = DRIFT - (guest_minus_host(g) if d.fam.tcp else 0.0)
            assert mine["clock_drift_s"] is not None and abs(mine["clock_drift_s"] - want_drift) <= 3, mine
        if d.fam.scsi:
            assert mine["idcode"] == "ABCDE", mine  # read from the device (sub-command 2)

    # refused: one wrong_password each, nothing of them pulled or switched
    seen = {e["data"]["device"].rsplit("serial=", 1)[-1] for e in events(g, "wrong_password")}
    assert seen == {d.rec.serial for d in bad if d is not look}, seen
    for d in bad:
        s = d.rec.serial
        assert f"storage_switched serial={s}" not in journal and f"pulled serial={s}" not in journal, s
        if d is look:
            continue
        if d.fam.tcp:
            assert d.server is not None
            fw = d.server.firmware
            if d.fam.protocol == "e12-tcp":
                # no secret on the wire: the station read the device's password (S010) and compared it itself
                assert "S010" in fw.log and not any(c.startswith("S0") and c > "S010" for c in fw.log), fw.log
            else:
                assert isinstance(fw, LoggedZzxFirmware)
                # the password travels in F's request bodies: the station's, never the device's
                assert {b.get("password") for b in fw.bodies} <= {None, STATION_PASSWORD}, fw.bodies
                assert STATION_PASSWORD in {b.get("password") for b in fw.bodies}, fw.bodies
        elif d.fam.scsi:
            cdbs = vendor_cdbs(g, d.rec)
            # the admin password read and compared on the station: nothing written, no record read
            assert ("r", DV16_SCSI["admin_password"], "") in cdbs, cdbs
            assert all(rw == "r" and sub in (DV16_SCSI["admin_password"], DV16_SCSI["return_status"])
                       for rw, sub, _ in cdbs), cdbs
        else:
            assert d.fam.login is not None
            got = requests(g, d.rec)
            logins = [r for r in got if f"data={d.fam.login(STATION_PASSWORD)}" in r]
            assert len(logins) == 1, got  # the station's password, in the family's form, once
            # and after it nothing but the reply read: no record, clock or storage command
            assert all(" data=" not in r for r in got[got.index(logins[0]) + 1:]), got

    # the served DV16 got no secret either: no vendor CDB carries the password
    for d in good:
        if d.fam.scsi:
            cdbs = vendor_cdbs(g, d.rec)
            assert ("w", DV16_SCSI["storage"], "") in [(rw, sub, "") for rw, sub, _ in cdbs], cdbs
            assert not any(STATION_PASSWORD.encode().hex() in out for _, _, out in cdbs), cdbs
    # the phones' own USB interface is never talked to: their commands go over TCP
    for d in docked:
        if d.fam.tcp:
            assert requests(g, d.rec) == [], gadget_log(g, d.rec)

    # the lookalike: read as a disk (INQUIRY), sent not one vendor CDB
    log = gadget_log(g, look.rec)
    opcodes = {int(m, 16) for m in re.findall(r"^\[msc +[\d.]+\] cdb ([0-9a-f]{2})", log, re.M)}
    assert 0x12 in opcodes and all(op < 0xC0 for op in opcodes) and vendor_cdbs(g, look.rec) == [], log

    verify(g)
    for name, t in (("families ready", t_ready), ("families refused", t_refused), ("families archived", t_archived),
                    ("families total", time.monotonic())):
        g.timings.setdefault(name, []).append(round(t - t0, 1))
