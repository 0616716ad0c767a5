"""The web server: aiohttp on the daemon's own event loop, supervised like
every other worker. Pages are rendered on the server (Jinja2, autoescaped);
the station screen follows the slots over Server-Sent Events.

What needs a login: everything under ``/review`` (clips, manifests,
custody, statistics). What does not: the station screen's slot cards (the
officer at the dock sees whose recorder is in which slot), marking behind
the officer's PIN, the login page and static files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import Any

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

log = logging.getLogger(__name__)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Logins for /review, same-origin form posts, and headers that keep the
    pages out of frames, caches and other origins' scripts."""
    w: Web = request.app["web"]
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text="cross-origin form refused")
    if request.path.startswith("/review") and w.user(request) is None:
        if request.method == "GET" and not request.path.endswith((".json", "/media", "/manifest")):
            raise web.HTTPFound("/login?next=" + _quote_next(request.path_qs))
        raise web.HTTPUnauthorized(text="log in first")
    resp = await handler(request)
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                                       "frame-ancestors 'none'; form-action 'self'")
    if not request.path.startswith("/static/"):
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _quote_next(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def make_app(w: Web) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=8 * 1024 * 1024)
    app["web"] = w
    station.routes(app, w)
    review.routes(app, w)
    stats.routes(app, w)
    app.router.add_static("/static", HERE / "static", show_index=False)
    return app


class WebServer:
    """The supervised worker: serve until cancelled."""

    def __init__(self, cfg: Config, catalog: Catalog, state: StationState, archive: Archive, staging: Staging,
                 public_key: Ed25519PublicKey, wake_stamper: Callable[[], None]) -> None:
        self.web = Web(cfg, catalog, state, archive, staging, public_key, wake_stamper)

    def on_event(self, type_: str, slot: int | None, data: dict[str, Any]) -> None:
        self.web.on_event(type_, slot, data)

    async def run(self) -> None:
        w, cfg = self.web, self.web.cfg.web
        w.stopping.clear()
        w.tracker.bind(asyncio.get_running_loop())
        host, _, port = cfg.listen.rpartition(":")
        ctx = None
        if cfg.tls_cert_file is not None and cfg.tls_key_file is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            base = w.cfg.source.resolve().parent
            ctx.load_cert_chain(base / cfg.tls_cert_file, base / cfg.tls_key_file)
        runner = web.AppRunner(make_app(w), access_log=None, shutdown_timeout=1.0)
        await runner.setup()

        async def start() -> None:
            site = web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=ctx)
            try:
                await site.start()
            except OSError as e:
                raise CannotListen("web.listen", cfg.listen, e) from None

        try:
            await until_listening(start)  # a taken port: the station goes on pulling without its screen
            log.info("web: the station screen and review on %s://%s", "https" if ctx else "http", cfg.listen)
            await asyncio.Event().wait()
        finally:
            w.stopping.set()  # open streams end now, not at the shutdown timeout
            w.tracker.wake()
            with contextlib.suppress(Exception):
                await asyncio.shield(runner.cleanup())
