"""The station screen: a card per slot for the officer at the dock, kept
live over Server-Sent Events, and marking one's own clips behind one's PIN
(the same path as `dockgate assign`: an assignment in the catalog, which the
stamper turns into manifest content or signed amendments)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from gateway.process.supervise import wait_event
from gateway.values import ValueRefused, check_assignment, check_text
from gateway.web.context import BUSY_REFRESH_S, KEEPALIVE_S, Web
from gateway.web.i18n import LANGS, translator
from gateway.web.slots import busy, cards, station_banner

#: how often an idle stream looks whether its screen is still there
GONE_CHECK_S = 2.0


class Feed:
    """The cards, rendered once per change for every open screen (per
    language), not once per screen: a hundred kiosks cost what one does.
    Twice a second while a slot is busy, otherwise only on an event."""

    def __init__(self) -> None:
        self.html: dict[str, str] = {}
        self.version = 0
        self.changed = asyncio.Event()
        #: languages some open stream wants
        self.watching: dict[str, int] = {}

    def publish(self, rendered: dict[str, str]) -> None:
        if rendered != self.html:
            self.html = rendered
            self.version += 1
            old, self.changed = self.changed, asyncio.Event()
            old.set()


async def feed(w: Web) -> None:
    """The one renderer behind every stream (a task on the web's loop)."""
    f: Feed = w.feed
    while not w.stopping.is_set():
        changed = w.tracker.changed
        if f.watching:
            rendered = {}
            for lang in [lang for lang, n in f.watching.items() if n > 0]:
                t = translator(lang)
                rendered[lang] = w.env.get_template("cards.html").render(
                    t=t, cards=cards(w.state, w.tracker, w.reader, t, w.reader.dock_clips),
                    banner=station_banner(w.state, t))
            f.publish(rendered)
        if busy(w.state):
            await asyncio.sleep(BUSY_REFRESH_S)
        else:
            await wait_event(changed, KEEPALIVE_S)


def routes(app: web.Application, w: Web) -> None:
    w.feed = Feed()

    async def index(request: web.Request) -> web.Response:
        t = translator(w.lang(request))
        return w.render(request, "station.html", cards=cards(w.state, w.tracker, w.reader, t, w.reader.dock_clips),
                        banner=station_banner(w.state, t), station=w.cfg.station.id)

    async def stream(request: web.Request) -> web.StreamResponse:
        """Server-Sent Events of the rendered cards (``Feed``), within the
        per-client and total limits (``web.max_streams*``)."""
        remote = w.remote(request)
        if sum(w.streams.values()) >= w.cfg.web.max_streams:
            raise web.HTTPServiceUnavailable(text="too many station screens open", headers={"Retry-After": "30"})
        if w.streams.get(remote, 0) >= w.cfg.web.max_streams_per_client:
            raise web.HTTPTooManyRequests(text="too many screens open from this address",
                                          headers={"Retry-After": "30"})
        lang = w.lang(request)
        lang = lang if lang in LANGS else w.cfg.web.language
        f: Feed = w.feed
        w.streams[remote] = w.streams.get(remote, 0) + 1
        f.watching[lang] = f.watching.get(lang, 0) + 1
        w.tracker.wake()  # a new language gets rendered now, not at the next change
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
            await resp.prepare(request)
            sent = None
            quiet_since = asyncio.get_running_loop().time()
            while not w.stopping.is_set() and request.transport is not None and not request.transport.is_closing():
                changed = f.changed
                html = f.html.get(lang)
                now = asyncio.get_running_loop().time()
                if html is not None and html != sent:
                    await resp.write(b"event: slots\ndata: " + json.dumps({"html": html}).encode() + b"\n\n")
                    sent, quiet_since = html, now
                elif now - quiet_since >= KEEPALIVE_S:
                    await resp.write(b": keepalive\n\n")
                    quiet_since = now
                else:  # a screen that went away frees its place within this long, not at the next keepalive
                    await wait_event(changed, GONE_CHECK_S)
        except (ConnectionResetError, ConnectionError):
            pass  # the screen went away
        finally:
            w.streams[remote] -= 1
            if not w.streams[remote]:
                del w.streams[remote]
            f.watching[lang] -= 1
            if not f.watching[lang]:
                del f.watching[lang]
        return resp

    def _slot(request: web.Request) -> tuple[int, str | None, int | None]:
        try:
            n = int(request.match_info["slot"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if n not in w.state.slots:
            raise web.HTTPNotFound()
        info = w.tracker.docks.get(n)
        if info is None or w.state.slots[n].state == "idle":
            return n, None, None
        return n, info.officer, info.dock_id

    async def mark_form(request: web.Request) -> web.Response:
        n, officer, _dock = _slot(request)
        return w.render(request, "mark.html", slot=n, officer=officer, clips=[], token=None, message=None,
                        ok=False)

    async def mark(request: web.Request) -> web.Response:
        """Two steps: the PIN first (nothing of the recorder's clips is shown
        before it), then the clips and what to mark them with, carried by a
        short-lived token bound to this slot's dock and officer."""
        n, officer, dock_id = _slot(request)
        if officer is None or dock_id is None:
            raise web.HTTPNotFound()
        form = await request.post()
        t = translator(w.lang(request))

        def page(message: str | None, status: int = 200, token: str | None = None, ok: bool = False,
                 ) -> web.Response:
            clips = w.reader.dock_clips(dock_id) if token or ok else []
            return w.render(request, "mark.html", status=status, slot=n, officer=officer, clips=clips,
                            token=token, message=message, ok=ok)

        token = str(form.get("token", ""))
        if not token:  # step 1: the PIN, counted before it is checked, one check at a time per officer
            remote = w.remote(request)
            if officer not in w.pins.entries():
                return page(t("mark.nopin"), 403)
            attempt = w.lockout.begin((f"pin:{officer}", f"ip:{remote}"))
            if attempt is None:
                return page(t("mark.locked"), 429)
            right = False
            try:
                right = await asyncio.to_thread(w.pins.check, officer, str(form.get("pin", ""))[:64])
            finally:
                locked = w.lockout.end(attempt, right)
            if not right:
                await w.door.emit("login_failed", n, who=f"officer {officer}", remote=remote, via="station screen")
                if locked:
                    await w.door.emit("login_locked", n, who=f"officer {officer}", remote=remote,
                                      via="station screen", for_s=w.lockout.lock_s(f"pin:{officer}"))
                return page(t("mark.bad_pin"), 403)
            return page(None, token=w.mark_token(n, dock_id, officer))
        if not w.check_mark_token(token, n, dock_id, officer):
            return page(t("mark.expired"), 403)
        fields = {name: str(form.get(name, "")).strip() or None for name in ("case", "proof", "category")}
        important = True if form.get("important") else None
        try:
            fields = {name: check_text(name, value, required=False)  # the rules of every door (gateway/values.py)
                      for name, value in fields.items()}
        except ValueRefused as e:
            return page(str(e), 400, token)
        own = {c["sha256"]: c for c in w.reader.dock_clips(dock_id)
               if c["sha256"] and c["capture_utc"] is not None and c["officer"] == officer}
        chosen = [own[s] for s in form.getall("clip", []) if isinstance(s, str) and s in own]
        if not chosen or not (any(fields.values()) or important):
            return page(t("mark.none"), 400, token)
        checked = []
        for clip in chosen:
            when = float(clip["capture_utc"])
            try:
                checked.append((clip, check_assignment(officer, when, when, fields["case"], fields["proof"],
                                                       fields["category"], important)))
            except ValueRefused as e:
                return page(f"{clip['name']}: {e}", 400, token)
        for clip, v in checked:
            aid = await w.door.add_assignment(v.officer, v.start, v.end, v.case, v.proof, v.category, v.important)
            await w.door.emit("marked", n, sha256=clip["sha256"], assignment=aid, officer=officer,
                              case_number=v.case, proof_object=v.proof, category=v.category,
                              important=v.important, via="station screen", remote=w.remote(request))
        w.forget_mark_token(token)
        w.door.wake_stamper()
        return page(t("mark.saved"), ok=True)

    app.router.add_get("/", index)
    app.router.add_get("/station/stream", stream)
    app.router.add_get("/station/slot/{slot}/mark", mark_form)
    app.router.add_post("/station/slot/{slot}/mark", mark)
