"""A recorder that is a disk from the start, played in user space (image/ffs_msc.py:
bulk-only transport and SCSI over FunctionFS, the way a JieLi "DV16" recorder,
reference §2G, would be played with its simulator answering the vendor CDBs).

Here it is a plain disk whose INQUIRY text matches no profile: the station reads
its volume as plain storage and sends it not one vendor command (the disk logs
every CDB it gets), which is the promise a DV16 profile keeps towards every disk
that is not a DV16.
"""

from __future__ import annotations

import re

from tests.guest.dock import Recorder, archived_hashes, status, verify, wait_archived
from tests.guest.guestlib import Guest

SERIAL, OFFICER, CLIPS = "MSC0001", "0054321", 2
VENDOR, PRODUCT = "TESTBED", "PLAIN DISK"


def test_a_disk_whose_inquiry_matches_no_profile_gets_no_vendor_command_and_is_archived(station: Guest) -> None:
    g = station
    g.run(f"dockgate sim make /var/tmp/msc --clips {CLIPS} --size 400000 --serial {SERIAL} --officer {OFFICER} "
          f"--protocol ums >/dev/null && gadget.sh mkimg /var/tmp/msc.img 16 {SERIAL} /var/tmp/msc/storage")
    # the shipped generic-ums profile's ids: a plain recorder disk
    g.run(f"setsid ffs_msc.py msc /var/tmp/msc.img --vid 0x1209 --pid 0x0001 --serial {SERIAL} "
          f"--vendor {VENDOR} --product '{PRODUCT}' >/var/tmp/msc.log 2>&1 </dev/null &")
    wait_archived(g, CLIPS)
    rec = Recorder("msc", SERIAL, "/var/tmp/msc.img", CLIPS, 0x1209, 0x0001)
    assert archived_hashes(g) == sorted(rec.hashes(g))
    docks = {d["serial"]: d for d in status(g)["recent_docks"]}
    # a plain disk has no officer record, and no source gives a naming rule to read one from its names
    assert docks[SERIAL]["result"] == "done", docks

    # the kernel saw the disk's own INQUIRY text (what a DV16 profile matches on)
    dev = g.run("readlink -f /dev/disk/by-id/usb-*MSC0001*-0:0").stdout.strip()
    props = g.run(f"udevadm info -q property {dev}").stdout
    assert f"ID_VENDOR={VENDOR}" in props and "ID_MODEL=PLAIN_DISK" in props, props
    log = g.run("cat /var/tmp/msc.log").stdout
    opcodes = {int(m, 16) for m in re.findall(r"^\[msc +[\d.]+\] cdb ([0-9a-f]{2})", log, re.M)}
    assert 0x12 in opcodes and 0x25 in opcodes, log  # INQUIRY, READ CAPACITY: it was read as a disk
    # not one vendor command: none in the vendor range, none handed on
    assert all(op < 0xC0 for op in opcodes) and " request vendor " not in log, log
    verify(g)
