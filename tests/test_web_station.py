"""The station screen in a real browser: an officer docks a recorder and
sees its card say 正在采集 with a rising progress bar, then 可以取下; a
recorder with the wrong password shows what to do; an idle screen costs the
daemon almost nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, detach, dockgate
from tests.servers import free_port
from tests.test_web_support import browser, cpu_seconds, enable_web, screenshot, wait_http, wait_js

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("web-station")
    config = write_station(tmp / "station", slots=4, reserve_bytes=0)
    url = enable_web(config, free_port())
    d = DaemonProc(config, tmp / "daemon.log").start()
    drv = browser(tmp / "chromium")
    try:
        wait_http(url + "/")
        drv.get(url + "/")
        yield {"config": config, "url": url, "daemon": d, "driver": drv, "tmp": tmp}
    finally:
        drv.quit()
        d.stop()


def card(drv, slot: int) -> dict:
    return drv.execute_script(
        "const c = document.getElementById('slot-' + arguments[0]);"
        "return c && {kind: c.dataset.kind, state: c.dataset.state, text: c.innerText,"
        " progress: c.dataset.progress === undefined ? null : parseFloat(c.dataset.progress)};", slot)


def test_a_docked_recorder_is_collecting_with_rising_progress_then_may_be_removed(station):
    drv, tmp = station["driver"], station["tmp"]
    rec = tmp / "rec1"
    dockgate("sim", "make", str(rec), "--clips", "4", "--size", "1M", "--serial", "ZF0001", "--officer", "054321",
             "--link-rate", "1M")
    attach(station["config"], rec, 1)
    seen: list[float] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # follow the card as the officer would
        c = card(drv, 1)
        if c and c["kind"] == "working" and c["progress"] is not None:
            assert "正在采集" in c["text"]
            if not seen or c["progress"] != seen[-1]:
                seen.append(c["progress"])
            if len(seen) == 2:
                screenshot(drv, "station-collecting.png")
        if c and c["kind"] == "done":
            break
        time.sleep(0.1)
    c = card(drv, 1)
    assert c["kind"] == "done" and "可以取下" in c["text"], c
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] > seen[0], seen
    assert "054321" in c["text"] and "ZF0001" in c["text"] and "本次入库 4 段" in c["text"]
    screenshot(drv, "station.png")


def test_a_recorder_with_the_wrong_password_says_what_to_do(station):
    drv, tmp = station["driver"], station["tmp"]
    rec = tmp / "rec2"
    dockgate("sim", "make", str(rec), "--clips", "1", "--size", "64k", "--serial", "BC0002", "--officer", "054322",
             "--protocol", "bc-text", "--password", "314159")
    attach(station["config"], rec, 2)
    wait_js(drv, "document.getElementById('slot-2').dataset.kind === 'error'", what="slot 2 in error")
    text = card(drv, 2)["text"]
    assert "出错" in text and "密码" in text and "管理员" in text, text
    screenshot(drv, "station-wrong-password.png")


def test_the_screen_speaks_english_when_asked(station):
    drv = station["driver"]
    drv.get(station["url"] + "/?lang=en")
    try:
        wait_js(drv, "document.getElementById('slot-2').innerText.includes('password does not match')",
                what="the English instruction")
    finally:
        drv.get(station["url"] + "/?lang=zh")


def test_an_idle_screen_costs_the_daemon_under_one_percent_of_a_core(station):
    drv, config, d = station["driver"], station["config"], station["daemon"]
    for slot in (1, 2):
        detach(config, slot)
    d.wait_for(lambda s: all(x["state"] == "idle" for x in s["slots"]), what="every slot empty")
    wait_js(drv, "[...document.querySelectorAll('.card')].every(c => c.dataset.kind === 'idle')",
            what="the screen showing every slot empty")
    time.sleep(1.0)  # let the undock's own work settle before measuring
    pid = d.proc.pid
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(5.0)  # the measurement window, not a wait for a condition
    used = (cpu_seconds(pid) - before) / (time.monotonic() - t0)
    print(f"daemon idle CPU with the screen open: {used * 100:.2f} % of a core")
    assert used < 0.01, f"{used * 100:.2f} % of a core"
    assert drv.execute_script("return document.querySelectorAll('.card').length") == 4


def test_the_daemon_stops_cleanly_with_the_screen_open(station):
    """Last in the module: an open stream never holds up the drain."""
    drv, d = station["driver"], station["daemon"]
    drv.get(station["url"] + "/")
    wait_js(drv, "document.querySelectorAll('.card').length === 4", what="the screen")
    assert d.stop(timeout=20) == 0


def test_a_taken_web_port_leaves_the_station_pulling_and_the_screen_comes_when_it_is_free(tmp_path) -> None:
    import socket

    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    config = write_station(tmp_path / "station", slots=2, reserve_bytes=0)
    url = enable_web(config, port)
    log = tmp_path / "daemon.log"
    d = DaemonProc(config, log).start()
    try:
        said = f"web.listen = '127.0.0.1:{port}': cannot listen there: address already in use"
        d.wait_for(lambda _s: said in log.read_text(), what="the taken port in the log")
        rec = tmp_path / "rec"
        dockgate("sim", "make", str(rec), "--clips", "2", "--size", "20k", "--serial", "WEBPORT1")
        attach(config, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2, what="evidence archived without the screen")
        holder.close()
        wait_http(url + "/", timeout=90)
    finally:
        holder.close()
        d.stop()
    assert "worker web crashed" not in log.read_text()
