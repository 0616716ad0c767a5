"""The web's one door into the pipeline.

The pages run on their own thread and event loop (``app.WebServer``): a
slow request, a large CSV or a hundred open streams never hold the loop
that pulls, stamps and forwards, nor the watchdog it feeds. The catalog
has one writer, on the pipeline's loop; what the pages change (an event on
the custody record, an assignment) is handed to that loop here and awaited
from the web's. Each call is a short transaction, the same the pipeline
makes for itself. Reading needs no door: the pages read on read-only
connections of their own (``queries.Reader``)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.catalog import Catalog
from gateway.errors import DockgateError
from gateway.values import check_assignment

T = TypeVar("T")


class PipelineGone(DockgateError):
    """The pipeline's loop is not running (the daemon is stopping)."""

    reason = "stopping"


class PipelineDoor:
    def __init__(self, catalog: Catalog, wake_stamper: Callable[[], None]) -> None:
        self._catalog = catalog
        self._wake_stamper = wake_stamper
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The pipeline's loop (called on it, when the web worker starts)."""
        self._loop = loop

    async def _on_pipeline(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        loop = self._loop
        if loop is None or loop.is_closed():
            raise PipelineGone("the pipeline is not running")

        async def call() -> T:
            return fn(*args, **kw)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), loop))

    async def emit(self, type_: str, slot: int | None = None, **data: Any) -> str:
        """Record one event (on the custody record if its type is)."""
        return await self._on_pipeline(functools.partial(self._catalog.emit, type_, slot, **data))

    async def add_assignment(self, officer: str, from_ts: float, to_ts: float, case_number: str | None,
                             proof: str | None, category: str | None, important: bool | None) -> int:
        """Checked once more at the door itself (``gateway/values.py``), so
        no page can hand the pipeline what every other door refuses."""
        v = check_assignment(officer, from_ts, to_ts, case_number, proof, category, important)
        return await self._on_pipeline(self._catalog.add_assignment, v.officer, v.start, v.end, v.case, v.proof,
                                       v.category, v.important)

    def wake_stamper(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_stamper)
