"""The station screen on a real dock's screen (issue 27), and file names as
people read them.

In a real browser (Debian's headless Chromium through Selenium, as in
test_web_station.py; missing, the tests fail): a 25-slot simulated station
with 4, 8 and then 25 recorders docked, at 1024x600 and 800x480: every
occupied card lies inside the screen with nothing cut off inside it, the
page scrolls neither way, a 64-character serial wraps, no Chinese card
carries raw English; stopping the daemon shows "connection lost" within
5 s and a restarted daemon clears it; a clip whose name the recorder wrote
in GBK shows decoded in the review. The screenshots of 8 and 25 slots at
both sizes go to docs/screens/ (README.md shows them).

Without a browser: ``display_name`` (gateway/web/names.py) and the cards
as rendered for the screen."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cli.simstation import write_station
from gateway.pipeline.live import StationState
from gateway.web.i18n import translator
from gateway.web.names import display_name
from gateway.web.slots import SlotTracker, cards
from tests.helpers import DaemonProc, dockgate
from tests.servers import free_port
from tests.test_web_support import browser, enable_web, screenshot, wait_http, wait_js

SIZES = ((1024, 600), (800, 480))
LONG_SERIAL = "SN" + "0123456789ABCDEF" * 3 + "0123456789ABCD"
GBK_NAME = "执法记录".encode("gbk") + b".mp4"
GBK_OFFICER = "0770001"
SUPERVISOR, PASSWORD = "inspector", "correct horse battery"
NAMES = ["李娜", "王伟", "张敏", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴芳", "徐强", "孙婷", "马超"]
TEMPLATES = Path(__file__).resolve().parent.parent / "gateway" / "web" / "templates"


# -- file names ---------------------------------------------------------------------------------------------------

def test_a_utf8_name_is_shown_as_it_is():
    assert display_name("执法记录.mp4".encode()) == "执法记录.mp4"
    assert display_name(b"DCIM/100MEDIA/FILE0001.MP4") == "DCIM/100MEDIA/FILE0001.MP4"


def test_a_gbk_name_from_a_fat_volume_is_decoded():
    assert GBK_NAME == b"\xd6\xb4\xb7\xa8\xbc\xc7\xc2\xbc.mp4"  # what the recorder wrote
    assert display_name(GBK_NAME) == "执法记录.mp4"
    assert display_name("交通违法取证_二〇二四.MP4".encode("gb18030")) == "交通违法取证_二〇二四.MP4"


def test_each_part_of_a_path_is_decoded_on_its_own():
    """A GBK folder holding a UTF-8 name: decoding the whole path one way
    would turn the UTF-8 part into GB18030 mojibake (鎵ф硶...)."""
    raw = "录像".encode("gbk") + b"/" + "执法记录.mp4".encode()
    assert display_name(raw) == "录像/执法记录.mp4"


def test_bytes_that_are_no_text_show_as_escapes():
    assert display_name(b"caf\xe9.mp4") == "caf\\xe9.mp4"  # Latin-1: not UTF-8, not clean GB18030
    assert display_name(b"\xff\xfe.mp4") == "\\xff\\xfe.mp4"
    assert display_name(b"\xaa\xa1.mp4") == "\\xaa\\xa1.mp4"  # decodes as GB18030, but to a private-use code


def test_characters_a_screen_would_not_show_are_escaped():
    assert display_name(b"a\nb\x1b[31m.mp4") == "a\\x0ab\\x1b[31m.mp4"
    assert display_name("\u202e4pm.exe".encode()) == "\\u202e4pm.exe"  # a right-to-left override


@given(st.binary(max_size=64))
def test_any_bytes_give_printable_text(raw: bytes):
    text = display_name(raw)
    assert text.isprintable()
    assert text.count("/") == raw.count(b"/")


@given(st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn")), max_size=40))
def test_printable_utf8_comes_back_unchanged(name: str):
    assert display_name(name.encode()) == name


# -- the cards, rendered without a browser --------------------------------------------------------------------

class _NoDocks:
    def dock(self, dock_id: int) -> None:
        return None


def _render(state: StationState, tracker: SlotTracker, lang: str = "zh") -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    t = translator(lang)
    return env.get_template("cards.html").render(t=t, cards=cards(state, tracker, _NoDocks(), t), banner=None)


def test_the_wrong_password_card_in_chinese_carries_no_english():
    state = StationState(8)
    slot = state.slots[3]
    slot.state, slot.serial = "error", "BC0002"
    slot.message = "slot 3 1d70:01d4 serial=BC0002_0: admin password refused by the recorder"
    tracker = SlotTracker()
    tracker.on_event("docked", 3, {"dock_id": 7})
    tracker.on_event("wrong_password", 3, {})
    html = _render(state, tracker)
    card = html[html.index('id="slot-3"'):]
    card = card[:card.index("</section>")]
    text = re.sub(r"<[^>]+>", " ", card[card.index(">") + 1:]).replace("BC0002", "")
    assert "密码" in text and "管理员" in text, text
    assert not re.search(r"[A-Za-z]", text), text
    assert "refused" not in html


def test_occupied_slots_fill_a_grid_and_free_ones_take_its_spare_cells():
    state = StationState(25)
    for n in range(1, 9):
        state.slots[n].state = "pulling"
    html = _render(state, SlotTracker())
    assert 'data-n="8" data-cols="3" data-rows="3"' in html
    assert html.count('class="card idle"') == 17 and html.index('id="free"') > html.index('id="slot-8"')
    assert 'class="free in-grid" id="free" data-span="1"' in html  # the ninth cell
    state.slots[9].state = "pulling"
    html = _render(state, SlotTracker())
    assert 'data-n="9" data-cols="3" data-rows="3"' in html
    assert re.search(r'</section>\s*</div>\s*<div class="free strip"', html)  # after the full grid, below it
    for n in range(10, 26):
        state.slots[n].state = "pulling"
    html = _render(state, SlotTracker())
    assert 'data-n="25" data-cols="5" data-rows="5"' in html and 'id="free"' not in html
    html = _render(StationState(4), SlotTracker())
    assert 'data-n="0" data-cols="2" data-rows="2"' in html and 'class="nobody"' in html
    assert 'class="free strip"' in html


# -- every count of occupied slots, in a browser, without a daemon ------------------------------------------------

class _Docks:
    def dock(self, dock_id: int) -> Any:
        return type("Dock", (), {"officer_name": NAMES[dock_id % len(NAMES)] if dock_id % 3 else None})()


def _station(n: int, slots: int = 25) -> tuple[StationState, SlotTracker]:
    """*n* occupied slots of *slots*, in every state a card can be in, the
    longest texts among them: a 64-character serial, each kind of failure,
    a finished dock with important clips, one that could not read some."""
    state, tracker = StationState(slots), SlotTracker()
    for i in range(1, n + 1):
        slot = state.slots[i]
        tracker.on_event("docked", i, {"dock_id": i})
        slot.serial, slot.battery_pct, slot.message = f"ZF{i:05d}", 40 + i, "some English from the driver"
        kind = i % 7
        if kind != 3:
            tracker.on_event("identified", i, {"dock_id": i, "officer": f"05{i:04d}", "unit": "城关派出所"})
        if kind in (0, 1):
            slot.state, slot.clips_total, slot.clips_done = "pulling", 12, 3
            slot.bytes_total, slot.bytes_done, slot.since = 10**9, 10**8, time.time() - 60
        elif kind == 2:
            slot.state, slot.clips_done, slot.clips_known = "done", 11, 2
            slot.clips_failed = 2 if i % 2 else 0
        elif kind == 3:
            slot.state, slot.serial = "identifying", LONG_SERIAL
        elif kind == 4:
            slot.state = "error"
            tracker.on_event("wrong_password", i, {})
        elif kind == 5:
            slot.state = "waiting"
        else:
            slot.state = "foreign"
            tracker.on_event("foreign_device", i, {})
    return state, tracker


def _page(tmp: Path, n: int, lang: str) -> Path:
    """The station page as the daemon serves it, its CSS and script from
    the package (the script without a stream: it only fits the cards)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    t = translator(lang)
    state, tracker = _station(n)
    def clips(dock: int) -> list[dict[str, Any]]:
        return [{"sha256": "ab" * 32, "important": k < 2} for k in range(11)]
    html = env.get_template("station.html").render(
        t=t, lang=lang, path="/", user=None, station="sim-station-01", banner=None,
        cards=cards(state, tracker, _Docks(), t, clips))
    static = TEMPLATES.parent / "static"
    html = html.replace('<script src="/static/station.js">', "<script>window.EventSource = undefined;</script>"
                        f'<script src="{static.as_uri()}/station.js">')
    html = html.replace('href="/static/app.css"', f'href="{static.as_uri()}/app.css"')
    page = tmp / f"station-{n}-{lang}.html"
    page.write_text(html, encoding="utf-8")
    return page


