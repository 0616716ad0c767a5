"""The real-Linux test bed: a Debian 12 and a Debian 13 guest (QEMU, systemd as PID 1;
the session fixture is parametrized over the releases, so every test runs on both;
DOCKGATE_GUEST_RELEASES="trixie" narrows it), the package installed with apt, the station configured the way an admin
would (only /etc/dockgate/dockgate.toml edited), then a snapshot every test starts
from. Recorders are USB gadgets of the guest's own kernel (dummy_hcd + configfs).

Run: scripts/test-guest (builds the image and the .deb on first use; cached in
.cache/guest/, or DOCKGATE_GUEST_CACHE). Failing to build or boot fails the tests;
nothing is skipped. Two runs on one cache need a DOCKGATE_GUEST_RUN_DIR each: a
run's guests keep their overlay, ssh port and monitor socket in run-<release> there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.guest.guestlib import IMAGE_DIR, RELEASES, RUN_ROOT, Guest, GuestError, ensure_deb, ensure_image

#: the edits an admin makes to the shipped /etc/dockgate/dockgate.toml
STATION = "guest-01"
ARCHIVE = "/srv/evidence"   # outside the unit's own paths: needs setup-systemd's drop-in (finding 3)


@dataclass
class Installed:
    guest: Guest
    deb: Path
    install: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    #: what the station looked like right after apt install, before any test configured or changed it
    #: (tests run in any order; the guest is shared)
    after_install: dict[str, str] = field(default_factory=dict)


DROP_IN = "/etc/dockgate/dockgate.toml.d/50-station.toml"


def edit_config(g: Guest, **sections: dict[str, str]) -> None:
    """Set keys in the station's drop-in, as the README has the admin do (the
    shipped dockgate.toml stays the package's, so upgrades never prompt);
    values are TOML literals; python3's tomllib checks the result."""
    script = ["import os,re,tomllib", f"p={DROP_IN!r}", "secs={}", "cur=None",
              "if os.path.exists(p):",
              "  for line in open(p):",
              "    m=re.match(r'^\\[(.+)\\]\\s*$', line)",
              "    if m: cur=secs.setdefault(m.group(1),{}); continue",
              "    m=re.match(r'^(\\w+) = (.*)$', line.rstrip('\\n'))",
              "    if m and cur is not None: cur[m.group(1)]=m.group(2)"]
    for section, kv in sections.items():
        for key, value in kv.items():
            script.append(f"secs.setdefault({section!r},{{}})[{key!r}]={value!r}")
    script += ["s=''.join('['+k+']\\n'+''.join(a+' = '+b+'\\n' for a,b in v.items())+'\\n' for k,v in secs.items())",
               "tomllib.loads(s)", "os.makedirs(os.path.dirname(p), exist_ok=True)", "open(p,'w').write(s)"]
    g.run("python3 -", input="\n".join(script) + "\n")
    g.run(f"chown root:dockgate {DROP_IN} && chmod 0640 {DROP_IN}")


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
        run_dir = RUN_ROOT / f"run-{release}"
        run_dir.mkdir(parents=True, exist_ok=True)
        g = Guest(image, run_dir)
        g.boot()
        timings["boot"] = g.timings["boot"][-1]
    except (GuestError, OSError) as e:
        pytest.fail(f"test bed not available: {e}", pytrace=False)
    try:
        g.put(IMAGE_DIR / "gadget.sh", "/usr/local/sbin/gadget.sh", mode="755")
        g.put(IMAGE_DIR / "ffs_recorder.py", "/usr/local/sbin/ffs_recorder.py", mode="755")
        g.put(IMAGE_DIR / "ffs_msc.py", "/usr/local/sbin/ffs_msc.py", mode="755")
        t = time.monotonic()
        g.put(deb, "/root/" + deb.name)
        timings["copy deb"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        p = g.run(f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /root/{deb.name} 2>&1",
                  check=False, timeout=900)
        timings["apt install"] = round(time.monotonic() - t, 1)
        g.run(f"rm -f /root/{deb.name}")
        inst = Installed(g, deb, install=f"exit {p.returncode}\n{p.stdout}", timings=timings)
        inst.after_install = {f"service.{k}": v for k, v in g.service(
            "Type", "ActiveState", "NRestarts", "UnitFileState").items()}
        for name, cmd in (("status", "dockgate status"), ("which", "command -v dockgate"),
                          ("groups", "id -nG dockgate"),
                          ("key", "stat -c '%U %a' /etc/dockgate/credentials/station.key")):
            inst.after_install[name] = g.run(cmd, check=False).stdout
        g.run("gadget.sh init 4 >/dev/null && modprobe usb_f_fs")
        yield inst
    finally:
        timings["session"] = round(time.monotonic() - t0, 1)
        print(f"\n{release} guest timings: {timings} {g.timings}")
        (RUN_ROOT / f"timings-{release}.json").write_text(json.dumps({"session": timings, "guest": g.timings}, indent=1) + "\n")
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


#: scenarios that run on one release only, the current stable: the every-family scenario costs some 8 minutes
#: per release under software emulation (15 gadgets), and what it adds to the other scenarios, which run on both,
#: is the families' firmware over the kernel's USB, not the release
ONE_RELEASE = {"test_families.py": "trixie"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        want = ONE_RELEASE.get(item.path.name)
        callspec = getattr(item, "callspec", None)
        release = callspec.params.get("installed") if callspec is not None else None
        (drop if want is not None and release is not None and release != want else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
