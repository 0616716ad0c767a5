"""The Debian package's life in a systemd-nspawn container (systemd as PID 1, the
same mmdebstrap tree the QEMU guest boots), on Debian 12 and on Debian 13: install,
the same version again, an upgrade that changes the shipped config (no prompt, the
admin's drop-in kept, the service restarted), remove, purge. Then the package
itself: two builds of one commit are byte-identical, and lintian passes. Run by
scripts/test-guest (needs root); built images and packages are cached in .cache/guest/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.guestlib import RELEASES, GuestError, build_deb, ensure_deb, ensure_image

NEWER = "0.1.0+test.2"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FILES = ["/usr/bin/dockgate", "/usr/lib/systemd/system/dockgate.service",
         "/usr/lib/systemd/system/dockgate-mount@.service", "/usr/lib/udev/rules.d/70-dockgate.rules",
         "/usr/lib/sysusers.d/dockgate.conf", "/usr/lib/tmpfiles.d/dockgate.conf", "/usr/lib/modules-load.d/dockgate.conf",
         "/usr/lib/dockgate/python/gateway/cli/main.py", "/usr/share/dockgate/prometheus-alerts.yml",
         "/usr/share/dockgate/s3-station-policy.json", "/usr/share/dockgate/mosquitto-acl.conf",
         "/usr/share/dockgate/grafana-dashboard.json", "/usr/share/dockgate/grafana-district.json"]
#: what an admin writes (README: settings go in drop-ins, never in the shipped file)
DROP_IN = "/etc/dockgate/dockgate.toml.d/50-station.toml"


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Container:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = subprocess.Popen(["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit",
                                      "--boot", "--private-network", "--machine=dockgate-pkg-test"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.leader = 0
        deadline = time.monotonic() + 60
        while not self.leader:
            out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True,
                                 check=False).stdout.split()
            # the container's PID 1 once it is systemd (before that: nspawn's own child)
            pid1 = [int(pid) for pid in out if _comm(pid) == "systemd"]
            if pid1:
                self.leader = pid1[0]
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise GuestError(f"systemd-nspawn did not start: {self.proc.stdout.read() if self.proc.stdout else ''}")
            else:
                time.sleep(0.05)
        # systemd's bus socket appears a moment after PID 1 starts
        while True:
            p = self.run("systemctl is-system-running --wait", check=False)
            # "Failed to connect to bus" (systemd 252), "... to system scope bus ..." (257)
            if "Failed to connect to" not in p.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert p.stdout.strip() in ("running", "degraded"), p

    def run(self, cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "-r", "-w", "env", "-i", PATH,
                            "DEBIAN_FRONTEND=noninteractive", "sh", "-c", cmd],
                           capture_output=True, text=True, timeout=600, check=False)
        if check and p.returncode:
            raise AssertionError(f"{cmd}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def exists(self, path: str) -> bool:
        return self.run(f"test -e {path}", check=False).returncode == 0

    def stop(self) -> None:
        self.run("systemctl poweroff", check=False)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _with_changed_config(deb: Path, out: Path) -> Path:
    """The same package with a changed shipped /etc/dockgate/dockgate.toml, as a later release has."""
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    conf = tree / "etc/dockgate/dockgate.toml"
    conf.write_text(conf.read_text() + "\n# a later release's shipped default changed\n")
    subprocess.run(f"cd {tree} && find . -type f ! -path './DEBIAN/*' -printf '%P\\0' | sort -z "
                   "| xargs -0 md5sum > DEBIAN/md5sums", shell=True, check=True)
    new = out / deb.name
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(new)], check=True,
                   capture_output=True)
    return new


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    try:
        return ensure_deb(), _with_changed_config(ensure_deb(NEWER), tmp_path_factory.mktemp("newer"))
    except GuestError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(params=RELEASES)
def container(request: pytest.FixtureRequest, tmp_path: Path, debs: tuple[Path, Path]) -> Iterator[Container]:
    if os.geteuid() != 0:
        pytest.fail("tests/test_package.py needs root (systemd-nspawn)", pytrace=False)
    try:
        image = ensure_image(request.param)
    except GuestError as e:
        pytest.fail(str(e), pytrace=False)
    root = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", "--reflink=auto", str(image / "rootfs"), str(root)], check=True)
    for deb in debs:
        shutil.copy(deb, root / "root" / deb.name)
    c = Container(root)
    yield c
    c.stop()


def _active(c: Container) -> str:
    return c.run("systemctl is-active dockgate", check=False).stdout.strip()


def _invocation(c: Container) -> str:
    return c.run("systemctl show -p InvocationID --value dockgate").stdout.strip()


def test_install_reinstall_upgrade_remove_purge_each_clean(container: Container, debs: tuple[Path, Path]) -> None:
    c = container
    old, new = (d.name for d in debs)

    # install: the command, the units, the user, the key, the service enabled
    p = c.run(f"apt-get install -y --no-install-recommends /root/{old} 2>&1")
    assert "did not start" not in p.stdout and "does not load" not in p.stdout, p.stdout
    for f in FILES:
        assert c.exists(f), f
    assert c.run("dockgate --version").stdout.strip().endswith("0.1.0")
    assert c.run("getent passwd dockgate").stdout.split(":")[5] == "/var/lib/dockgate"
    assert c.run("stat -c '%U:%G %a' /etc/dockgate/credentials/station.key /etc/dockgate/dockgate.toml"
                 ).stdout.split() == ["root:root", "600", "root:dockgate", "640"]
    assert c.run("systemctl is-enabled dockgate").stdout.strip() == "enabled"
    assert c.exists("/etc/systemd/system/dockgate.service.d/50-paths.conf")
    key = c.run("sha256sum /etc/dockgate/credentials/station.key").stdout
    assert c.run("stat -c '%U:%G %a' /etc/dockgate/dockgate.toml.d").stdout.split() == ["root:dockgate", "750"]
    c.run(f"printf '[station]\\nid = \"pkg-test-07\"\\n' > {DROP_IN}")
    c.run("install -d -o dockgate -g dockgate /var/lib/dockgate/staging && "
          "echo evidence > /var/lib/dockgate/staging/held-clip.MP4")

    # the same version again
    c.run(f"dpkg -i /root/{old} 2>&1")
    assert c.run("dpkg-query -W -f='${Status} ${Version}' dockgate").stdout == "install ok installed 0.1.0"

    # a newer version whose shipped config changed, installed as an unattended upgrade does:
    # no conffile prompt (the admin never edits the shipped file), the drop-in and the key stay
    before, invocation = _active(c), _invocation(c)
    p = c.run(f"apt-get install -y --no-install-recommends /root/{new} </dev/null 2>&1")
    assert "Configuration file" not in p.stdout, p.stdout
    assert c.run("dpkg-query -W -f='${Version}' dockgate").stdout == NEWER
    assert "a later release's shipped default changed" in c.run("cat /etc/dockgate/dockgate.toml").stdout
    assert not c.exists("/etc/dockgate/dockgate.toml.dpkg-dist") and not c.exists("/etc/dockgate/dockgate.toml.dpkg-old")
    assert c.run(f"cat {DROP_IN}").stdout == '[station]\nid = "pkg-test-07"\n'
    assert c.run("sha256sum /etc/dockgate/credentials/station.key").stdout == key
    assert _active(c) == before  # a running service is running again after the upgrade...
    if before == "active":
        assert _invocation(c) != invocation  # ...as a new process: the upgrade restarted it
    assert c.run("dpkg --audit").stdout == ""

    # remove: the program and units go, the config, key and evidence stay, nothing runs
    c.run("dpkg -r dockgate 2>&1")
    for f in FILES:
        assert not c.exists(f), f
    assert _active(c) in ("inactive", "unknown")
    assert c.exists("/etc/dockgate/dockgate.toml")
    assert c.run("dpkg-query -W -f='${Status}' dockgate").stdout == "deinstall ok config-files"

    # purge: the config goes; evidence and the station key never go with a package operation
    p = c.run("dpkg -P dockgate 2>&1")
    assert "are kept" in p.stdout, p.stdout
    assert not c.exists("/etc/dockgate/dockgate.toml")
    assert not c.exists(DROP_IN)
    assert not c.exists("/etc/systemd/system/dockgate.service.d/50-paths.conf")
    assert c.run("cat /var/lib/dockgate/staging/held-clip.MP4").stdout == "evidence\n"
    assert c.run("sha256sum /etc/dockgate/credentials/station.key").stdout == key
    assert c.run("dpkg-query -W dockgate 2>&1", check=False).returncode != 0
    assert c.run("systemctl --failed --plain --no-legend").stdout.strip() == ""


def test_two_builds_of_one_commit_are_byte_identical(debs: tuple[Path, Path], tmp_path: Path) -> None:
    """A second build, in another folder under another umask, gives the same bytes as the first."""
    try:
        again = build_deb(tmp_path / "again", umask=0o002)
    except GuestError as e:
        pytest.fail(str(e), pytrace=False)
    first = debs[0]
    assert again.name == first.name
    if again.read_bytes() != first.read_bytes():
        listing = [subprocess.run(["dpkg-deb", "-c", str(d)], capture_output=True, text=True, check=True).stdout
                   for d in (first, again)]
        diff = [f"{a} | {b}" for a, b in zip(*(x.splitlines() for x in listing), strict=False) if a != b][:20]
        pytest.fail(f"{first} and {again} differ:\n" + "\n".join(diff), pytrace=False)


def test_lintian_finds_nothing_the_overrides_do_not_explain(debs: tuple[Path, Path]) -> None:
    """packaging/debian/lintian-overrides says why each remaining tag is there."""
    if shutil.which("lintian") is None:
        pytest.fail("lintian is not installed (scripts/setup.sh dev installs it)", pytrace=False)
    p = subprocess.run(["lintian", "--tag-display-limit", "0", "--fail-on", "error,warning", str(debs[0])],
                       capture_output=True, text=True, timeout=900, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
