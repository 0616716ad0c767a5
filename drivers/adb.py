"""The station's adb: one class running Debian's ``adb`` client for the
Android families (the seam tests replace or point at a simulated adbd).

Only F profiles start it: the ZZX app opens its JSON port only after the
``com.zzx.sdk`` broadcast (reference §2F, §5), which a PC sends with ``adb
shell am broadcast``; ``adb forward`` then carries a station port to it. A
serial of the form ``host:port`` is a network adbd (``adb connect`` first).
The adb server the client starts is adb's own (``ANDROID_ADB_SERVER_PORT``
chooses its port). Failures are ``DeviceGone``/``DeviceTimeout``: transient,
as a recorder that is not yet ready is."""

from __future__ import annotations

import re
import shutil
import subprocess

from drivers.base import DeviceGone, DeviceTimeout

_NETWORK = re.compile(r"^[\w.\-\[\]:]+:\d+$")


class Adb:
    def __init__(self, serial: str | None, label: str, *, timeout_s: float = 10.0) -> None:
        self.serial = serial
        self.label = label
        self.timeout_s = timeout_s
        #: every command run, for the event log and tests
        self.ran: list[list[str]] = []

    def _run(self, *args: str, device: bool = True) -> str:
        adb = shutil.which("adb")
        if adb is None:
            raise DeviceGone(self.label, "this profile reaches the recorder through adb, and adb is not installed "
                                         "(Debian package adb)")
        cmd = [adb, *(["-s", self.serial] if device and self.serial else []), *args]
        self.ran.append(list(args))
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceTimeout(self.label, f"adb {args[0]} timed out after {self.timeout_s:g}s") from None
        except OSError as e:
            raise DeviceGone(self.label, f"adb: {e}") from None
        if out.returncode != 0:
            raise DeviceGone(self.label, f"adb {args[0]} failed: {(out.stderr or out.stdout).strip()[:200]}")
        return out.stdout

    def connect(self) -> None:
        """``adb connect`` for a network serial; nothing for a USB one."""
        if self.serial and _NETWORK.match(self.serial):
            out = self._run("connect", self.serial, device=False)
            if "connected" not in out:
                raise DeviceGone(self.label, f"adb connect {self.serial}: {out.strip()[:200]}")

    def broadcast(self, action: str, int_extras: dict[str, int]) -> None:
        """``adb shell am broadcast -a <action> --ei <key> <n>...``."""
        extras = [w for k, v in int_extras.items() for w in ("--ei", k, str(int(v)))]
        out = self._run("shell", " ".join(["am", "broadcast", "-a", action, *extras]))
        if "Broadcast completed" not in out:
            raise DeviceGone(self.label, f"broadcast {action} not delivered: {out.strip()[:200]}")

    def forward(self, remote_port: int) -> int:
        """``adb forward tcp:0 tcp:<port>``: the station port adb chose."""
        out = self._run("forward", "tcp:0", f"tcp:{remote_port}").strip()
        if not out.isdigit():
            raise DeviceGone(self.label, f"adb forward gave no port: {out[:200]!r}")
        return int(out)

    def remove_forward(self, local_port: int) -> None:
        self._run("forward", "--remove", f"tcp:{local_port}")
