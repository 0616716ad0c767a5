"""The web server: aiohttp on a thread and event loop of its own, a
tenant of the daemon rather than a partner (``door.py``): the pipeline's
loop never waits for a page, and a page's work never delays the watchdog.
Pages are rendered on the server (Jinja2, autoescaped); the station screen
follows the slots over Server-Sent Events.

What needs a login: everything under ``/review`` (clips, manifests,
custody, statistics). What does not: the station screen's slot cards (the
officer at the dock sees whose recorder is in which slot), marking behind
the officer's PIN, the login page and static files.

Every request: its Host must be one of the station's names (DNS
rebinding); a state-changing one must come from the station's own origin
(Origin, or Referer when a browser sends no Origin; ``null`` and other
schemes are refused); every response, media and errors included, carries
the security headers."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive import Archive
from gateway.catalog import Catalog
from gateway.config import Config
from gateway.errors import CannotListen
from gateway.pipeline.live import StationState
from gateway.pipeline.staging import Staging
from gateway.process.supervise import until_listening
from gateway.web import review, station, stats
from gateway.web.context import HERE, Handler, Web
from gateway.web.door import PipelineDoor
from gateway.web.slots import SlotTracker

log = logging.getLogger(__name__)


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: under it a browser sends "Origin: null" with the pages' own form posts
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}
#: methods that change nothing: everything else must come from the station's own pages
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_ok(w: Web, host: str | None) -> bool:
    """An IP address (DNS rebinding always names a host) or one of the station's names."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]").lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in w.hosts


def same_origin(request: web.Request) -> bool:
    """The request comes from a page of this site: its Origin (or, when a
    browser sends none, its Referer) names this scheme and host."""
    here = (request.scheme, request.host.lower())
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin == "null":
            return False
        u = urlsplit(origin)
        return (u.scheme, u.netloc.lower()) == here
    referer = request.headers.get("Referer")
    if referer:
        u = urlsplit(referer)
        return (u.scheme, u.netloc.lower()) == here
    return False


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The Host allow-list, same-origin state changes, logins for /review."""
    w: Web = request.app["web"]
    if not host_ok(w, request.host):
        raise web.HTTPMisdirectedRequest(text="this station does not answer to that name")
    if request.method not in SAFE_METHODS and not same_origin(request):
        raise web.HTTPForbidden(text="cross-origin request refused")
    if request.path.startswith("/review") and w.user(request) is None:
        if request.method == "GET" and not request.path.endswith((".json", "/media", "/manifest")):
            raise web.HTTPFound("/login?next=" + _quote_next(request.path_qs))
        raise web.HTTPUnauthorized(text="log in first")
    return await handler(request)


async def _headers(request: web.Request, resp: web.StreamResponse) -> None:
    """On every response before it is sent: pages, streams, media, errors."""
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    if not request.path.startswith("/static/"):
        resp.headers.setdefault("Cache-Control", "no-store")


def _quote_next(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def make_app(w: Web) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=8 * 1024 * 1024)
    app["web"] = w
    app.on_response_prepare.append(_headers)
    station.routes(app, w)
    review.routes(app, w)
    stats.routes(app, w)
    app.router.add_static("/static", HERE / "static", show_index=False)
    return app


class WebServer:
    """The supervised worker, on the pipeline's loop: it runs the pages on
    a thread of their own and waits; cancelled, it stops them and waits for
    the thread."""

    def __init__(self, cfg: Config, catalog: Catalog, state: StationState, archive: Archive, staging: Staging,
                 public_key: Ed25519PublicKey, wake_stamper: Callable[[], None]) -> None:
        self.door = PipelineDoor(catalog, wake_stamper)
        self.cfg, self.state, self.archive, self.staging, self.public_key = cfg, state, archive, staging, public_key
        self.web: Web | None = None
        #: kept across restarts of the pages: it follows every event from the daemon's start
        self.tracker = SlotTracker()

    def on_event(self, type_: str, slot: int | None, data: dict[str, Any]) -> None:
        """Called on the pipeline's thread; the tracker wakes the web's loop."""
        self.tracker.on_event(type_, slot, data)

    async def run(self) -> None:
        self.door.bind(asyncio.get_running_loop())
        started: asyncio.Future[asyncio.AbstractEventLoop] = asyncio.get_running_loop().create_future()
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pipeline = asyncio.get_running_loop()
        stop: list[asyncio.Event] = []

        def thread() -> None:
            try:
                asyncio.run(self._serve(pipeline, started, stop))
            except BaseException as e:  # handed to the supervisor on the pipeline's loop
                pipeline.call_soon_threadsafe(_settle, finished, e)
            else:
                pipeline.call_soon_threadsafe(_settle, finished, None)

        t = threading.Thread(target=thread, name="web", daemon=True)
        t.start()
        try:
            await finished
        finally:
            if started.done() and not started.cancelled() and stop:
                web_loop = started.result()
                with contextlib.suppress(RuntimeError):  # its loop already closed
                    web_loop.call_soon_threadsafe(stop[0].set)
            await asyncio.shield(asyncio.to_thread(t.join, 10))

    async def _serve(self, pipeline: asyncio.AbstractEventLoop, started: asyncio.Future[asyncio.AbstractEventLoop],
                     stop: list[asyncio.Event]) -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        stop.append(stopped)
        w = self.web = Web(self.cfg, self.door, self.state, self.archive, self.staging, self.public_key,
                           self.tracker)
        w.tracker.bind(loop)
        pipeline.call_soon_threadsafe(_settle, started, loop)
        cfg = self.cfg.web
        host, _, port = cfg.listen.rpartition(":")
        ctx = None
        if cfg.tls_cert_file is not None and cfg.tls_key_file is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            base = self.cfg.source.resolve().parent
            ctx.load_cert_chain(base / cfg.tls_cert_file, base / cfg.tls_key_file)
        runner = web.AppRunner(make_app(w), access_log=None, shutdown_timeout=1.0)
        await runner.setup()

        async def start() -> None:
            site = web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=ctx)
            try:
                await site.start()
            except OSError as e:
                raise CannotListen("web.listen", cfg.listen, e) from None

        feed = asyncio.create_task(station.feed(w), name="web-feed")
        reaper = asyncio.create_task(w.process.reap(), name="web-worker-reaper")
        try:
            listening = asyncio.create_task(until_listening(start))
            stopping = asyncio.create_task(stopped.wait())
            await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if listening.done():
                listening.result()
                log.info("web: the station screen and review on %s://%s", "https" if ctx else "http", cfg.listen)
                await stopping
            else:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening
        finally:
            w.stopping.set()  # open streams end now, not at the shutdown timeout
            w.tracker.wake()
            for task in (feed, reaper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await runner.cleanup()
            w.close()


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if fut.done():
        return
    if isinstance(value, BaseException):
        fut.set_exception(value)
    else:
        fut.set_result(value)
