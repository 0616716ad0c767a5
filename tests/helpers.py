"""Test helpers: run the real `dockgate` CLI and daemon as processes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.evidence.manifest import is_evidence_metadata

#: the test bed's own commands (`dockgate sim ...` writes recorder folders and slot files and nothing else):
#: run in this process, through the same parser and exit codes, as a Python start-up apiece cost the suite minutes
_IN_PROCESS = {("sim", "make"), ("sim", "attach"), ("sim", "detach"), ("sim", "station")}


def _in_process(args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    from gateway.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as e:  # argparse: usage errors, --help
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return subprocess.CompletedProcess(["dockgate", *args], rc, out.getvalue(), err.getvalue())


def dockgate(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if tuple(args[:2]) in _IN_PROCESS:
        proc = _in_process(args)
    else:
        proc = subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], capture_output=True, check=False,
                              text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"dockgate {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def events(config: Path, type_: str | None = None) -> list[dict[str, Any]]:
    """Every event the station recorded, oldest first, as `dockgate events
    --json --since 0` prints them (the same read, in this process: a Python
    start-up per poll cost the suite minutes; tests/test_cli.py holds the
    command's own promises); only those of *type_* when given."""
    from gateway.cli.status import read_events

    evs = [json.loads(json.dumps(e, ensure_ascii=False)) for e in read_events(load_config(config), 0, 1_000_000)]
    return [e for e in evs if type_ is None or e["type"] == type_]


def wait_until(cond: Callable[[], bool], timeout: float = 30, what: str = "condition",
               interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def attach(config: Path, recorder: Path, slot: int) -> None:
    """Dock a simulated recorder (`dockgate sim attach`)."""
    dockgate("sim", "attach", str(recorder), "-c", str(config), "--slot", str(slot))


def detach(config: Path, slot: int) -> None:
    dockgate("sim", "detach", "-c", str(config), "--slot", str(slot))


def hand_made_recorder(root: Path, serial: str, *, officer: str = "054321", protocol: str = "ums",
                       link_rate: int = 0, extra: str = "") -> Path:
    """A recorder folder written by hand, as the README shows; returns its storage/."""
    (root / "storage").mkdir(parents=True)
    (root / "device.toml").write_text(f'serial = "{serial}"\nofficer = "{officer}"\nprotocol = "{protocol}"\n'
                                      f'link_rate = {link_rate}\n{extra}')
    return root / "storage"


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def source_hashes(storage: Path) -> Counter[str]:
    return Counter(sha256_file(p) for p in storage.rglob("*") if p.is_file() and not p.is_symlink())


def archive_hashes(archive: Path) -> Counter[str]:
    """The media the archive holds, as a reader sees it: not the archive's
    temp folder (``.dockgate-tmp``), whose files come and go mid-walk."""
    return Counter(sha256_file(p) for p in archive.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(archive).parts)
                   and not is_evidence_metadata(str(p.relative_to(archive))))


class DaemonProc:
    """`dockgate run -c CONFIG` as a real child process."""

    def __init__(self, config: Path, log: Path, umask: int | None = None, module: str = "gateway.cli.main",
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.umask = umask
        #: what runs `run -c CONFIG`: the product, or a test wrapper around it
        self.module = module
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProc:
        self._logf = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, "run", "-c", str(self.config)],
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                                     umask=-1 if self.umask is None else self.umask)
        # running, and the live status is this process's own (its slots listed), not one a previous daemon left
        pid = self.proc.pid
        self.wait_for(lambda s: s["daemon"]["running"] and s["daemon"]["pid"] == pid, timeout=30,
                      what="daemon to start")
        return self

    def status(self) -> dict[str, Any]:
        """What `dockgate status --json` prints, read in this process (as
        `events`, for the same reason; the command is tested in tests/test_cli.py)."""
        from gateway.cli.status import collect

        result: dict[str, Any] = json.loads(json.dumps(collect(load_config(self.config)), ensure_ascii=False))
        return result

    def wait_for(self, cond: Callable[[dict[str, Any]], bool], timeout: float = 60,
                 what: str = "condition", interval: float = 0.1) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        s: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} waiting for {what}:\n"
                                     + self.log.read_text(errors="replace")[-4000:])
            s = self.status()
            if cond(s):
                return s
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last status {json.dumps(s)[:2000]}\n"
                             + self.log.read_text(errors="replace")[-4000:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._logf.close()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait (the unit's TimeoutStopSec); if the daemon does not
        drain in time, its thread stacks (SIGUSR1) go into the failure."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(2)
                self.proc.kill()
                self.proc.wait(10)
                self._logf.close()
                raise AssertionError(f"daemon did not stop within {timeout}s of SIGTERM; its stacks:\n"
                                     + self.log.read_text(errors="replace")[-12000:]) from None
        self._logf.close()
        return self.proc.returncode


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """*path* read-only (a read-only bind mount on itself, as systemd's
    ProtectSystem= makes an archive mount) until the block ends. Needs root,
    as the tests run in CI; without it the test fails, it does not skip."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def scrape(port: int) -> dict[str, float]:
    """A Prometheus endpoint's samples on this host: 'name{labels}' -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