@pytest.mark.e2e
def test_every_count_of_occupied_slots_fits_both_screens_in_both_languages(tmp_path):
    """From 1 to 25 occupied slots, with the longest texts a card can have:
    the layout checks hold at both sizes, in Chinese and in English; a
    Chinese card carries no Latin letters but its ids; a card its officer
    may mark opens marking where it is touched, button shown or not."""
    drv = browser(tmp_path / "chromium")
    try:
        for width, height in SIZES:
            _viewport(drv, width, height)
            for lang in ("zh", "en"):
                for n in range(1, 26):
                    drv.get(_page(tmp_path, n, lang).as_uri())
                    m = _fits(drv, n, width, height, timeout=5)
                    untappable = drv.execute_script(
                        "return [...document.querySelectorAll('.cards .card')].filter(c => c.querySelector('a.mark'))"
                        ".filter(c => { const b = c.getBoundingClientRect();"
                        " const e = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);"
                        " return !(e && e.closest('a.mark') === c.querySelector('a.mark')); }).map(c => c.id);")
                    assert not untappable, (width, height, lang, n, "cards that do not open marking", untappable)
                    for c in m["occupied"]:  # a long serial shows whole (wrapped) or not at all
                        text = re.sub(r"\s", "", c["text"])
                        assert LONG_SERIAL in text or "0123456789ABCDEF" not in text, (width, height, lang, n, c)
                    if lang == "zh":
                        _no_english(m, {f"slot-{i}": LONG_SERIAL if i % 7 == 3 else f"ZF{i:05d}"
                                        for i in range(1, n + 1)})
    finally:
        drv.quit()


