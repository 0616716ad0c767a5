"""The pages' heaviest work in a process of its own: a dispatch CSV's
proposals (20 000 rows: parsing, the rules, a search per officer) and the
statistics over the whole catalog.

A thread would keep them off every event loop but not off the GIL: a
20 000-row CSV parsed beside a pull slowed the pull by about 11 %
(bench/web_tenant.py). In a process they cost the daemon nothing but the
answer's bytes, and a request past ``web.heavy_timeout_s`` is really
stopped: the worker is killed and the next request starts a fresh one.

One worker, started on first use with ``spawn`` (never ``fork``: the
daemon has threads), reading the catalog on a read-only connection of its
own, at the lowest CPU priority; it exits with the daemon, or after
``IDLE_S`` without work, so an idle station does not keep its memory."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: a worker idle this long is stopped (seconds)
IDLE_S = 120.0

#: in the worker: one reader per catalog for its life
_readers: dict[tuple[str, str], Any] = {}


def _reader_for(catalog: str, staging: str) -> Any:
    if (catalog, staging) not in _readers:
        from gateway.pipeline.staging import Staging
        from gateway.web.queries import Reader

        _readers[catalog, staging] = Reader(Path(catalog), Staging(Path(staging), 0))
    return _readers[catalog, staging]


def propose_in_worker(catalog: str, staging: str, text: str) -> Any:
    from gateway.web.supervision import propose

    return propose(_reader_for(catalog, staging), text)


def compute_in_worker(catalog: str, staging: str, unassigned_after_h: float) -> Any:
    from gateway.web.supervision import compute

    return compute(_reader_for(catalog, staging), unassigned_after_h)


def _lower_priority() -> None:
    """The worker yields the CPU to the daemon: a supervisor's statistics can
    wait, an officer's pull cannot (nice 19, and SCHED_IDLE where the kernel
    has it: the worker runs on what the station leaves)."""
    import contextlib
    import os

    # the hardened unit refuses both (SystemCallFilter=~@resources answers EPERM): then Nice= of the
    # unit is what the worker has, and it still runs off the daemon's GIL
    with contextlib.suppress(OSError):
        os.nice(19)
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


class HeavyProcess:
    """At most one heavy request at a time in the worker process."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._busy = asyncio.Lock()
        self._last = time.monotonic()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_lower_priority)
            return self._pool

    def _kill(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            for p in list(getattr(pool, "_processes", {}).values()):  # a runaway request: stop it for real
                p.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Any, *args: Any) -> Any:
        """*fn*(*args*) in the worker; TimeoutError past the limit (the worker
        is killed), the worker's own exception otherwise."""
        async with self._busy:
            self._last = time.monotonic()
            try:
                fut = asyncio.wrap_future(self._executor().submit(fn, *args))
                async with asyncio.timeout(self.timeout_s):
                    return await fut
            except TimeoutError:
                self._kill()
                raise
            except BrokenProcessPool:
                self._kill()
                raise
            finally:
                self._last = time.monotonic()

    async def reap(self) -> None:
        """Stop the worker once it has been idle ``IDLE_S`` (a task on the web's loop)."""
        while True:
            await asyncio.sleep(IDLE_S / 4)
            if self._pool is not None and not self._busy.locked() and time.monotonic() - self._last > IDLE_S:
                self.close()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
