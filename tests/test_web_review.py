"""The supervisors' review in a real browser, and the station screen's
marking: a supervisor logs in, finds a clip by its case number, plays it,
and that look is on the custody record; an officer marks a clip behind the
PIN and the stamper issues a signed amendment; no page shows clips or
officers without a login; five wrong passwords lock the account."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import DaemonProc, attach, dockgate, events, wait_until
from tests.servers import free_port
from tests.test_web_support import browser, enable_web, mp4, screenshot, wait_http, wait_js

pytestmark = pytest.mark.e2e
OFFICER = "0765432"
NAME = "李娜"
CASE = "A-2024-0815"
SUPERVISOR, PASSWORD = "inspector", "correct horse battery"


def cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """`dockgate ARGS` with *stdin* on its standard input."""
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], input=stdin, capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("web-review")
    rec = tmp / "rec"
    day = rec / "storage" / "DCIM" / "20240301"
    (rec / "storage").mkdir(parents=True)
    (rec / "device.toml").write_text(f'serial = "ZF00077"\nofficer = "{OFFICER}"\nofficer_name = "{NAME}"\n'
                                     f'unit = "城关派出所"\nprotocol = "bc-text"\n')
    mp4(day / f"{OFFICER}_20240301163015_0001.MP4", "2024-03-01T08:30:15Z", seconds=6)
    mp4(day / f"{OFFICER}_20240301180000_0002.MP4", "2024-03-01T10:00:00Z")
    config = write_station(tmp / "station", slots=2, reserve_bytes=0, custody_rotate_s=1.0)
    url = enable_web(config, free_port())
    dockgate("assign", "-c", str(config), "--officer", OFFICER, "--from", "2024-03-01T08:00:00+00:00",
             "--to", "2024-03-01T09:00:00+00:00", "--case", CASE, "--proof", "违章停车")
    cli("web-user", "add", SUPERVISOR, "-c", str(config), "--password-stdin", stdin=PASSWORD + "\n")
    d = DaemonProc(config, tmp / "daemon.log").start()
    drv = None
    try:
        attach(config, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["queue"]["clips"] == 0, timeout=90,
                   what="2 clips archived")
        wait_http(url + "/")
        drv = browser(tmp / "chromium")
        clips = {e["data"]["path"].rsplit("/", 1)[-1]: e["data"]["sha256"] for e in events(config, "pulled")}
        yield {"config": config, "url": url, "daemon": d, "driver": drv, "tmp": tmp, "clips": clips}
    finally:
        if drv is not None:
            drv.quit()
        d.stop()


@pytest.fixture(scope="module")
def logged_in(station):
    drv = station["driver"]
    drv.get(station["url"] + "/review")
    assert "/login" in drv.current_url  # the review wants a login first
    drv.find_element("id", "user").send_keys(SUPERVISOR)
    drv.find_element("id", "password").send_keys(PASSWORD)
    drv.find_element("id", "submit").click()
    wait_js(drv, "location.pathname === '/review' && document.getElementById('results')", what="the review page")
    return drv


def test_the_password_is_read_from_stdin(tmp_path):
    config = write_station(tmp_path / "station", slots=1)
    proc = cli("web-user", "add", "boss", "-c", str(config), "--password-stdin", stdin="short\n")
    assert proc.returncode == 2 and "at least 10" in proc.stderr
    proc = cli("web-user", "add", "boss", "-c", str(config), "--password-stdin", stdin="long enough pass\n")
    assert proc.returncode == 0, proc.stderr
    accounts = json.loads((load_config(config).paths.state_dir / "web" / "accounts.json").read_text())
    assert accounts["users"]["boss"]["hash"].startswith("$argon2id$")
    assert "long enough pass" not in json.dumps(accounts)


def test_a_supervisor_finds_a_clip_by_case_number_and_plays_it(station, logged_in):
    drv = logged_in
    box = drv.find_element("id", "case")
    box.clear()
    box.send_keys(CASE)
    drv.find_element("id", "search").click()
    # the search is a form GET: read the rows of the page it loads, not of the one still showing
    rows = wait_js(drv, "location.search.includes('case=') && "
                        "[...document.querySelectorAll('#results .clip-row')].map(r => r.dataset.sha)",
                   what="search results")
    sha = station["clips"][f"{OFFICER}_20240301163015_0001.MP4"]
    assert rows == [sha]  # the 10:00 clip is outside the case's span
    screenshot(drv, "review-search.png")
    drv.find_element("css selector", "#results a.open").click()
    wait_js(drv, "document.getElementById('player')", what="the clip page")
    drv.execute_script("document.getElementById('player').play()")
    wait_js(drv, "document.getElementById('player').currentTime > 1.0", timeout=30, what="the video playing")
    assert "✓" in drv.find_element("id", "checks").text and "✗" not in drv.find_element("id", "checks").text
    screenshot(drv, "review-clip.png")


def test_viewing_and_playing_a_clip_are_custody_entries(station, logged_in):
    sha = station["clips"][f"{OFFICER}_20240301163015_0001.MP4"]
    wait_until(lambda: events(station["config"], "played"), what="a played event")
    for kind in ("viewed", "played"):
        mine = [e for e in events(station["config"], kind) if e["data"]["sha256"] == sha]
        assert mine and mine[0]["data"]["user"] == SUPERVISOR and mine[0]["data"]["remote"] == "127.0.0.1"
    custody_dir = load_config(station["config"]).custody_dir
    entries = [json.loads(line) for p in sorted(custody_dir.rglob("*.jsonl")) for line in p.read_text().splitlines()]
    assert any(e["event"] == "viewed" and e["data"]["sha256"] == sha and e["data"]["user"] == SUPERVISOR
               and e["sig"] for e in entries), "the view is in the signed custody log"


def test_the_clip_page_lists_who_looked(station, logged_in):
    sha = station["clips"][f"{OFFICER}_20240301163015_0001.MP4"]
    logged_in.get(f"{station['url']}/review/clip/{sha}")
    looks = logged_in.find_element("id", "looks").text
    assert SUPERVISOR in looks and "viewed" in looks and "played" in looks


def test_a_range_request_gets_just_that_range(station, logged_in):
    sha = station["clips"][f"{OFFICER}_20240301163015_0001.MP4"]
    cookie = logged_in.get_cookie("dockgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    req = urllib.request.Request(f"{station['url']}/review/clip/{sha}/media",
                                 headers={"Range": "bytes=4-11", "Cookie": f"dockgate_session={cookie['value']}"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 206 and r.headers["Content-Range"].startswith("bytes 4-11/")
        assert r.read() == b"ftypisom"  # an MP4's first box, from byte 4


def test_an_officer_marks_a_clip_behind_the_pin_and_an_amendment_is_signed(station):
    config, drv = station["config"], station["driver"]
    assert cli("web-pin", "set", OFFICER, "-c", str(config), "--pin-stdin", stdin="246813\n").returncode == 0
    drv.get(station["url"] + "/station/slot/1/mark")
    assert "0002.MP4" not in drv.page_source  # no clips before the PIN
    drv.find_element("id", "pin").send_keys("246813")
    drv.find_element("id", "next").click()
    sha = station["clips"][f"{OFFICER}_20240301180000_0002.MP4"]
    wait_js(drv, "document.getElementById('mark-form')", what="the clip choice")
    drv.find_element("css selector", f"input[name=clip][value='{sha}']").click()
    drv.find_element("id", "case").send_keys("B-2024-0001")
    drv.find_element("id", "save").click()
    wait_js(drv, "document.getElementById('message') && document.querySelector('.ok')", what="saved")
    marked = [e for e in events(config, "marked") if e["data"]["sha256"] == sha]
    assert marked and marked[0]["data"]["case_number"] == "B-2024-0001"
    wait_until(lambda: any(e["data"]["sha256"] == sha and e["data"]["assignment"] == marked[0]["data"]["assignment"]
                           for e in events(config, "amended")), what="the signed amendment")


def test_statistics_count_each_officers_clips_and_late_docks(station, logged_in):
    cookie = logged_in.get_cookie("dockgate_session")["value"]
    req = urllib.request.Request(station["url"] + "/review/stats.json", headers={"Cookie": f"dockgate_session={cookie}"})
    with urllib.request.urlopen(req) as r:
        stats = json.load(r)
    [me] = [o for o in stats["officers"] if o["officer"] == OFFICER]
    assert me["clips"] == 2 and me["unit"] == "城关派出所" and me["hours"] > 0
    assert me["late_docks"] == 2  # recorded in 2024, docked now
    assert stats["wrong_password"] == 0 and stats["units"][0]["clips"] == 2
    logged_in.get(station["url"] + "/review/stats")
    assert OFFICER in logged_in.find_element("id", "officers").text
    screenshot(logged_in, "review-stats.png")


def test_a_dispatch_list_proposes_cases_and_lists_dispatches_without_footage(station, logged_in):
    drv = logged_in
    drv.get(station["url"] + "/review/dispatch")
    drv.find_element("id", "csv").send_keys(
        "officer,start,end,case\n"
        f"{OFFICER},2024-03-01T09:55:00+00:00,2024-03-01T10:05:00+00:00,D-2024-0100\n"
        f"{OFFICER},2024-03-02T09:00:00+00:00,2024-03-02T10:00:00+00:00,D-2024-0200\n")
    drv.find_element("id", "propose").click()
    wait_js(drv, "document.getElementById('proposals')", what="the proposals")
    sha = station["clips"][f"{OFFICER}_20240301180000_0002.MP4"]
    assert "0002.MP4" in drv.find_element("id", "proposals").text
    assert "D-2024-0200" in drv.find_element("id", "no-footage").text
    assert "D-2024-0100" not in drv.find_element("id", "no-footage").text
    drv.find_element("css selector", "#proposals input[name=take]").click()
    drv.find_element("id", "confirm").click()
    wait_js(drv, "document.getElementById('message')", what="confirmed")
    [marked] = [e for e in events(station["config"], "marked") if e["data"].get("case_number") == "D-2024-0100"]
    assert marked["data"]["user"] == SUPERVISOR and marked["data"]["via"] == "dispatch import"
    wait_until(lambda: any(e["data"]["sha256"] == sha and e["data"]["assignment"] == marked["data"]["assignment"]
                           for e in events(station["config"], "amended")), what="the signed amendment")


def test_no_page_shows_clips_or_officers_without_a_login(station):
    """Every route the server has, asked without a session: only the slot
    cards may name an officer, and nothing names a clip."""
    from gateway.web.app import make_app
    from gateway.web.context import Web

    cfg = load_config(station["config"])
    app = make_app(Web(cfg, None, None, None, None, None, lambda: None))  # type: ignore[arg-type]
    sha = next(iter(station["clips"].values()))
    clips = [*station["clips"].values(), *(n.split(".")[0] for n in station["clips"]), CASE]
    identity = [OFFICER, NAME, "城关派出所"]
    officer_ok = {"/", "/station/slot/{slot}/mark"}
    checked = 0
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method == "HEAD" or path is None or path.startswith("/static") or path == "/station/stream":
            continue
        url = station["url"] + path.replace("{sha}", sha).replace("{slot}", "1")
        body = b"pin=0000&clip=" + sha.encode() if route.method == "POST" else None
        req = urllib.request.Request(url, data=body, method=route.method)
        try:
            with urllib.request.urlopen(req) as r:
                text = r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
        for s in clips + ([] if path in officer_ok else identity):
            if s in url:  # what the client itself asked for (the login's way back) is no leak
                continue
            assert s not in text, f"{route.method} {path} shows {s!r} without a login"
        checked += 1
    assert checked >= 10


def test_five_wrong_passwords_lock_the_account_out(station):
    """Last in the module: it locks this client's address for the others."""
    drv = station["driver"]
    drv.delete_all_cookies()
    for _ in range(5):
        drv.get(station["url"] + "/login")
        drv.find_element("id", "user").send_keys(SUPERVISOR)
        drv.find_element("id", "password").send_keys("wrong password")
        drv.find_element("id", "submit").click()
        wait_js(drv, "document.getElementById('message')", what="the refusal")
    assert "锁定" in drv.find_element("id", "message").text
    drv.get(station["url"] + "/login")
    drv.find_element("id", "user").send_keys(SUPERVISOR)
    drv.find_element("id", "password").send_keys(PASSWORD)  # the right one, too late
    drv.find_element("id", "submit").click()
    wait_js(drv, "document.getElementById('message')", what="the refusal")
    assert "锁定" in drv.find_element("id", "message").text and drv.get_cookie("dockgate_session") is None
    failed = [e for e in events(station["config"], "login_failed") if e["data"]["who"] == SUPERVISOR]
    assert len(failed) >= 5
    assert [e for e in events(station["config"], "login_locked") if e["data"]["who"] == SUPERVISOR]