# -- the screen in a browser ----------------------------------------------------------------------------------

def _recorder(tmp: Path, i: int, *, serial: str | None = None, rate: str | None = "100k", size: str = "1M",
              clips: int = 3, protocol: str | None = None, password: str | None = None,
              officer: str | None = None) -> Path:
    rec = tmp / f"rec{i}"
    args = ["sim", "make", str(rec), "--clips", str(clips), "--size", size, "--serial", serial or f"ZF{i:05d}",
            "--officer", officer or f"05{i:04d}"]
    if rate:
        args += ["--link-rate", rate]
    if protocol:
        args += ["--protocol", protocol]
    if password:
        args += ["--password", password]
    dockgate(*args)
    if i % 3:
        with open(rec / "device.toml", "a", encoding="utf-8") as f:
            f.write(f'officer_name = "{NAMES[i % len(NAMES)]}"\n')
    return rec


def _dock(config: Path, recorders: list[Path], slot: int) -> None:
    dockgate("sim", "attach", *map(str, recorders), "-c", str(config), "--slot", str(slot))


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("web-kiosk")
    config = write_station(tmp / "station", slots=25, reserve_bytes=0)
    url = enable_web(config, free_port())
    subprocess.run([sys.executable, "-m", "gateway.cli.main", "web-user", "add", SUPERVISOR, "-c", str(config),
                    "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, check=True,
                   timeout=60)
    state: dict[str, Any] = {"config": config, "url": url, "tmp": tmp,
                             "daemon": DaemonProc(config, tmp / "daemon.log").start()}
    drv = None
    try:
        wait_http(url + "/")
        drv = state["driver"] = browser(tmp / "chromium")
        drv.get(url + "/")
        yield state
    finally:
        if drv is not None:
            drv.quit()
        d = state["daemon"]  # the one running now: a test may have restarted it
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


def _viewport(drv, width: int, height: int) -> None:
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


#: the screen as measured in the page: every card (occupied and free), the page's scroll sizes, and, per
#: occupied card, whether its content is cut off and its text with its ids taken out
MEASURE = """
const vw = innerWidth, vh = innerHeight, doc = document.documentElement;
const all = [...document.querySelectorAll('.card')].map(c => {
  const b = c.getBoundingClientRect(), inner = c.querySelector('.in');
  return {id: c.id, kind: c.dataset.kind, left: b.left, top: b.top, right: b.right, bottom: b.bottom,
          inside: b.left >= 0 && b.top >= 0 && b.right <= vw && b.bottom <= vh && b.width > 0 && b.height > 0,
          cut: inner ? (inner.scrollHeight > inner.clientHeight + 1 || inner.scrollWidth > inner.clientWidth + 1)
                     : false,
          text: c.innerText};
});
return {vw, vh, sw: doc.scrollWidth, sh: doc.scrollHeight, cards: all,
        lost: !document.getElementById('lost').hidden};
"""


def _measure(drv) -> dict[str, Any]:
    m: dict[str, Any] = drv.execute_script(MEASURE)
    m["occupied"] = [c for c in m["cards"] if c["kind"] != "idle"]
    m["problems"] = (
        [f"{c['id']} outside the screen {c}" for c in m["cards"] if not c["inside"]]
        + [f"{c['id']} cut off inside" for c in m["occupied"] if c["cut"]]
        + ([f"scrolls sideways: {m['sw']} > {m['vw']}"] if m["sw"] > m["vw"] else [])
        + ([f"scrolls down: {m['sh']} > {m['vh']}"] if m["sh"] > m["vh"] else []))
    return m


def _fits(drv, n: int, width: int, height: int, timeout: float = 20) -> dict[str, Any]:
    """The screen at *width* x *height* once *n* slots show occupied: the
    layout checks hold (waited for with a deadline: a resize or a stream
    update re-lays the page); else the last measurement's problems fail."""
    _viewport(drv, width, height)
    deadline = time.monotonic() + timeout
    while True:
        m = _measure(drv)
        if m["vw"] == width and m["vh"] == height and len(m["occupied"]) == n and not m["problems"]:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{width}x{height}, {len(m['occupied'])} of {n} occupied: {m['problems']}")
        time.sleep(0.2)


def _no_english(m: dict[str, Any], serials: dict[str, str]) -> None:
    """No occupied card on a Chinese screen carries Latin letters, but for
    the recorder's serial and the officer's number."""
    for c in m["occupied"]:
        text = c["text"].replace(serials.get(c["id"], "\0"), "")
        assert not re.search(r"[A-Za-z]", text), (c["id"], c["text"])


def _serials(n: int) -> dict[str, str]:
    """Card id -> the serial its recorder shows (the one Latin text a Chinese card may carry)."""
    return {f"slot-{i}": LONG_SERIAL if i == 4 else f"ZF{i:05d}" for i in range(1, n + 1)}


def _looked_at(drv, m: dict[str, Any], name: str) -> None:
    """Write the screenshot for the README (only once the checks hold)."""
    screenshot(drv, f"{name}-{m['vw']}x{m['vh']}.png")


@pytest.mark.e2e
def test_four_docked_show_whole_and_a_64_character_serial_wraps(kiosk):
    """With four docked a card at 1024x600 has room for the recorder's
    serial: the 64 characters wrap inside it and the page does not scroll
    sideways (the sweep below holds this for every count)."""
    drv, tmp, config = kiosk["driver"], kiosk["tmp"], kiosk["config"]
    gbk = _recorder(tmp, 1, rate=None, size="64k", clips=2, officer=GBK_OFFICER)
    day = gbk / "storage" / "DCIM" / "20240301"
    day.mkdir(parents=True, exist_ok=True)
    with open(os.fsencode(day) + b"/" + GBK_NAME, "wb") as f:  # the name as the recorder's FAT volume holds it
        f.write(os.urandom(64 * 1024))
    recs = [gbk, _recorder(tmp, 2), _recorder(tmp, 3, protocol="bc-text", password="314159", size="64k", clips=1),
            _recorder(tmp, 4, serial=LONG_SERIAL)]
    _dock(config, recs, 1)
    wait_js(drv, "document.getElementById('slot-3') && document.getElementById('slot-3').dataset.kind === 'error'",
            what="slot 3 in error")
    for width, height in SIZES:
        m = _fits(drv, 4, width, height)
        card4 = next(c for c in m["occupied"] if c["id"] == "slot-4")
        text = re.sub(r"\s", "", card4["text"])
        if (width, height) == (1024, 600):
            assert LONG_SERIAL in text, card4  # all of it, wrapped inside the card
        else:  # a smaller card drops the serial when it knows the officer: all of it or none, never a piece
            assert LONG_SERIAL in text or "0123456789ABCDEF" not in text, card4
        assert card4["right"] <= width and m["sw"] <= m["vw"]
        _no_english(m, _serials(4))


@pytest.mark.e2e
def test_eight_docked_all_show_at_1024x600_and_800x480(kiosk):
    drv, tmp = kiosk["driver"], kiosk["tmp"]
    recs = [_recorder(tmp, i, **({"rate": None, "size": "64k"} if i == 6 else {})) for i in range(5, 9)]
    _dock(kiosk["config"], recs, 5)
    for width, height in SIZES:
        m = _fits(drv, 8, width, height)
        _no_english(m, _serials(8))
        _looked_at(drv, m, "station-8")


@pytest.mark.e2e
def test_twenty_five_docked_all_show_at_1024x600_and_800x480(kiosk):
    drv, tmp = kiosk["driver"], kiosk["tmp"]
    recs = []
    for i in range(9, 26):
        kw: dict[str, Any] = {"rate": None, "size": "64k"} if i % 4 == 0 else {}
        if i == 13:
            kw = {"protocol": "bc-text", "password": "314159", "size": "64k", "clips": 1}
        recs.append(_recorder(tmp, i, **kw))
    _dock(kiosk["config"], recs, 9)
    for width, height in SIZES:  # while the new ones are identified
        _no_english(_fits(drv, 25, width, height, timeout=60), _serials(25))
    wait_js(drv, "[...document.querySelectorAll('.cards .card')].every(c => c.dataset.state !== 'identifying')",
            timeout=120, what="every recorder identified")
    for width, height in SIZES:
        m = _fits(drv, 25, width, height)
        _no_english(m, _serials(25))
        _looked_at(drv, m, "station-25")


@pytest.mark.e2e
def test_the_wrong_password_card_in_chinese_says_what_to_do_with_no_raw_english(kiosk):
    drv = kiosk["driver"]
    for width, height in SIZES:
        m = _fits(drv, 25, width, height)
        for slot in (3, 13):
            card = next(c for c in m["occupied"] if c["id"] == f"slot-{slot}")
            text = card["text"].replace(f"ZF{slot:05d}", "")
            assert card["kind"] == "error" and "出错" in text and "密码" in text and "管理员" in text, card
            assert not re.search(r"[A-Za-z]", text), card  # the driver's English message is not on the card


@pytest.mark.e2e
def test_a_clip_named_in_gbk_shows_decoded_in_the_review(kiosk):
    """Needs gateway/web/queries.py to name clips with names.display_name."""
    drv, url = kiosk["driver"], kiosk["url"]
    _viewport(drv, 1280, 900)
    try:
        drv.get(url + "/review")
        wait_js(drv, "document.getElementById('user')", what="the login page")
        drv.find_element("id", "user").send_keys(SUPERVISOR)
        drv.find_element("id", "password").send_keys(PASSWORD)
        drv.find_element("id", "submit").click()
        wait_js(drv, "location.pathname === '/review'", what="the review page")
        names: list[str] = []
        deadline = time.monotonic() + 60
        while len(names) < 3 and time.monotonic() < deadline:  # the GBK clip and the recorder's two others
            drv.get(f"{url}/review?officer={GBK_OFFICER}")
            names = drv.execute_script("return [...document.querySelectorAll('#results a.open')]"
                                       ".map(a => a.textContent.trim());")
            time.sleep(0.5)
        assert "执法记录.mp4" in names, names
        assert not any("\\x" in n for n in names), names
        drv.find_element("link text", "执法记录.mp4").click()
        wait_js(drv, "document.querySelector('.brand').textContent.includes('执法记录.mp4')",
                what="the decoded name on the clip's page")
    finally:
        logout = drv.find_elements("id", "logout")
        if logout:  # the station's screen holds no login
            logout[0].click()
            wait_js(drv, "!document.getElementById('logout')", what="logged out")
        drv.get(url + "/")


@pytest.mark.e2e
def test_stopping_the_daemon_shows_connection_lost_within_5_s_and_a_restart_clears_it(kiosk):
    drv, url, d = kiosk["driver"], kiosk["url"], kiosk["daemon"]
    _viewport(drv, 800, 480)
    drv.get(url + "/")
    _fits(drv, 25, 800, 480)
    assert not _measure(drv)["lost"]
    d.proc.send_signal(signal.SIGTERM)
    said = time.monotonic()
    wait_js(drv, "!document.getElementById('lost').hidden && document.body.classList.contains('offline')",
            timeout=5, what="the connection-lost banner within 5 s of stopping the daemon")
    print(f"connection lost shown {time.monotonic() - said:.1f} s after SIGTERM")
    m = _fits(drv, 25, 800, 480)  # the banner takes room; every card still shows
    text = drv.find_element("id", "lost").text
    assert "连接已断开" in text and not re.search(r"[A-Za-z]", text), text
    screenshot(drv, "station-connection-lost.png")
    assert d.stop(timeout=60) == 0
    assert m["lost"]
    kiosk["daemon"] = DaemonProc(kiosk["config"], kiosk["tmp"] / "daemon.log")  # the fixture stops it
    kiosk["daemon"].start()
    wait_js(drv, "document.getElementById('lost').hidden && !document.body.classList.contains('offline')",
            timeout=30, what="the banner gone once the daemon is back")
    _fits(drv, 25, 800, 480)
