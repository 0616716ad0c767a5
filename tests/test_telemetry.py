"""Telemetry against a real mosquitto on 127.0.0.1 and the real daemon:
availability and retained state through kills and broker restarts, events
through a broker outage (once per id), requests good and bad, metrics that
promtool accepts, and a systemd unit that verifies and scores well."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, dockgate, events, wait_until
from tests.mqttclient import Recorder
from tests.servers import Mosquitto, free_port

pytestmark = pytest.mark.e2e
STATION = "sim-station-01"
BASE = f"dockgate/{STATION}"


def station_with_mqtt(tmp: Path, broker: Mosquitto) -> tuple[Path, int]:
    station = write_station(tmp / "st", slots=2, reserve_bytes=0, mqtt=f"127.0.0.1:{broker.port}")
    port = free_port()
    station.write_text(station.read_text() + f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
    return station, port


def test_availability_and_retained_state_survive_kill_and_broker_restart(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    station, _ = station_with_mqtt(tmp_path, broker)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    sub = Recorder(broker.port, f"{BASE}/#")
    try:
        sub.wait(lambda: b"online" in sub.on("/availability"), what="online")
        sub.wait(lambda: sub.on(f"{BASE}/state") and sub.on("/slot/1/state"), what="retained state")
        state = sub.json_on(f"{BASE}/state")[-1]
        assert state["station"] == STATION and state["slots"] == 2 and "queue" in state
        broker.stop()  # no persistence of retained messages that matters: the daemon re-publishes
        (broker.dir / "mosquitto.db").unlink(missing_ok=True)
        broker.start()
        fresh = Recorder(broker.port, f"{BASE}/#")
        fresh.wait(lambda: fresh.on(f"{BASE}/state") and b"online" in fresh.on("/availability"), timeout=45,
                   what="retained state back after the broker restart")
        d.kill()
        fresh.wait(lambda: fresh.on("/availability")[-1:] == [b"offline"], timeout=30, what="offline (will)")
        fresh.close()
    finally:
        sub.close()
        broker.stop()


def test_a_metrics_port_held_by_another_process_is_an_error_in_the_log_not_a_stopped_station(
        tmp_path: Path) -> None:
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    station = write_station(tmp_path / "st", slots=1, reserve_bytes=0)
    station.write_text(station.read_text() + f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
    log = tmp_path / "daemon.log"
    d = DaemonProc(station, log).start()
    try:
        said = f"metrics.listen = '127.0.0.1:{port}': cannot listen there: address already in use"
        wait_until(lambda: said in log.read_text(), what="the taken port in the log")
        rec = tmp_path / "rec"
        dockgate("sim", "make", str(rec), "--clips", "2", "--size", "20k", "--serial", "PORT0001")
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2, what="evidence archived all the same")
        holder.close()
        wait_until(lambda: _scrapes(port), timeout=90, what="metrics served once the port is free")
    finally:
        holder.close()
        d.stop()
    assert "Traceback" not in log.read_text()


def _scrapes(port: int) -> bool:
    try:
        return b"dockgate_" in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return False


def test_events_raised_during_a_broker_outage_arrive_once(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    station, _ = station_with_mqtt(tmp_path, broker)
    sub = Recorder(broker.port, f"{BASE}/events", client_id="it-dashboard", clean=False)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        sub.wait(sub.subscribed.is_set, what="durable subscription acknowledged")
        rec = tmp_path / "rec"
        dockgate("sim", "make", str(rec), "--clips", "3", "--size", "300k", "--serial", "EVT0001")
        broker.stop()
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 3, timeout=60, what="archived while the broker is down")
        broker.start()
        all_events = events(station)
        want = {e["id"] for e in all_events}
        sub.wait(lambda: want <= {e["id"] for e in sub.json_on("/events")}, timeout=60,
                 what="every event after the outage")
        got = [e["id"] for e in sub.json_on("/events")]
        assert len(got) == len(set(got)), "an event arrived twice"
        types = {e["type"] for e in sub.json_on("/events")}
        assert {"docked", "pulled", "clip_archived"} <= types
    finally:
        sub.close()
        d.stop()
        broker.stop()


def test_requests_are_validated_and_answered(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    station, metrics_port = station_with_mqtt(tmp_path, broker)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    sub = Recorder(broker.port, f"{BASE}/response/#")
    try:
        sub.wait(sub.subscribed.is_set, what="subscribed")
        d.wait_for(lambda s: True, what="daemon")
        bad = [("assign", b"{not json"), ("assign", b'{"id": "t1", "officer": "1"}'),
               ("assign", b'{"id": "t2", "officer": "1", "from": "2024-01-01T00:00:00+08:00", '
                          b'"to": "2024-01-02T00:00:00+08:00", "case": "C1", "rm": "-rf"}'),
               ("explode", b'{"id": "t3"}'), ("rescan", b'{"id": "t4", "slot": 9}'), ("rescan", b'[1, 2]'),
               ("status", b"\xff\xfe")]
        for cmd, payload in bad:
            sub.publish(f"{BASE}/request/{cmd}", payload)
        sub.wait(lambda: len(sub.on("/response/assign")) >= 3 and sub.on("/response/explode")
                 and len(sub.on("/response/rescan")) >= 2 and sub.on("/response/status"), what="error responses")
        for topic in ("assign", "explode", "rescan", "status"):
            assert all(not r["ok"] and r["error"] for r in sub.json_on(f"/response/{topic}")), topic
        assert {r["id"] for r in sub.json_on("/response/assign")} == {None, "t1", "t2"}
        assert "unknown" in sub.json_on("/response/explode")[0]["error"]
        sub.publish(f"{BASE}/request/pause", b'{"id": "p1"}')
        sub.publish(f"{BASE}/request/assign", json.dumps({
            "id": "a1", "officer": "012345", "from": "2024-03-01T08:00:00+08:00", "to": "2024-03-01T09:00:00+08:00",
            "case": "A-1", "proof": "闯红灯"}).encode())
        sub.publish(f"{BASE}/request/status", b'{"id": "s1"}')
        sub.wait(lambda: any(r["id"] == "s1" for r in sub.json_on("/response/status")), what="status response")
        pause = sub.json_on("/response/pause")[-1]
        assert pause == {"id": "p1", "ok": True, "result": {"forwarding_paused": True}}
        assert next(r for r in sub.json_on("/response/assign") if r["id"] == "a1")["ok"]
        status = next(r for r in sub.json_on("/response/status") if r["id"] == "s1")
        assert status["ok"] and status["result"]["forwarding_paused"] is True
        assert d.status()["daemon"]["running"]  # still serving
        # the metrics endpoint passes promtool's lint
        def metrics() -> bytes:
            return urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()

        # the gauges are refreshed on the daemon's own beat: wait for the first refresh with the broker up
        wait_until(lambda: b"dockgate_queue_clips" in metrics() and b"dockgate_mqtt_connected 1.0" in metrics(),
                   what="queue and broker gauges")
        body = metrics()
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        sub.close()
        d.stop()
        broker.stop()


def test_home_assistant_discovers_sensors_with_classes_under_a_clean_node_id(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    station = write_station(tmp_path / "st", slots=2, reserve_bytes=0, mqtt=f"127.0.0.1:{broker.port}",
                            station_id="dock.A-1")
    station.write_text(station.read_text() + "\ndiscovery = true\n")
    sub = Recorder(broker.port, "homeassistant/#")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        sub.wait(lambda: len(sub.json_on("/config")) >= 6, what="discovery configs")
    finally:
        sub.close()
        d.stop()
        broker.stop()
    confs = {c["unique_id"]: c for c in sub.json_on("/config")}
    assert all(t.startswith("homeassistant/") and "dockgate_dock_A-1/" in t for t, _, _ in sub.messages)
    q = confs["dockgate_dock_A-1_queue_bytes"]
    assert q["device_class"] == "data_size" and q["state_class"] == "measurement" and q["unit_of_measurement"] == "B"
    assert confs["dockgate_dock_A-1_archive_up"]["device_class"] == "connectivity"
    # the current key: default_entity_id (domain.slug); object_id is deprecated and no longer read
    for t, payload, _ in sub.messages:
        kind, conf = t.split("/")[1], json.loads(payload)
        assert conf["default_entity_id"] == f"{kind}.{conf['unique_id']}" and "object_id" not in conf, conf


def test_home_assistant_shows_the_archive_unknown_until_it_was_ever_contacted() -> None:
    """Home Assistant reads the rendered "None" as unknown: not OFF (down) before the first contact."""
    import jinja2

    from gateway.telemetry.mqtt import discovery_configs

    conf = discovery_configs("dockgate/s1", "s1", "homeassistant")["homeassistant/binary_sensor/dockgate_s1/archive_up/config"]
    template = jinja2.Environment().from_string(conf["value_template"])
    assert [template.render(value_json={"archive_up": up}) for up in (None, True, False)] == ["None", "ON", "OFF"]


def test_metrics_per_stage_queue_age_last_archive_and_slot_state(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    station, port = station_with_mqtt(tmp_path, broker)
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "2", "--size", "20k", "--serial", "MET00001")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2, what="archived")
        d.wait_for(lambda s: any(x["state"] == "done" for x in s["slots"]), what="slot done")

        def scrape() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

        wait_until(lambda: 'dockgate_slot_state{slot="1",state="done"} 1.0' in scrape(), what="slot state metric")
        body = scrape()
    finally:
        d.stop()
        broker.stop()
    assert 'dockgate_pull_clips_total{result="staged"} 2.0' in body
    assert 'dockgate_forward_clips_total{result="archived"} 2.0' in body
    assert "dockgate_queue_oldest_age_seconds 0.0" in body
    assert "dockgate_last_archived_timestamp_seconds" in body and 'station="sim-station-01"' in body


def test_the_shipped_alert_rules_pass_promtool() -> None:
    rules = Path(__file__).resolve().parent.parent / "config" / "prometheus-alerts.yml"
    r = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_a_status_before_exit_waits_until_systemd_has_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """notify_before_exit: STATUS=, then BARRIER=1 with a pipe's end; systemd closes its
    copy once it has processed everything before it (here: the test's stand-in does)."""
    import os
    import socket
    import threading

    from gateway.telemetry.sdnotify import notify_before_exit

    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "notify"))
    got: list[str] = []

    def systemd() -> None:
        for _ in range(2):
            msg, fds, _flags, _addr = socket.recv_fds(server, 4096, 4)
            got.append(msg.decode())
            for fd in fds:
                os.close(fd)

    t = threading.Thread(target=systemd)
    t.start()
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    assert notify_before_exit("STATUS=station.id is still the placeholder", timeout=30)
    t.join(10)
    server.close()
    assert got == ["STATUS=station.id is still the placeholder", "BARRIER=1"]


