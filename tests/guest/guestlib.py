"""Drive the QEMU test-bed guest: build (or reuse) the image and the .deb, boot,
run commands over ssh, snapshots, power cut.

Everything goes over ssh (no 9p share: a mounted virtio-9p export makes QEMU refuse
savevm/loadvm). Nothing here skips: a missing QEMU, a failed image build or a guest
that does not boot raises GuestError, and the session fixture turns that into a
failure.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = Path(__file__).resolve().parent / "image"
CACHE = Path(os.environ.get("DOCKGATE_GUEST_CACHE", REPO / ".cache" / "guest"))
#: where a run keeps its guests' overlays, ports and monitor sockets (run-<release>): the shared
#: cache by default; a run beside another one on the same cache needs a folder of its own
RUN_ROOT = Path(os.environ.get("DOCKGATE_GUEST_RUN_DIR", CACHE))
#: what goes into the .deb: its cache key
DEB_INPUTS = ("gateway", "drivers", "firmware_profiles", "systemd", "packaging", "config", "docs",
              "README.md", "pyproject.toml", "scripts/build-deb")


class GuestError(RuntimeError):
    pass


#: what an NTP client does once it has the time (systemd-timesyncd's adjtimex: ADJ_STATUS |
#: ADJ_MAXERROR | ADJ_ESTERROR, status STA_PLL): the kernel's maximum error small and STA_UNSYNC
#: clear, so timedatectl says "System clock synchronized: yes" and dockgate sets recorder clocks
#: (gateway/timesync.py). `date -s` alone leaves the clock unsynchronised (16 s, STA_UNSYNC).
MARK_SYNCHRONISED = r"""
import ctypes, ctypes.util, os
L, I = ctypes.c_long, ctypes.c_int
class Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", L), ("freq", L), ("maxerror", L), ("esterror", L),
                ("status", I), ("constant", L), ("precision", L), ("tolerance", L), ("sec", L), ("usec", L),
                ("tick", L), ("ppsfreq", L), ("jitter", L), ("shift", I), ("stabil", L), ("jitcnt", L),
                ("calcnt", L), ("errcnt", L), ("stbcnt", L), ("tai", I), ("pad", I * 11)]
ADJ_MAXERROR, ADJ_ESTERROR, ADJ_STATUS, STA_PLL = 0x4, 0x8, 0x10, 0x1
t = Timex(modes=ADJ_STATUS | ADJ_MAXERROR | ADJ_ESTERROR, status=STA_PLL, maxerror=10000, esterror=1000)
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
if libc.adjtimex(ctypes.byref(t)) < 0:
    raise SystemExit("adjtimex: " + os.strerror(ctypes.get_errno()))
