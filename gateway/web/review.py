"""The supervisors' review (实时调阅): log in, search, play, read the
manifest, custody trail and verification status, export a case's manifest
set. Every view, play and download is itself a custody event (who, what,
from where; the custody entry says when), and the clip page lists who has
looked at the clip."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.archive import ArchiveError
from gateway.catalog.states import STATES
from gateway.evidence.manifest import SIG_SUFFIX
from gateway.evidence.signing import verify
from gateway.web import media
from gateway.web.context import Web, safe_next
from gateway.web.i18n import translator
from gateway.web.queries import PAGE, Filters

#: what the review's search form sends
FIELDS = ("officer", "case", "from", "to", "important", "category", "state", "text")
#: a clip played again within this long in the same login is one custody entry
PLAY_RECORD_S = 600.0


def _day(text: str, end: bool = False) -> float | None:
    if not text:
        return None
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a date: {text[:40]!r}") from None
    ts = (d if d.tzinfo else d.astimezone()).timestamp()
    return ts + 86400 if end and len(text) <= 10 else ts


def _page_numbers(page: int, pages: int) -> list[int]:
    """The page links shown: first, last, and those near *page*."""
    return sorted({1, pages, *range(max(1, page - 3), min(pages, page + 3) + 1)})


def _sha(request: web.Request) -> str:
    sha = request.match_info["sha"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise web.HTTPNotFound()
    return sha


def routes(app: web.Application, w: Web) -> None:
    async def login_form(request: web.Request) -> web.Response:
        return w.render(request, "login.html", message=None, next=safe_next(request.query.get("next")))

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        t = translator(w.lang(request))
        name = str(form.get("user", ""))[:64]
        password = str(form.get("password", ""))[:1024]
        target = safe_next(str(form.get("next", "")))
        remote = w.remote(request)
        # counted before it is checked, one check at a time per account and per address
        attempt = w.lockout.begin((f"user:{name}", f"ip:{remote}"))
        if attempt is None:
            await w.door.emit("login_failed", None, who=name, remote=remote, via="review", locked=True)
            return w.render(request, "login.html", status=429, message=t("login.locked"), next=target)
        right = False
        try:
            right = await asyncio.to_thread(w.users.check, name, password)
        finally:
            locked = w.lockout.end(attempt, right)
        if not right:
            await w.door.emit("login_failed", None, who=name, remote=remote, via="review")
            if locked:
                await w.door.emit("login_locked", None, who=name, remote=remote, via="review",
                                  for_s=max(w.lockout.lock_s(k) for k in attempt.keys))
                return w.render(request, "login.html", status=429, message=t("login.locked"), next=target)
            return w.render(request, "login.html", status=401, message=t("login.bad"), next=target)
        resp = web.HTTPFound(target)
        w.login(resp, name, remote)
        await w.door.emit("web_login", None, user=name, remote=remote)
        raise resp

    async def logout(request: web.Request) -> web.Response:
        resp = web.HTTPFound("/login")
        w.logout(request, resp)
        raise resp

    def filters(request: web.Request) -> Filters:
        q = request.query
        return Filters(officer=q.get("officer", "").strip(), case=q.get("case", "").strip(),
                       date_from=_day(q.get("from", "").strip()), date_to=_day(q.get("to", "").strip(), end=True),
                       important=q.get("important", "") if q.get("important") in ("yes", "no") else "",
                       category=q.get("category", "").strip(),
                       state=q.get("state", "") if q.get("state") in STATES else "",
                       text=q.get("text", "").strip()[:200])

    async def search(request: web.Request) -> web.Response:
        """Every search is a look at evidence: its query and how many clips
        it showed go on the custody record with the user. Every match is
        listed, a page at a time (``?page=N``), with how many there are."""
        searched = any(request.query.get(k) for k in FIELDS)
        try:
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            raise web.HTTPBadRequest(text="page: not a number") from None
        f = filters(request) if searched else Filters()
        size = PAGE if searched else 50
        res = await w.heavy(w.reader.page, f, (page - 1) * size, size)
        query = {k: request.query[k][:200] for k in FIELDS if request.query.get(k)}
        await w.record("searched", request, what="review search", query=query, results=len(res.rows),
                       matches=res.total, page=page)
        pages = max(1, -(-res.total // size))
        keep = {k: v for k, v in request.query.items() if k in FIELDS and v}
        links = {n: "/review?" + urlencode({**keep, "page": n}) for n in _page_numbers(page, pages)}
        return w.render(request, "review.html", rows=res.rows, q=request.query, states=sorted(STATES),
                        searched=searched, total=res.total, page=page, pages=pages, links=links)

    def _clip(sha: str) -> dict[str, Any]:
        clip = w.reader.clip(sha)
        if clip is None:
            raise web.HTTPNotFound()
        return clip

    def _staged(clip: dict[str, Any]) -> Path | None:
        if clip["staged_path"] and clip["purged_at"] is None:
            p = w.staging.resolve(clip["staged_path"])
            if p.exists():
                return p
        return None

    def _opener(clip: dict[str, Any]) -> Any:
        staged = _staged(clip)
        if staged is not None:
            return lambda: open(staged, "rb")
        if clip["archive_key"] and clip["state"] == "archived":
            return lambda: w.archive.read(clip["archive_key"])
        raise web.HTTPNotFound(text="the clip is in neither staging nor the archive yet")

    content = media.ContentChecks()

    def _checks(clip: dict[str, Any]) -> list[dict[str, Any]]:
        """Verification status: content against its hash, the manifest's and
        amendments' signatures against the station key."""
        out: list[dict[str, Any]] = []
        staged = _staged(clip)
        try:  # hashed once per object identity, the page says when (media.ContentChecks)
            key = clip["archive_key"]
            if staged is not None:
                out.append(content.check("staging", str(staged), media.file_identity(staged), clip["sha256"],
                                         lambda: media.hash_file(staged)))
            elif key and clip["state"] == "archived":
                out.append(content.check("archive", key, w.archive.identity(key), clip["sha256"],
                                         lambda: w.archive.sha256(key)))
            else:
                out.append({"check": "content SHA-256", "where": "-", "ok": False, "detail": "found None"})
        except (OSError, ArchiveError) as e:
            out.append({"check": "content SHA-256", "where": "-", "ok": False, "detail": str(e)})

        def signed(kind: str, rel: str | None, key: str | None) -> None:
            body = sig = None
            try:
                if rel:
                    p = w.staging.resolve(rel)
                    if p.exists():
                        body, sig = p.read_bytes(), Path(str(p) + SIG_SUFFIX).read_bytes()
                if body is None and key:
                    with w.archive.read(key) as a, w.archive.read(key + SIG_SUFFIX) as b:
                        body, sig = a.read(), b.read()
            except (OSError, ArchiveError) as e:
                out.append({"check": kind, "where": "-", "ok": False, "detail": str(e)})
                return
            if body is None or sig is None:
                out.append({"check": kind, "where": "-", "ok": False, "detail": "not written yet"})
                return
            ok = verify(w.public_key, body, sig)
            about = json.loads(body)
            names = (about.get("clip") or {}).get("sha256") or (about.get("amends") or {}).get("sha256")
            ok = ok and names == clip["sha256"]
            out.append({"check": kind, "where": "staging" if rel else "archive", "ok": ok,
                        "detail": "signature valid, names this clip" if ok else "signature or clip does not match"})

        signed("manifest", clip["manifest_path"], w.reader.manifest_key(clip))
        for a in w.reader.amendments(clip["sha256"]):
            signed(f"amendment {a['id']}", a["path"], a["archive_key"])
        return out

    async def clip_page(request: web.Request) -> web.Response:
        sha = _sha(request)
        clip = _clip(sha)
        if request.method == "HEAD":  # nothing is shown, nothing hashed, nothing looked at
            return web.Response(content_type="text/html")
        await w.record("viewed", request, sha256=sha, what="clip page", officer=clip["officer"])
        checks = await w.heavy(_checks, clip)
        manifest = w.reader.manifest(clip)
        return w.render(request, "clip.html", clip=clip, checks=checks, trail=w.reader.trail(sha),
                        looks=w.reader.looks(sha), playable=media.content_type(clip["name"]).startswith("video"),
                        manifest=json.dumps(manifest, ensure_ascii=False, indent=2) if manifest else None)

    async def clip_media(request: web.Request) -> web.StreamResponse:
        """A player's range reads are one ``played`` per login and clip in
        ``PLAY_RECORD_S``; anything that takes the clip from its start
        without a range (a full copy, whatever the client calls it) or asks
        for ``?download=1`` is one ``downloaded``; the pieces of one
        download (ranges after the first byte) are not counted again."""
        sha = _sha(request)
        clip = _clip(sha)
        opener = _opener(clip)
        asked_download = request.query.get("download") == "1"
        span = request.headers.get("Range")
        starts = media.range_start(span, int(clip["size"]))
        if request.method != "HEAD":
            if asked_download or span is None:
                if starts == 0:
                    await w.record("downloaded", request, sha256=sha, what="media", officer=clip["officer"],
                                   source="staging" if _staged(clip) else "archive")
            else:
                key = (request.cookies.get("dockgate_session", ""), sha)
                now = time.monotonic()
                if now - w.played.get(key, -PLAY_RECORD_S) >= PLAY_RECORD_S:
                    w.played[key] = now
                    await w.record("played", request, sha256=sha, what="media", officer=clip["officer"],
                                   source="staging" if _staged(clip) else "archive")
        return await media.send(request, opener, int(clip["size"]), media.content_type(clip["name"]),
                                clip["name"] if asked_download else None)

    async def clip_manifest(request: web.Request) -> web.Response:
        sha = _sha(request)
        clip = _clip(sha)
        manifest = w.reader.manifest(clip)
        if manifest is None:
            raise web.HTTPNotFound(text="not stamped yet")
        await w.record("downloaded", request, sha256=sha, what="manifest", officer=clip["officer"])
        return web.Response(body=json.dumps(manifest, ensure_ascii=False, indent=2).encode(),
                            content_type="application/json")

    async def export(request: web.Request) -> web.Response:
        """A case's manifest set: each clip's signed manifest and amendments
        with their signatures, and the station public key, as one zip."""
        case = request.query.get("case", "").strip()
        if not case:
            raise web.HTTPBadRequest(text="which case? (?case=...)")
        clips = await w.heavy(w.reader.case_clips, case)

        def build() -> bytes:
            from cryptography.hazmat.primitives import serialization

            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("station.pub.pem", w.public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
                for c in clips:
                    files = [(c["manifest_path"], c["archive_key"] or c["sha256"], ".manifest.json")]
                    files += [(a["path"], c["archive_key"] or c["sha256"], f".amendment-{a['id']}.json")
                              for a in w.reader.amendments(c["sha256"])]
                    for rel, base, suffix in files:
                        if not rel:
                            continue
                        p = w.staging.resolve(rel)
                        for extra in ("", SIG_SUFFIX):
                            q = Path(str(p) + extra)
                            if q.exists():
                                z.writestr(base + suffix + extra, q.read_bytes())
            return buf.getvalue()

        data = await w.heavy(build)
        for c in clips:
            await w.record("exported", request, sha256=c["sha256"], what="manifest set", case_number=case)
        return web.Response(body=data, content_type="application/zip", headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''case-{media._quote(case)}-manifests.zip"})

    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/review", search)
    app.router.add_get("/review/clip/{sha}", clip_page)
    app.router.add_get("/review/clip/{sha}/media", clip_media)
    app.router.add_get("/review/clip/{sha}/manifest", clip_manifest)
    app.router.add_get("/review/export", export)