def test_a_loop_that_runs_again_after_a_pause_pings_the_watchdog_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A pause that is over (a swap storm, a virtual machine resumed, whose clock jumped on)
    is no reason for systemd to kill the station: the next ping comes as soon as the loop runs,
    and the pause is logged. A loop that stays stuck cannot ping, and systemd acts by itself."""
    import asyncio
    import time
    from types import SimpleNamespace

    from gateway.process.daemon import Daemon

    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "notify"))
    server.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    interval = 2.0  # half a timeout of 4 s: pings every 1 s

    def pings() -> int:
        n = 0
        while True:
            try:
                n += server.recv(64) == b"WATCHDOG=1"
            except BlockingIOError:
                return n

    async def main() -> None:
        worker = asyncio.create_task(asyncio.Event().wait())
        dog = asyncio.create_task(Daemon._watchdog(SimpleNamespace(workers={worker}), interval))  # type: ignore[arg-type]
        await asyncio.to_thread(wait_until, lambda: pings() > 0, 10, "a first ping")
        time.sleep(1.75 * interval)  # the loop does not run for most of the timeout
        pings()  # (none came during the pause: the loop did not run)
        resumed = time.monotonic()
        await asyncio.to_thread(wait_until, lambda: pings() > 0, 10, "a ping after the pause", 0.01)
        # the first wake-up after the pause pings, rather than waiting for the next (1 s, or 2 s before)
        assert time.monotonic() - resumed < 0.5 * interval / 2, "the ping waited for another interval"
        dog.cancel()
        worker.cancel()

    with caplog.at_level("WARNING", logger="gateway.process.daemon"):
        asyncio.run(main())
    server.close()
    assert any("did not run for" in r.getMessage() for r in caplog.records), caplog.text
