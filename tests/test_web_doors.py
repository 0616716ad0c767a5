"""The pages as a door an adversary and a busy station knock on at once
(issue 27): values refused where they enter, guesses counted before they are
checked, requests from other origins and names refused, headers on every
response, every look on the custody record, streams limited. Against a
running sim station with a docked recorder, over plain HTTP (many requests
at once; headers a browser would never send); tests/test_web_review.py and
tests/test_web_station.py drive the same pages in Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, dockgate, events, wait_until
from tests.servers import free_port
from tests.test_web_support import enable_web, wait_http

pytestmark = pytest.mark.e2e
OFFICER = "0712345"
PIN = "482913"
SUPERVISOR, PASSWORD = "inspector", "correct horse battery"
ATTEMPTS = 5
LOCKOUT_S = 4


def cli(*args: str, stdin: str) -> None:
    subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], input=stdin, capture_output=True, text=True,
                   check=True, timeout=60)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("web-doors")
    rec = tmp / "rec"
    dockgate("sim", "make", str(rec), "--clips", "3", "--size", "200k", "--officer", OFFICER, "--serial",
             "ZF00901", "--protocol", "bc-text")
    config = write_station(tmp / "station", slots=2, reserve_bytes=0, custody_rotate_s=1.0)
    url = enable_web(config, free_port(), f"login_attempts = {ATTEMPTS}\nlockout_s = {LOCKOUT_S}\n"
                                          "max_streams = 6\nmax_streams_per_client = 3\n")
    cli("web-user", "add", SUPERVISOR, "-c", str(config), "--password-stdin", stdin=PASSWORD + "\n")
    cli("web-pin", "set", OFFICER, "-c", str(config), "--pin-stdin", stdin=PIN + "\n")
    d = DaemonProc(config, tmp / "daemon.log").start()
    try:
        attach(config, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, timeout=90,
                   what="3 clips archived")
        wait_http(url + "/")
        sha = events(config, "pulled")[0]["data"]["sha256"]
        yield {"config": config, "url": url, "daemon": d, "sha": sha}
    finally:
        d.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def same_site(url: str) -> dict[str, str]:
    return {"Origin": url}


async def _session(url: str) -> aiohttp.ClientSession:
    """A supervisor's logged-in session."""
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: keep cookies of an IP address
    async with s.post(url + "/login", data={"user": SUPERVISOR, "password": PASSWORD, "next": "/review"},
                      headers=same_site(url), allow_redirects=False) as r:
        assert r.status == 302, await r.text()
    return s


def wait_unlocked(station: dict[str, Any]) -> None:
    """A lock-out ends by itself: wait for it (condition, not a fixed sleep)."""
    async def try_login() -> int:
        async with aiohttp.ClientSession() as s, s.post(
                station["url"] + "/login", data={"user": "nobody-" + str(asyncio.get_running_loop().time()),
                                                 "password": "x"},
                headers=same_site(station["url"]), allow_redirects=False) as r:
            return r.status

    wait_until(lambda: run(try_login()) == 401, timeout=LOCKOUT_S * 8, what="the address's lock-out to end")


# -- values refused at the door ----------------------------------------------------------------------------

def test_the_year_zero_dispatch_row_is_refused_at_the_door_and_the_station_goes_on(station):
    row = "012345,0001-01-01T00:00:00+08:00,2100-01-01T00:00:00+08:00,OPEN\n"

    async def upload() -> str:
        s = await _session(station["url"])
        async with s:
            form = aiohttp.FormData()
            form.add_field("csv", row.encode(), filename="dispatch.csv", content_type="text/csv")
            async with s.post(station["url"] + "/review/dispatch", data=form, headers=same_site(station["url"])) as r:
                assert r.status == 200
                return await r.text()

    page = run(upload())
    assert "line 1: start: before 2000-01-01" in page
    assert not [e for e in events(station["config"], "marked") if e["data"].get("case_number") == "OPEN"]
    assert station["daemon"].status()["daemon"]["running"]


@pytest.mark.parametrize("take", [["012345", -1e308, 1e308, "OPEN"], ["012345", 0, 1, "OPEN"],
                                  ["012345", 1.7e9, 1.6e9, "OPEN"], ["0123\n45", 1.7e9, 1.7e9, "OPEN"]])
