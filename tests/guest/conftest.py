"""The real-Linux test bed: a Debian 12 and a Debian 13 guest (QEMU, systemd as PID 1;
the session fixture is parametrized over the releases, so every test runs on both;
DOCKGATE_GUEST_RELEASES="trixie" narrows it), the package installed with apt, the station configured the way an admin
would (only /etc/dockgate/dockgate.toml edited), then a snapshot every test starts
from. Recorders are USB gadgets of the guest's own kernel (dummy_hcd + configfs).

Run: scripts/test-guest (builds the image and the .deb on first use; cached in
.cache/guest/). Failing to build or boot fails the tests; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.guest.guestlib import CACHE, IMAGE_DIR, RELEASES, Guest, GuestError, ensure_deb, ensure_image

#: the edits an admin makes to the shipped /etc/dockgate/dockgate.toml
STATION = "guest-01"
ARCHIVE = "/srv/evidence"   # outside the unit's own paths: needs setup-systemd's drop-in (finding 3)


@dataclass
class Installed:
    guest: Guest
    deb: Path
    install: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def edit_config(g: Guest, **sections: dict[str, str]) -> None:
    """Set keys in /etc/dockgate/dockgate.toml in place (python3's tomllib checks the result)."""
    script = ["import re,sys,tomllib", "p='/etc/dockgate/dockgate.toml'", "s=open(p).read()"]
    for section, kv in sections.items():
        for key, value in kv.items():
            script += [
                f"sec=re.search(r'(?ms)^\\[{section}\\]\\n(.*?)(?=^\\[|\\Z)', s)",
                f"body=sec.group(1); line={key!r}+' = '+{value!r}",
                f"nb=re.sub(r'(?m)^#? ?{key} = .*$', lambda m: line, body, count=1) "
                f"if re.search(r'(?m)^#? ?{key} = ', body) else line+'\\n'+body",
                "s=s[:sec.start(1)]+nb+s[sec.end(1):]",
            ]
    script += ["tomllib.loads(s)", "open(p,'w').write(s)"]
    g.run("python3 -", input="\n".join(script) + "\n")


def configure_station(g: Guest) -> None:
    edit_config(g, station={"id": f'"{STATION}"'}, archive={"path": f'"{ARCHIVE}"'})
    g.run(f"install -d -o dockgate -g dockgate -m 0750 {ARCHIVE} && dockgate setup-systemd "
          "&& dockgate check-config && systemctl daemon-reload && systemctl restart dockgate")


def wait_active(g: Guest, timeout: float = 120) -> None:
    g.wait_for("[ \"$(systemctl show -p ActiveState --value dockgate)\" = active ]", timeout,
               "dockgate.service active")


@pytest.fixture(scope="session", params=os.environ.get("DOCKGATE_GUEST_RELEASES", " ".join(RELEASES)).split())
def installed(request: pytest.FixtureRequest) -> Iterator[Installed]:
    release: str = request.param
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    try:
        t = time.monotonic()
        image = ensure_image(release)
        timings["image"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        deb = ensure_deb()
        timings["deb"] = round(time.monotonic() - t, 1)
        run_dir = CACHE / f"run-{release}"
        run_dir.mkdir(parents=True, exist_ok=True)
        g = Guest(image, run_dir)
        g.boot()
        timings["boot"] = g.timings["boot"][-1]
    except (GuestError, OSError) as e:
        pytest.fail(f"test bed not available: {e}", pytrace=False)
    try:
        g.put(IMAGE_DIR / "gadget.sh", "/usr/local/sbin/gadget.sh", mode="755")
        g.put(IMAGE_DIR / "ffs_recorder.py", "/usr/local/sbin/ffs_recorder.py", mode="755")
        t = time.monotonic()
        g.put(deb, "/root/" + deb.name)
        timings["copy deb"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        p = g.run(f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /root/{deb.name} 2>&1",
                  check=False, timeout=900)
        timings["apt install"] = round(time.monotonic() - t, 1)
        g.run(f"rm -f /root/{deb.name}")
        inst = Installed(g, deb, install=f"exit {p.returncode}\n{p.stdout}", timings=timings)
        g.run("gadget.sh init 4 >/dev/null && modprobe usb_f_fs")
        yield inst
    finally:
        timings["session"] = round(time.monotonic() - t0, 1)
        print(f"\n{release} guest timings: {timings} {g.timings}")
        (CACHE / f"timings-{release}.json").write_text(json.dumps({"session": timings, "guest": g.timings}, indent=1) + "\n")
        g.power_cut()  # nothing in it is kept: no need to wait for a clean shutdown


@pytest.fixture(scope="session")
def configured(installed: Installed) -> Installed:
    """The station after the admin's edits: snapshot 'configured' (taken once)."""
    g = installed.guest
    if "configured" not in installed.timings:
        t = time.monotonic()
        configure_station(g)
        wait_active(g)
        g.run("sync")
        g.savevm("configured")
        installed.timings["configured"] = round(time.monotonic() - t, 1)
    return installed


@pytest.fixture
def station(configured: Installed) -> Guest:
    """A fresh configured station for each test (loadvm, ~2 s)."""
    g = configured.guest
    if not g.alive():
        g.boot(reuse=True)
    g.loadvm("configured")
    return g
