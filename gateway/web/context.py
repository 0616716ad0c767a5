"""What every page handler shares: the ``Web`` context (configuration, the
door into the pipeline, sessions, marking tokens, templates, the bounded
worker for heavy requests) and the constants the routes use. The app
(``app.py``) and every route module import it; it imports none of them.

Everything here lives on the web's own thread and loop (``app.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import jinja2
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.archive import Archive
from gateway.config import Config
from gateway.pipeline.live import StationState
from gateway.pipeline.staging import Staging
from gateway.web.accounts import Lockout, officer_pins, supervisors
from gateway.web.door import PipelineDoor
from gateway.web.heavy import HeavyProcess
from gateway.web.i18n import LANGS, translator
from gateway.web.queries import Reader
from gateway.web.slots import SlotTracker

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SESSION_COOKIE = "dockgate_session"
LANG_COOKIE = "dockgate_lang"
#: an open stream sends a comment this often when nothing changes (proxies and the browser keep it)
KEEPALIVE_S = 15.0
#: while a slot is busy, the screen follows its progress this often
BUSY_REFRESH_S = 0.5
#: how long marking stays open after the officer's PIN
MARK_TOKEN_S = 300.0
#: heavy requests in flight at once (worker threads of the web's own loop)
HEAVY_WORKERS = 2
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    user: str
    expires: float
    remote: str


class TooBusy(web.HTTPServiceUnavailable):
    """A heavy request found no free worker, or ran out of time."""


class Web:
    """Everything the handlers share."""

    def __init__(self, cfg: Config, door: PipelineDoor, state: StationState, archive: Archive, staging: Staging,
                 public_key: Ed25519PublicKey, tracker: SlotTracker | None = None) -> None:
        self.cfg = cfg
        self.door = door
        self.state = state
        self.archive = archive
        self.staging = staging
        self.public_key = public_key
        self.tracker = tracker or SlotTracker()
        self.hosts = allowed_hosts(cfg)
        #: heavy requests (searches, statistics, CSV imports, exports, hashing a clip) run in worker
        #: threads, this many at once; the pages' own loop stays free for everyone else
        self._heavy = asyncio.Semaphore(HEAVY_WORKERS)
        #: the heaviest pages (statistics, a CSV's proposals) run in a worker process (heavy.py)
        self.process = HeavyProcess(cfg.web.heavy_timeout_s)
        self._no_process = False
        #: open station-screen streams per client address
        self.streams: dict[str, int] = {}
        #: the station screen's renderer (``station.Feed``), set by its routes
        self.feed: Any = None
        self.users = supervisors(cfg)
        self.pins = officer_pins(cfg)
        self.lockout = Lockout(cfg.web.login_attempts, cfg.web.lockout_s)
        self.sessions: dict[str, Session] = {}
        #: marking tokens: token -> (slot, dock, officer, valid until)
        self.marking: dict[str, tuple[int, int, str, float]] = {}
        self.stopping = asyncio.Event()
        self._reader: Reader | None = None
        self._reader_lock = threading.Lock()
        #: (session token, clip) -> when its playing was last recorded: one custody entry per viewing,
        #: not one per range request of the video element
        self.played: dict[tuple[str, str], float] = {}
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters["when"] = _when
        self.env.filters["size"] = _size

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """*fn*(catalog path, staging folder, *args*) in the worker process
        (``heavy.py``), within ``web.heavy_timeout_s``; else 503. Where no
        process can be started, in a worker thread instead."""
        paths = (str(self.cfg.catalog_path), str(self.staging.root))
        if not self._no_process:
            try:
                result: T = await self.process.run(fn, *paths, *args)
                return result
            except TimeoutError:
                raise TooBusy(text=f"this took longer than {self.cfg.web.heavy_timeout_s:g} s and was stopped; "
                                   "try a smaller file or a narrower request") from None
            except (BrokenProcessPool, OSError) as e:
                log.warning("web: no worker process (%s); heavy pages run in threads", e)
                self._no_process = True
        return await self.heavy(fn, *paths, *args)

    def close(self) -> None:
        self.process.close()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    @property
    def reader(self) -> Reader:
        with self._reader_lock:  # the catalog file exists once the daemon has started
            if self._reader is None:
                self._reader = Reader(self.cfg.catalog_path, self.staging, self.cfg.custody_dir)
            return self._reader

    async def heavy(self, fn: Callable[..., T], *args: Any) -> T:
        """Run *fn* in a worker thread, at most ``HEAVY_WORKERS`` at once,
        within ``web.heavy_timeout_s``; else 503 (the request, not the
        station, gives up; a thread past its time finishes unheard)."""
        timeout = self.cfg.web.heavy_timeout_s
        try:
            async with asyncio.timeout(timeout):
                async with self._heavy:
                    return await asyncio.to_thread(fn, *args)
        except TimeoutError:
            raise TooBusy(text=f"this took longer than {timeout:g} s; try a narrower request") from None

    # -- requests ----------------------------------------------------------------
    def lang(self, request: web.Request) -> str:
        want = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or self.cfg.web.language
        return want if want in LANGS else self.cfg.web.language

    def render(self, request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
        lang = self.lang(request)
        html = self.env.get_template(template).render(t=translator(lang), lang=lang, path=request.path,
                                                      user=self.user(request), **ctx)
        resp = web.Response(text=html, content_type="text/html", status=status)
        if request.query.get("lang") in LANGS:
            resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Strict")
        return resp

    def remote(self, request: web.Request) -> str:
        return request.remote or "?"

    def user(self, request: web.Request) -> str | None:
        token = request.cookies.get(SESSION_COOKIE)
        s = self.sessions.get(token or "")
        if s is None:
            return None
        if s.expires < time.time():
            self.sessions.pop(token or "", None)
            return None
        return s.user

    def login(self, resp: web.StreamResponse, user: str, remote: str) -> None:
        token = secrets.token_urlsafe(32)
        self.sessions[token] = Session(user, time.time() + self.cfg.web.session_lifetime_s, remote)
        resp.set_cookie(SESSION_COOKIE, token, max_age=int(self.cfg.web.session_lifetime_s), httponly=True,
                        samesite="Strict", secure=self.cfg.web.tls_cert_file is not None, path="/")

    def logout(self, request: web.Request, resp: web.StreamResponse) -> None:
        self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        resp.del_cookie(SESSION_COOKIE, path="/")

    def mark_token(self, slot: int, dock_id: int, officer: str) -> str:
        """After the PIN: marking this dock's clips is allowed for a few minutes."""
        now = time.monotonic()
        self.marking = {k: v for k, v in self.marking.items() if v[3] > now}
        token = secrets.token_urlsafe(24)
        self.marking[token] = (slot, dock_id, officer, now + MARK_TOKEN_S)
        return token

    def check_mark_token(self, token: str, slot: int, dock_id: int, officer: str) -> bool:
        got = self.marking.get(token)
        return got is not None and got[:3] == (slot, dock_id, officer) and got[3] > time.monotonic()

    def forget_mark_token(self, token: str) -> None:
        self.marking.pop(token, None)

    async def record(self, type_: str, request: web.Request, **data: Any) -> None:
        """A look at evidence, on the custody record: who, what, from where
        (the custody entry carries when)."""
        await self.door.emit(type_, None, user=self.user(request), remote=self.remote(request), **data)