def test_an_altered_confirmation_is_refused_naming_the_field(station, take):
    async def confirm() -> tuple[int, str]:
        s = await _session(station["url"])
        async with s, s.post(station["url"] + "/review/dispatch/confirm", data={"take": json.dumps(take)},
                             headers=same_site(station["url"])) as r:
            return r.status, await r.text()

    status, text = run(confirm())
    assert status == 400 and re.search(r"(officer|from|to|start|end): ", text), text
    assert not [e for e in events(station["config"], "marked") if e["data"].get("case_number") == "OPEN"]


# -- guesses: counted before they are checked ----------------------------------------------------------------

def test_a_hundred_pin_guesses_at_once_check_at_most_the_allowed_number(station):
    before = len([e for e in events(station["config"], "login_failed") if e["data"].get("via") == "station screen"])

    async def guesses() -> list[int]:
        async with aiohttp.ClientSession() as s:
            async def one(i: int) -> int:
                async with s.post(station["url"] + "/station/slot/1/mark", data={"pin": f"{i:06d}"},
                                  headers=same_site(station["url"])) as r:
                    return r.status
            return await asyncio.gather(*(one(i) for i in range(100)))

    statuses = run(guesses())
    checked = [e for e in events(station["config"], "login_failed")
               if e["data"].get("via") == "station screen"][before:]
    # one check at a time per officer: the rest of a burst is refused unchecked (429), not queued
    assert 1 <= len(checked) <= ATTEMPTS, f"{len(checked)} PINs were checked"
    assert statuses.count(403) == len(checked) and statuses.count(429) == 100 - len(checked)

    async def one_at_a_time() -> list[int]:
        out = []
        async with aiohttp.ClientSession() as s:
            while not out or out[-1] != 429:
                async with s.post(station["url"] + "/station/slot/1/mark", data={"pin": "000000"},
                                  headers=same_site(station["url"])) as r:
                    out.append(r.status)
        return out

    run(one_at_a_time())
    checked = [e for e in events(station["config"], "login_failed")
               if e["data"].get("via") == "station screen"][before:]
    assert len(checked) == ATTEMPTS, f"{len(checked)} PINs were checked in all"
    assert events(station["config"], "login_locked")

    async def right_pin() -> int:
        async with aiohttp.ClientSession() as s, s.post(station["url"] + "/station/slot/1/mark", data={"pin": PIN},
                                                        headers=same_site(station["url"])) as r:
            return r.status

    assert run(right_pin()) == 429  # locked: even the right PIN is not checked
    wait_unlocked(station)
    wait_until(lambda: run(right_pin()) == 200, timeout=LOCKOUT_S * 8, what="the PIN's lock-out to end")


def test_password_guesses_at_once_then_one_by_one_never_check_more_than_allowed(station):
    wait_unlocked(station)
    before = len([e for e in events(station["config"], "login_failed") if e["data"].get("via") == "review"
                  and not e["data"].get("locked")])

    async def guesses() -> tuple[list[int], list[int], int]:
        async with aiohttp.ClientSession() as s:
            async def one(password: str) -> int:
                async with s.post(station["url"] + "/login", data={"user": SUPERVISOR, "password": password},
                                  headers=same_site(station["url"]), allow_redirects=False) as r:
                    return r.status
            burst = await asyncio.gather(*(one(f"guess {i}") for i in range(24)))
            serial = []
            while not serial or serial[-1] != 429:
                serial.append(await one("another guess"))
            return burst, serial, await one(PASSWORD)

    burst, _serial, right = run(guesses())
    checked = [e for e in events(station["config"], "login_failed") if e["data"].get("via") == "review"
               and not e["data"].get("locked")][before:]
    assert burst.count(401) + burst.count(429) == 24 and 1 <= len(checked) <= ATTEMPTS  # the address may owe some
    assert right == 429  # locked: the right password is not checked either
    wait_unlocked(station)


# -- origins, names, redirects, headers ----------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{"Origin": "null"}, {"Origin": "http://evil.example"}, {},
                                     {"Referer": "http://evil.example/page"}, {"Origin": "https://127.0.0.1"}])
def test_a_state_change_from_another_origin_or_none_is_refused(station, headers):
    async def post() -> int:
        async with aiohttp.ClientSession() as s, s.post(station["url"] + "/station/slot/1/mark", data={"pin": PIN},
                                                        headers=headers) as r:
            return r.status

    assert run(post()) == 403


def test_a_request_for_another_host_name_is_refused(station):
    async def get(host: str) -> int:
        async with aiohttp.ClientSession() as s, s.get(station["url"] + "/", headers={"Host": host}) as r:
            return r.status

    assert run(get("evil.example")) == 421  # DNS rebinding: the name is the attacker's
    assert run(get("localhost")) == 200


