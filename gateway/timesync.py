"""The station's own clock: is it synchronised?

Every capture time and every recorder clock the station sets rests on the
station's clock, so it is an input like any other. This reads the kernel's
synchronisation state with adjtimex(2) (``modes = 0``: a read, which needs
no privilege) and judges it the way systemd-timedated computes
``NTPSynchronized`` (what ``timedatectl`` shows): synchronised while the
kernel's estimate of the clock's maximum error is below 16 s. An NTP client
(systemd-timesyncd, chrony, ntpd) keeps that estimate small; setting the
clock by hand (``date -s``), a boot with no time source, or a client that has
not disciplined the clock for some hours leaves it at the kernel's limit
(16 s, with ``STA_UNSYNC`` and ``TIME_ERROR``). ``STA_UNSYNC`` alone is not
the test: chrony keeps it set while synchronised when it leaves the RTC to
itself (systemd ignores it for the same reason).

``StationClock`` holds the answer and the alarm: one event when the clock is
found unsynchronised and one when it is synchronised again, however often it
is asked (every dock asks before it sets a recorder's clock, and the daemon
polls it). ``station.require_time_sync = false`` answers "synchronised"
without asking the kernel (a simulated station: its simulated recorders
drift from this machine's clock by definition)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.config import Config

#: adjtimex's return for a clock in error (not synchronised) and the status bit that says so
TIME_ERROR = 5
STA_UNSYNC = 0x0040
#: NTP_PHASE_LIMIT: at or above this maximum error (microseconds) the kernel calls the clock unsynchronised
MAXERROR_LIMIT_US = 16_000_000
#: how often the daemon looks (``StationClock.watch``)
CHECK_INTERVAL_S = 10.0

ALARM = "station_clock_unsynchronised"
CLEARED = "station_clock_synchronised"


class _Timex(ctypes.Structure):
    """struct timex (<sys/timex.h>, the 64-bit time_t layout of amd64 and arm64)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True)
class SyncState:
    synchronised: bool
    #: in words, for the alarm, status and the log
    reason: str
    #: the kernel's estimate of the clock's maximum error, s (None: not read)
    maxerror_s: float | None = None
    #: the kernel's status word (STA_*) and adjtimex's return (TIME_OK .. TIME_ERROR)
    status: int | None = None
    clock_state: int | None = None
    #: False: not asked (``station.require_time_sync = false``)
    checked: bool = True


NOT_CHECKED = SyncState(True, "not checked (station.require_time_sync = false)", checked=False)


@functools.cache
def _libc_adjtimex() -> Callable[[Any], int]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = libc.adjtimex
    fn.argtypes = [ctypes.POINTER(_Timex)]
    fn.restype = ctypes.c_int
    return fn


def judge(clock_state: int, status: int, maxerror_us: int) -> SyncState:
    """What adjtimex's answer means (systemd-timedated's rule: the maximum error)."""
    maxerror_s = round(maxerror_us / 1e6, 6)
    flags = ", ".join(x for x, on in (("STA_UNSYNC", status & STA_UNSYNC), ("TIME_ERROR", clock_state == TIME_ERROR))
                      if on)
    detail = f"maximum error {maxerror_s:g} s" + (f", {flags}" if flags else "")
    if maxerror_us >= MAXERROR_LIMIT_US:
        return SyncState(False, f"not synchronised: no time source disciplines the clock ({detail})", maxerror_s,
                         status, clock_state)
    return SyncState(True, f"synchronised ({detail})", maxerror_s, status, clock_state)


def read_kernel() -> SyncState:
    """The kernel's synchronisation state now. A clock whose state cannot be
    read counts as unsynchronised: the safe side."""
    tx = _Timex()  # modes 0: read only
    try:
        fn = _libc_adjtimex()
    except (OSError, AttributeError) as e:
        return SyncState(False, f"the kernel's clock state cannot be read: {e}")
    rc = fn(ctypes.byref(tx))
    if rc == -1:
        err = ctypes.get_errno()
        hint = " (a seccomp filter, systemd's ProtectClock= say, blocks even reading it)" if err == errno.EPERM else ""
        return SyncState(False, f"the kernel's clock state cannot be read: adjtimex: {os.strerror(err)}{hint}")
    return judge(rc, tx.status, tx.maxerror)


#: Catalog.emit: (type, slot, **data)
Emit = Callable[..., object]


class StationClock:
    """The station clock's state and its one alarm. Used from the event loop
    only (dock sessions and the daemon's poll), so it needs no lock."""

    def __init__(self, required: bool = True, source: Callable[[], SyncState] | None = None) -> None:
        self.required = required
        #: what is asked; None: the kernel (``read_kernel``, looked up at each call)
        self.source = source
        self.state: SyncState | None = None
        self.alarmed = False
        self.alarm_at = 0.0
        #: when the current state (synchronised or not) was first seen
        self.since: float | None = None
        self.checked_at: float | None = None

    @classmethod
    def for_config(cls, cfg: Config) -> StationClock:
        return cls(cfg.station.require_time_sync)

    def read(self) -> SyncState:
        if not self.required:
            return NOT_CHECKED
        return (self.source or read_kernel)()

    def check(self, emit: Emit) -> SyncState:
        """Ask now; raise the alarm (*emit* one ``station_clock_unsynchronised``)
        when the clock is found unsynchronised and none is raised, clear it (one
        ``station_clock_synchronised``) when it is found synchronised again."""
        state = self.read()
        now = time.time()
        if self.state is None or state.synchronised != self.state.synchronised:
            self.since = now
        self.state, self.checked_at = state, now
        if not state.synchronised and not self.alarmed:
            emit(ALARM, None, reason=state.reason, maxerror_s=state.maxerror_s)
            self.alarmed = True
            self.alarm_at = now
        elif state.synchronised and self.alarmed:
            emit(CLEARED, None, reason=state.reason, maxerror_s=state.maxerror_s,
                 unsynchronised_s=round(now - self.alarm_at, 1))
            self.alarmed = False
        return state

    async def watch(self, emit: Emit, interval_s: float = CHECK_INTERVAL_S) -> None:
        """The daemon's worker: check now and every *interval_s*, so the alarm
        is raised and cleared without waiting for a dock. Never returns."""
        while True:
            self.check(emit)
            await asyncio.sleep(interval_s)

    def status(self) -> dict[str, Any]:
        """For the status snapshot (``dockgate status``, MQTT's retained state, metrics)."""
        s = self.state
        return {"required": self.required, "synchronised": None if s is None else s.synchronised,
                "alarm": self.alarmed, "reason": None if s is None else s.reason,
                "maxerror_s": None if s is None else s.maxerror_s, "since": self.since,
                "checked_at": self.checked_at}
