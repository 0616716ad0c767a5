"""Supervised workers: a crashing worker is restarted with backoff; one that
keeps crashing (N times in a window) stops the daemon, so systemd can restart
it cleanly instead of limping on without, say, a forwarder."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for *event* at most *timeout* seconds; True if it was set.

    Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that
    arrives just as the inner wait completes (fixed in 3.12), and a worker
    that loses its cancellation never stops: a daemon woken by every staged
    clip then ignores SIGTERM."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


class GaveUp(Exception):
    def __init__(self, name: str, restarts: int) -> None:
        self.name = name
        super().__init__(f"worker {name} crashed {restarts} times; giving up")


async def supervise(name: str, factory: Callable[[], Awaitable[None]], *, max_restarts: int = 5,
                    window_s: float = 300.0) -> None:
    crashes: list[float] = []
    while True:
        try:
            await factory()
            log.info("worker %s finished", name)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            now = time.monotonic()
            crashes = [t for t in crashes if now - t < window_s] + [now]
            log.exception("worker %s crashed (%d in %.0fs)", name, len(crashes), window_s)
            if len(crashes) > max_restarts:
                raise GaveUp(name, len(crashes)) from None
            await asyncio.sleep(min(30.0, 0.5 * 2 ** len(crashes)))