@pytest.mark.parametrize("target", ["/%09/evil.example", "//evil.example", "/\\evil.example", "https://evil.example",
                                    "/%2F/evil.example", "/%5Cevil.example", "/\t/evil.example"])
def test_a_login_never_sends_anyone_to_another_site(station, target):
    async def login() -> str:
        async with aiohttp.ClientSession() as s, s.post(
                station["url"] + "/login", data={"user": SUPERVISOR, "password": PASSWORD, "next": target},
                headers=same_site(station["url"]), allow_redirects=False) as r:
            assert r.status == 302
            return r.headers["Location"]

    assert run(login()) == "/review"


def test_media_and_errors_carry_the_security_headers(station):
    async def get() -> list[dict[str, str]]:
        s = await _session(station["url"])
        async with s:
            out = []
            for path, headers in ((f"/review/clip/{station['sha']}/media", {"Range": "bytes=0-99"}),
                                  ("/review/clip/" + "0" * 64, {}), ("/no-such-page", {})):
                async with s.get(station["url"] + path, headers=headers) as r:
                    out.append(dict(r.headers))
            return out

    for h in run(get()):
        assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]


# -- every look is recorded ----------------------------------------------------------------------------------

def test_a_search_is_recorded_with_its_query_and_result_count(station):
    async def search() -> None:
        s = await _session(station["url"])
        async with s, s.get(station["url"] + f"/review?officer={OFFICER}") as r:
            assert r.status == 200

    run(search())
    last = events(station["config"], "searched")[-1]["data"]
    assert last["user"] == SUPERVISOR and last["query"] == {"officer": OFFICER} and last["results"] == 3


def test_the_statistics_and_a_dispatch_proposal_are_recorded(station):
    async def look() -> None:
        s = await _session(station["url"])
        async with s:
            async with s.get(station["url"] + "/review/stats") as r:
                assert r.status == 200
            form = aiohttp.FormData()
            form.add_field("csv", f"{OFFICER},2024-03-01T08:00:00+08:00,2024-03-01T09:00:00+08:00,B-1\n".encode(),
                           filename="d.csv", content_type="text/csv")
            async with s.post(station["url"] + "/review/dispatch", data=form, headers=same_site(station["url"])) as r:
                assert r.status == 200

    run(look())
    assert events(station["config"], "statistics_viewed")[-1]["data"]["user"] == SUPERVISOR
    proposal = events(station["config"], "searched")[-1]["data"]
    assert proposal["what"] == "dispatch proposal" and proposal["rows"] == 1


def test_a_whole_copy_is_one_download_and_its_pieces_are_not_counted_again(station):
    sha = station["sha"]

    def downloads() -> int:
        return len([e for e in events(station["config"], "downloaded") if e["data"].get("sha256") == sha
                    and e["data"].get("what") == "media"])

    before = downloads()

    async def fetch() -> None:
        s = await _session(station["url"])
        async with s:
            media = station["url"] + f"/review/clip/{sha}/media"
            async with s.get(media) as r:  # a full copy with the cookie, no range: a download
                await r.read()
            for rng in ("bytes=0-65535", "bytes=65536-131071", "bytes=131072-"):  # one download in pieces
                async with s.get(media + "?download=1", headers={"Range": rng}) as r:
                    await r.read()
            async with s.head(station["url"] + f"/review/clip/{sha}") as r:
                assert r.status == 200

    viewed = len(events(station["config"], "viewed"))
    run(fetch())
    assert downloads() == before + 2
    assert len(events(station["config"], "viewed")) == viewed  # HEAD looks at nothing


# -- streams ---------------------------------------------------------------------------------------------------

def test_station_screen_streams_are_limited_per_client_and_in_all(station):
    async def streams() -> tuple[list[int], list[int]]:
        async def open_from(source: str) -> tuple[int, aiohttp.ClientSession, Any]:
            s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))
            r = await s.get(station["url"] + "/station/stream")
            return r.status, s, r

        held = []
        try:
            one = [await open_from("127.0.0.1") for _ in range(4)]
            held += one
            many = [await open_from(f"127.0.0.{i}") for i in range(2, 6)]
            held += many
            return [st for st, _, _ in one], [st for st, _, _ in many]
        finally:
            for _, s, r in held:
                r.close()
                await s.close()

    per_client, others = run(streams())
    assert per_client == [200, 200, 200, 429]  # max_streams_per_client = 3
    assert others.count(200) == 3 and others[-1] == 503  # max_streams = 6 in all
