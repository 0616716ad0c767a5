"""Supervised workers: a crashing worker is restarted with backoff; one that
keeps crashing (N times in a window) stops the daemon, so systemd can restart
it cleanly instead of limping on without, say, a forwarder."""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.errors import CannotListen

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


#: the longest wait between two tries of a taken listen address
LISTEN_RETRY_MAX_S = 60.0


async def until_listening(start: Callable[[], Awaitable[None]]) -> None:
    """Await *start* (bind a server of the station: metrics, the web) until
    it no longer raises CannotListen. A port another process holds is an
    error in the log, tried again after 1 s, doubling to a minute; never a
    reason to stop pulling evidence, as a crashing worker would."""
    delay = 1.0
    while True:
        try:
            await start()
            return
        except CannotListen as e:
            log.error("%s; the station goes on without it, trying again in %.0f s", e, delay)
            await asyncio.sleep(delay)
            delay = min(LISTEN_RETRY_MAX_S, delay * 2)


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


class Worker(abc.ABC):
    """A loop that does what is due, then sleeps until woken or until the
    time ``step`` asked for. The stamper, forwarder and purger are workers;
    anything that makes work for one calls its ``wake``."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Once, before the first step (pick up what a crash left)."""

    @abc.abstractmethod
    async def step(self) -> float:
        """Do what is due now; return how long to sleep unless woken
        (0: there is more to do at once)."""

    async def run(self) -> None:
        await self.start()
        while True:
            self._wake.clear()
            pause = await self.step()
            if pause > 0:
                await wait_event(self._wake, pause)
