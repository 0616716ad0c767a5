"""Least privilege at the broker: a real mosquitto with the shipped ACL
template (config/mosquitto-acl.conf) and a password file made as
docs/operations.md says. A station publishes only under its own prefix and
reads only its own command topic; only operators send commands; the witness
reads checkpoints and publishes nothing.

Nothing is waited for with a sleep: a refused publish is dropped silently
(MQTT 3.1.1 cannot say so), so each test ends on a sentinel that the same
client publishes after the forgeries; messages from one client arrive in the
order it sent them, so once the sentinel is there, a forgery the broker had
let through would be there too."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, dockgate
from tests.servers import Mosquitto

ROOT = Path(__file__).resolve().parent.parent
USERS = {"st-a": "pw-a", "st-b": "pw-b", "operator": "pw-op", "witness": "pw-w"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    folder = tmp_path_factory.mktemp("acl-broker")
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(passwd).exists():
        raise AssertionError("mosquitto_passwd is not installed (it comes with mosquitto); the ACL tests need it")
    pwfile = folder / "dockgate.passwd"
    for i, (user, password) in enumerate(USERS.items()):  # the recipe in docs/operations.md
        subprocess.run([passwd, *(["-c"] if i == 0 else []), "-b", str(pwfile), user, password], check=True,
                       capture_output=True)
    acl = folder / "dockgate.acl"
    shutil.copy(ROOT / "config" / "mosquitto-acl.conf", acl)
    server = Mosquitto(folder / "broker", anonymous=False, extra=f"password_file {pwfile}\nacl_file {acl}\n")
    try:
        yield server
    finally:
        server.stop()


class Client:
    """A paho client logged in as *user*, recording what it receives."""

    def __init__(self, broker: Mosquitto, user: str, *subscriptions: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.acked = threading.Event()
        self.connected = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.monotonic_ns()}")
        self.c.username_pw_set(user, USERS[user])
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *_: self.acked.set()
        self.c.connect("127.0.0.1", broker.port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(10), f"{user} could not log in"
        for sub in subscriptions:
            self.acked.clear()
            self.c.subscribe(sub, qos=1)
            assert self.acked.wait(10), f"no SUBACK for {sub}"

    def _on_connect(self, c: mqtt.Client, u: object, flags: object, rc: Any, p: object = None) -> None:
        if not rc.is_failure:
            self.connected.set()

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.got]

    def wait_for(self, topic: str, payload: bytes, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if (topic, payload) in self.got:
                    return
            time.sleep(0.02)
        raise AssertionError(f"{topic} {payload!r} did not arrive; got {self.got}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def connect(broker: Mosquitto) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(user: str, *subscriptions: str) -> Client:
        made.append(Client(broker, user, *subscriptions))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_a_station_cannot_publish_another_stations_checkpoint_or_status(connect: Callable[..., Client]) -> None:
    operator = connect("operator", "dockgate/#")
    witness = connect("witness", "dockgate/+/checkpoint")
    a = connect("st-a")
    for what in ("checkpoint", "state", "availability", "events", "slot/1/state", "response/status"):
        a.publish(f"dockgate/st-b/{what}", b"forged by st-a", retain=what in ("checkpoint", "state"))
    a.publish("dockgate/st-a/state", b'{"station": "st-a"}', retain=True)
    a.publish("dockgate/st-a/checkpoint", b"st-a's own", retain=True)
    operator.wait_for("dockgate/st-a/checkpoint", b"st-a's own")
    witness.wait_for("dockgate/st-a/checkpoint", b"st-a's own")
    assert operator.topics() == ["dockgate/st-a/state", "dockgate/st-a/checkpoint"]
    assert witness.topics() == ["dockgate/st-a/checkpoint"]
    late = connect("operator", "dockgate/st-b/#", "dockgate/st-a/checkpoint")  # retained: nothing of B's kept
    late.wait_for("dockgate/st-a/checkpoint", b"st-a's own")
    assert late.topics() == ["dockgate/st-a/checkpoint"]


def test_only_operators_send_commands_and_a_station_reads_only_its_own(connect: Callable[..., Client]) -> None:
    a = connect("st-a", "dockgate/st-a/request/+", "dockgate/st-b/request/+", "dockgate/#")
    b = connect("st-b", "dockgate/st-b/request/+")
    operator = connect("operator", "dockgate/+/request/+")
    a.publish("dockgate/st-b/request/pause", b'{"id": "a1"}')  # another station's
    a.publish("dockgate/st-a/request/pause", b'{"id": "a2"}')  # even its own: commands are the operators'
    witness = connect("witness")
    witness.publish("dockgate/st-b/request/pause", b'{"id": "w1"}')
    operator.publish("dockgate/st-b/request/status", b'{"id": "op-b"}')
    operator.publish("dockgate/st-a/request/status", b'{"id": "op-a"}')
    b.wait_for("dockgate/st-b/request/status", b'{"id": "op-b"}')
    a.wait_for("dockgate/st-a/request/status", b'{"id": "op-a"}')
    operator.wait_for("dockgate/st-a/request/status", b'{"id": "op-a"}')
    assert b.got == [("dockgate/st-b/request/status", b'{"id": "op-b"}')]
    assert set(a.got) == {("dockgate/st-a/request/status", b'{"id": "op-a"}')}  # nothing of B's, nothing else
    assert operator.topics() == ["dockgate/st-b/request/status", "dockgate/st-a/request/status"]


def test_the_witness_reads_checkpoints_only_and_cannot_publish(connect: Callable[..., Client]) -> None:
    witness = connect("witness", "dockgate/+/checkpoint", "dockgate/#")
    operator = connect("operator", "dockgate/#")
    for topic in ("dockgate/st-a/checkpoint", "dockgate/st-a/state", "dockgate/witness/checkpoint",
                  "dockgate/witness/state"):
        witness.publish(topic, b"from the witness")
    a = connect("st-a")
    a.publish("dockgate/st-a/state", b"st-a state")
    a.publish("dockgate/st-a/checkpoint", b"st-a checkpoint 2")
    operator.wait_for("dockgate/st-a/checkpoint", b"st-a checkpoint 2")
    witness.wait_for("dockgate/st-a/checkpoint", b"st-a checkpoint 2")
    assert not [m for m in operator.got if m[1] == b"from the witness"], operator.got
    assert {t for t in witness.topics()} == {"dockgate/st-a/checkpoint"}, witness.got


def test_a_station_daemon_under_the_acl_publishes_its_state_and_checkpoints_and_answers(
        tmp_path: Path, broker: Mosquitto, connect: Callable[..., Client]) -> None:
    """The real daemon, logged in as its station id: everything it publishes
    is within its prefix (its will too), and it reads its commands."""
    station = write_station(tmp_path / "st", station_id="st-a", slots=1, reserve_bytes=0,
                            mqtt=f"127.0.0.1:{broker.port}", custody_rotate_s=1.0)
    pw = tmp_path / "st" / "secrets" / "mqtt_password"
    pw.write_text(USERS["st-a"])
    pw.chmod(0o600)
    station.write_text(station.read_text() + f'username = "st-a"\npassword_file = "{pw}"\ndiscovery = true\n')
    operator = connect("operator", "dockgate/#", "homeassistant/#")
    witness = connect("witness", "dockgate/+/checkpoint")
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        operator.wait_for("dockgate/st-a/availability", b"online", timeout=30)
        rec = tmp_path / "rec"
        dockgate("sim", "make", str(rec), "--clips", "1", "--size", "20k", "--serial", "ACL00001")
        attach(station, rec, 1)
        deadline = time.monotonic() + 60
        while "dockgate/st-a/checkpoint" not in witness.topics() or "dockgate/st-a/events" not in operator.topics():
            assert time.monotonic() < deadline, f"no checkpoint witnessed or no events; saw {set(operator.topics())}"
            time.sleep(0.05)
        operator.publish("dockgate/st-a/request/status", b'{"id": "acl-1"}')
        deadline = time.monotonic() + 30
        while "dockgate/st-a/response/status" not in operator.topics():
            assert time.monotonic() < deadline, "no answer to the operator's request"
            time.sleep(0.05)
        d.kill()
        operator.wait_for("dockgate/st-a/availability", b"offline", timeout=30)  # the will
    finally:
        d.stop()
    seen = set(operator.topics())
    assert {"dockgate/st-a/state", "dockgate/st-a/slot/1/state", "dockgate/st-a/events",
            "dockgate/st-a/checkpoint"} <= seen, seen
    assert any(t.startswith("homeassistant/") and "/dockgate_st-a/" in t for t in seen), seen
