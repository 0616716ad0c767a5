"""Recorders on the guest's dock, and what the tests read back from the station.

A mass-storage recorder is a configfs gadget (usb_f_mass_storage) bound to one of
dummy_hcd's UDCs: binding is docking, unbinding is pulling it out. Its volume is a
whole-disk FAT image with the layout `dockgate sim make` writes
(DCIM/<date>/<officer>_<start>_<seq>.MP4).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from tests.guest.guestlib import Guest, GuestError

ARCHIVE = "/srv/evidence"
#: the shipped generic-ums profile's ids
UMS_IDS = (0x1209, 0x0001)


@dataclass
class Recorder:
    name: str
    serial: str
    image: str
    clips: int
    vid: int
    pid: int
    slot: int = 0

    def plug(self, g: Guest, then: str = "") -> None:
        """Dock it. `then`: a guest shell command run right after, with wait_pulled SERIAL
        defined (returns once the station has pulled a first clip of SERIAL)."""
        plug = f"gadget.sh plug {self.name} {self.image} {self.vid:#06x} {self.pid:#06x} {self.serial} {self.slot}"
        if not then:
            g.run(plug)
            return
        # follow the journal from a cursor taken before the plug: the first clip cannot be missed
        g.run("c=$(journalctl -q -n0 --show-cursor | sed -n 's/^-- cursor: //p'); "
              "( timeout 300 journalctl -f -q --after-cursor=\"$c\" -u dockgate -o cat | grep -m1 -q "
              f"'pulled serial={self.serial}' ; echo $? > /run/pulled-{self.serial} ) >/dev/null 2>&1 & "
              f"{plug}; wait_pulled() {{ wait; [ \"$(cat /run/pulled-$1)\" = 0 ]; }}; {then}",
              timeout=400)

    def unplug(self, g: Guest) -> None:
        g.run(f"gadget.sh unplug {self.name}")

    def replug(self, g: Guest) -> None:
        g.run(f"gadget.sh replug {self.name} {self.slot}")

    def hashes(self, g: Guest) -> set[str]:
        """sha256 of every clip on the recorder's volume (read from the image, not the dock)."""
        out = g.run(f"cd /var/tmp/{self.name}/storage && find . -name '*.MP4' -exec sha256sum {{}} +").stdout
        return {line.split()[0] for line in out.splitlines()}


def make_storage_recorder(g: Guest, name: str, serial: str, clips: int = 4, size: int = 1_500_000,
                          officer: str = "0012345", slot: int = 0, vid_pid: tuple[int, int] = UMS_IDS) -> Recorder:
    img_mb = max(16, (clips * size) // (1 << 20) + 8)
    g.run(f"rm -rf /var/tmp/{name} && dockgate sim make /var/tmp/{name} --clips {clips} --size {size} "
          f"--serial {serial} --officer {officer} --protocol ums >/dev/null "
          f"&& gadget.sh mkimg /var/tmp/{name}.img {img_mb} {name.upper()[:11]} /var/tmp/{name}/storage && sync")
    return Recorder(name, serial, f"/var/tmp/{name}.img", clips, *vid_pid, slot=slot)


def status(g: Guest) -> dict:  # type: ignore[type-arg]
    out: dict = json.loads(g.run("dockgate status --json").stdout)  # type: ignore[type-arg]
    return out


def archived_hashes(g: Guest) -> list[str]:
    """sha256 of every clip in the archive, one entry per file (doubles show twice)."""
    out = g.run(f"find {ARCHIVE} -name '*.MP4' -exec sha256sum {{}} + 2>/dev/null || true").stdout
    return sorted(line.split()[0] for line in out.splitlines())


def wait_archived(g: Guest, count: int, timeout: float = 300) -> None:
    """Until `count` clips are in the archive and the catalog calls them archived."""
    g.wait_for(f"[ $(find {ARCHIVE} -name '*.MP4' | wc -l) -ge {count} ]", timeout, f"{count} clips in the archive")
    g.wait_for(f"dockgate status --json | python3 -c 'import json,sys; "
               f"c=json.load(sys.stdin)[\"clips\"]; sys.exit(0 if c[\"archived\"] >= {count} and "
               f"c[\"archived\"] == sum(c.values()) else 1)'", timeout, f"the catalog: {count} archived")


def wait_journal(g: Guest, pattern: str, timeout: float = 120, since_cursor: str = "") -> None:
    after = f"--after-cursor={shlex.quote(since_cursor)}" if since_cursor else "-b"
    g.wait_for(f"journalctl -q {after} -u dockgate -o cat | grep -qE {shlex.quote(pattern)}", timeout,
               f"journal: {pattern}")


def journal_cursor(g: Guest) -> str:
    out = g.run("journalctl -q -n0 --show-cursor -u dockgate || true").stdout
    for line in out.splitlines():
        if line.startswith("-- cursor: "):
            return line.removeprefix("-- cursor: ").strip()
    return ""


def verify(g: Guest) -> str:
    """`dockgate verify` of the archive once a clean stop has sealed and archived the
    open custody segment (docs/verify.md: a running station does so every
    custody_rotate_s, and clips archived since show as custody-missing until then)."""
    g.run("systemctl stop dockgate")
    p = g.run("dockgate verify", check=False)
    if p.returncode != 0:
        # what the daemon did up to and in its stop (sealed? archived? killed?) is the first thing to ask
        log = g.run("journalctl -q -u dockgate -n 150 -o short-monotonic --no-pager", check=False)
        raise GuestError(f"dockgate verify exit {p.returncode}:\n{p.stdout}\n{p.stderr}\n"
                         f"--- the daemon's journal, last 150 lines\n{log.stdout}")
    return p.stdout


def mount_units(g: Guest) -> dict[str, str]:
    out = g.run("systemctl list-units --all --plain --no-legend 'dockgate-mount@*' | awk '{print $1, $3}'").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())