"""


def _sources_files() -> list[Path]:
    out = [p for p in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")) if p.is_file()]
    return out[:1]


#: the Debian releases the package installs on (the test bed builds a guest for each)
RELEASES = ("bookworm", "trixie")


def image_key(release: str = "bookworm") -> str:
    h = hashlib.sha256(release.encode())
    for p in sorted(IMAGE_DIR.iterdir()):
        if p.name in ("build.sh", "customize.sh"):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    for p in _sources_files():
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"[guest {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_image(release: str = "bookworm") -> Path:
    """The guest image of this Debian release for this package list and these scripts: built once, then
    reused (one cached image per release)."""
    for tool in ("mmdebstrap", "qemu-system-x86_64", "qemu-img", "mke2fs", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise GuestError(f"{tool} is not installed (scripts/setup.sh dev installs it)")
    out = CACHE / f"image-{release}-{image_key(release)}"
    if (out / "ok").exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    t = time.monotonic()
    p = subprocess.run([str(IMAGE_DIR / "build.sh"), str(tmp), release], check=False, capture_output=True, text=True, timeout=1800)
    if p.returncode:
        raise GuestError(f"guest image build failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    # an image dir holds absolute paths nowhere: renaming it is fine
    _log(f"{release} image built in {time.monotonic() - t:.0f} s: {p.stdout.strip()}")
    for old in CACHE.glob(f"image-{release}-*"):
        if old != out:
            shutil.rmtree(old, ignore_errors=True)
    return out


def source_date_epoch() -> str:
    """What scripts/build-deb stamps every file with: the last commit's time (part of the .deb's bytes)."""
    return os.environ.get("SOURCE_DATE_EPOCH") or subprocess.run(
        ["git", "log", "-1", "--format=%ct"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def _deb_key(version: str | None) -> str:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", *DEB_INPUTS], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    h = hashlib.sha256(f"{version or ''}\0{source_date_epoch()}".encode())
    for f in sorted(files):
        path = REPO / f
        if path.is_file():
            h.update(f.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def build_deb(out: Path, version: str | None = None, umask: int = 0o022) -> Path:
    """Run scripts/build-deb into OUT (no cache); GuestError if it fails."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=source_date_epoch())
    if version:
        env["DOCKGATE_DEB_VERSION"] = version
    p = subprocess.run(["sh", "-c", f"umask {umask:04o} && exec \"$0\" \"$1\"", str(REPO / "scripts" / "build-deb"),
                        str(out)], check=False, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode:
        raise GuestError(f"scripts/build-deb failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return sorted(out.glob("dockgate_*.deb"))[0]


def ensure_deb(version: str | None = None) -> Path:
    """scripts/build-deb's package for the checkout as it is (cached by content and commit time)."""
    out = CACHE / f"deb-{_deb_key(version)}"
    debs = sorted(out.glob("dockgate_*.deb")) if out.is_dir() else []
    if debs:
        return debs[0]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    t = time.monotonic()
    build_deb(tmp, version)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    _log(f".deb built in {time.monotonic() - t:.0f} s")
    # keep the few newest packages (this version and the upgrade test's), not every edit's
    for old in sorted(CACHE.glob("deb-*"), key=lambda p: p.stat().st_mtime, reverse=True)[4:]:
        shutil.rmtree(old, ignore_errors=True)
    return sorted(out.glob("dockgate_*.deb"))[0]


class Guest:
    """One QEMU guest (TCG here: KVM does not run guests on this host; boot.sh probes)."""

    def __init__(self, image: Path, run_dir: Path) -> None:
        self.image, self.run_dir = image, run_dir
        self.env = dict(os.environ, OUT=str(image), RUN=str(run_dir), SHARE="0",
                        ACCEL=os.environ.get("DOCKGATE_GUEST_ACCEL", "auto"))
        self.timings: dict[str, list[float]] = {}

    def _time(self, name: str, t0: float) -> float:
        d = round(time.monotonic() - t0, 1)
        self.timings.setdefault(name, []).append(d)
        return d

    # ---- lifecycle -------------------------------------------------------------------
    def boot(self, reuse: bool = False) -> None:
        t = time.monotonic()
        self._drop_master()
        env = dict(self.env, REUSE="1" if reuse else "0")
        p = subprocess.run([str(IMAGE_DIR / "boot.sh")], check=False, env=env, capture_output=True, text=True, timeout=900)
        if p.returncode and "Kernel panic" in p.stderr:
            # under software emulation (no KVM) the guest's kernel has panicked in an interrupt while
            # booting (kmem_cache_free, "Fatal exception in interrupt"), once in many boots: boot it again.
            # The disk is as the panic left it, which is one more power cut for the station to survive.
            _log(f"the guest's kernel panicked while booting; booting again:\n{p.stderr[-1500:]}")
            p = subprocess.run([str(IMAGE_DIR / "boot.sh")], check=False, env=env, capture_output=True, text=True,
                               timeout=900)
        if p.returncode:
            raise GuestError(f"guest did not boot ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        _log(f"booted in {self._time('boot', t)} s: {p.stdout.strip().splitlines()[-1]}")
        self.sync_clock()

    @property
    def pid(self) -> int:
        return int((self.run_dir / "qemu.pid").read_text())

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def stop(self) -> None:
        if not self.alive():
            return
        pid = self.pid
        self.run("systemctl poweroff", check=False, timeout=30)
        self._drop_master()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not self.alive():
                return
            time.sleep(0.2)
        os.kill(pid, 9)

    def power_cut(self) -> None:
        """SIGKILL QEMU: the guest loses whatever it has not flushed."""
        self._drop_master()
        pid = self.pid
        os.kill(pid, 9)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.1)

    # ---- commands ----------------------------------------------------------------------
    def _ssh(self, master: str = "no") -> list[str]:
        port = (self.run_dir / "ssh-port").read_text().strip()
        return ["ssh", "-i", str(self.image / "id_ed25519"), "-p", port, "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                "-o", "ServerAliveInterval=10", "-o", "ConnectTimeout=20",
                "-o", f"ControlPath={self._mux}", "-o", f"ControlMaster={master}", "root@127.0.0.1"]

    # One ssh connection carries every command (OpenSSH connection sharing): a new connection
    # costs a key exchange, an sshd and a logind session in a TCG guest, 1-3 s on an idle host and
    # over 15 s while the guest is busy; a shared one's session well under a second. A command
    # whose master is gone simply connects on its own (ssh falls back when ControlPath does not
    # answer). The master is dropped before anything that changes the guest under it (loadvm,
    # boot, power cut, poweroff): a restored guest knows nothing of the connection.
    @property
    def _mux(self) -> Path:
        return self.run_dir / "ssh-mux"

    def _ensure_master(self) -> None:
        if self._mux.exists():
            return
        # -f: into the background once logged in; no pipes of ours kept open (capture would wait on them)
        subprocess.run([*self._ssh("yes")[:-1], "-o", "ControlPersist=yes", "-N", "-f", "root@127.0.0.1"],
                       check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)

    def _drop_master(self) -> None:
        if self._mux.exists():
            subprocess.run(["ssh", "-o", f"ControlPath={self._mux}", "-O", "exit", "root@127.0.0.1"], check=False,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            self._mux.unlink(missing_ok=True)

    def run(self, cmd: str, check: bool = True, timeout: float = 300,
            input: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
        data = input.encode() if isinstance(input, str) else input
        self._ensure_master()
        p = subprocess.run([*self._ssh(), cmd], check=False, input=data, capture_output=True, timeout=timeout)
        out = subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"),
                                          p.stderr.decode(errors="replace"))
        if check and p.returncode:
            raise GuestError(f"guest command failed ({p.returncode}): {cmd}\n--- stdout\n{out.stdout[-4000:]}"
                             f"\n--- stderr\n{out.stderr[-4000:]}")
        return out

    def put(self, src: Path | bytes, dst: str, mode: str = "644") -> None:
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        q = shlex.quote(dst)
        self.run(f"mkdir -p $(dirname {q}) && cat > {q}.part && chmod {mode} {q}.part && mv {q}.part {q}",
                 input=data, timeout=600)

    def write(self, dst: str, text: str, mode: str = "644") -> None:
        self.put(text.encode(), dst, mode)

    def sync_clock(self) -> None:
        # after loadvm the guest clock is the snapshot's; the guest has no NTP client: set the
        # time, then tell the kernel it is synchronised, as a station's NTP client would
        self.run(f"date -s @{time.time():.3f} >/dev/null && python3 -", input=MARK_SYNCHRONISED)

    def mark_synchronised(self) -> None:
        self.run("python3 -", input=MARK_SYNCHRONISED)

    def wait_for(self, shell_test: str, timeout: float = 120, what: str = "") -> None:
        """Poll a shell condition in the guest (one ssh round trip for the whole wait)."""
        p = self.run(f"end=$(( $(date +%s) + {int(timeout)} )); until {shell_test}; do "
                     f"[ $(date +%s) -lt $end ] || exit 99; sleep 0.2; done", check=False, timeout=timeout + 60)
        if p.returncode == 99:
            raise GuestError(f"timed out after {timeout} s waiting for {what or shell_test}\n"
                             + self.diagnostics())
        if p.returncode:
            raise GuestError(f"waiting for {what or shell_test} failed: {p.stderr}")

    def diagnostics(self) -> str:
        p = self.run("systemctl status --no-pager -n0 dockgate 'dockgate-mount@*' 2>&1 | head -40; "
                     "echo; journalctl -b --no-pager -n 60 -o short-monotonic "
                     "-u dockgate -u 'dockgate-mount@*' 2>&1", check=False, timeout=60)
        return p.stdout

    # ---- snapshots (QEMU human monitor) ---------------------------------------------
    def hmp(self, command: str, timeout: float = 300) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.run_dir / "monitor.sock"))
            buf = b""
            while not buf.endswith(b"(qemu) "):
                buf += s.recv(4096)
            s.sendall(command.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"(qemu) "):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        return buf.decode(errors="replace")

    def savevm(self, name: str) -> None:
        t = time.monotonic()
        # the guest's monotonic clock runs on from where the last test left it when a snapshot
        # is loaded, so a service's last watchdog ping looks that much older: the snapshot keeps
        # systemd's watchdogs off (a deadline passed at the jump is then let go, not acted on),
        # and loadvm turns them back on once the guest runs; the daemon pings again at once
        self.run("systemctl service-watchdogs no")
        try:
            out = self.hmp(f"savevm {name}")
        finally:
            self.run("systemctl service-watchdogs yes")
        if "rror" in out:
            raise GuestError(out)
        self._time(f"savevm {name}", t)

    def loadvm(self, name: str) -> None:
        t = time.monotonic()
        self._drop_master()
        out = self.hmp(f"loadvm {name}")
        if "rror" in out:
            raise GuestError(out)
        self.sync_clock()
        self.run("systemctl service-watchdogs yes")
        self._time(f"loadvm {name}", t)

    # ---- dockgate ------------------------------------------------------------------------
    def service(self, *props: str) -> dict[str, str]:
        p = self.run("systemctl show dockgate " + " ".join(f"-p {x}" for x in props))
        return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