def _when(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "" if ts is None else time.strftime(fmt, time.localtime(ts))


def _size(n: int | None) -> str:
    if n is None:
        return ""
    f = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if f < 1024 or unit == "GiB":
            return f"{f:.0f} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1024
    return str(n)


def safe_next(target: str | None) -> str:
    """Only a path on this site: a login never sends anyone elsewhere.
    Browsers drop tabs and newlines from a URL and read a backslash as a
    slash, so ``/%09/evil.example`` would become ``//evil.example``: the
    target is decoded first, and anything but a plain path is refused."""
    if not target or len(target) > 2000:
        return "/review"
    plain = unquote(target)
    if (not plain.startswith("/") or plain.startswith(("//", "/\\")) or "\\" in plain
            or any(c.isspace() or not c.isprintable() for c in plain)):
        return "/review"
    parts = urlsplit(plain)
    if parts.scheme or parts.netloc:
        return "/review"
    return target


def allowed_hosts(cfg: Config) -> frozenset[str]:
    """The names a request's Host may carry (DNS rebinding: a page of
    another site, its name pointed at this station, must not be served)."""
    host = cfg.web.listen.rpartition(":")[0].strip("[]").lower()
    names = {"localhost", "127.0.0.1", "::1", host, socket.gethostname().lower(),
             socket.gethostname().lower() + ".local", *cfg.web.hostnames}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower())
    return frozenset(n for n in names if n and n not in ("0.0.0.0", "::"))
