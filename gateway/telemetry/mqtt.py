"""MQTT: availability, retained state, progress, events from the outbox, and
requests with responses, under ``<prefix>/<station>/``.

The connection loop lives outside the client (aiomqtt's advice): any broker
failure ends the session, and a new one starts after a backoff with jitter;
every (re)connect announces ``online`` and re-publishes the retained state.
Events come from the catalog's outbox and are marked delivered only after
the broker acknowledged them (QoS 1), so an outage delays them and loses
none; each carries a unique id for consumers to de-duplicate.
Retained topics never carry officer identities.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from gateway import __version__
from gateway.catalog import Catalog
from gateway.config import MqttConfig
from gateway.evidence.checkpoint import Checkpoint
from gateway.process.supervise import wait_event
from gateway.secrets import read_secret

log = logging.getLogger(__name__)
STATE_INTERVAL_S = 0.5
PROGRESS_INTERVAL_S = 0.5
_SLOT_FIELDS = ("slot", "state", "profile", "clips_total", "clips_done", "clips_known", "clips_failed",
                "bytes_total", "bytes_done", "skipped", "since")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _coarse(n: int | None, step: int = 100_000_000) -> int | None:
    return None if n is None else n - n % step


def node_id(station: str) -> str:
    """The station id as Home Assistant's discovery topics and ids allow it."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", station)[:64] or "station"


def discovery_configs(base: str, station: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Home Assistant MQTT discovery: a device with sensors an admin can
    chart and alert on as they are (device and state classes, units)."""
    node = node_id(station)
    device = {"identifiers": [f"dockgate_{node}"], "name": f"dockgate {station}",
              "manufacturer": "dockgate", "model": "docking station", "sw_version": __version__}
    # object id: (kind, name, template, unit, device_class, state_class)
    sensors: dict[str, tuple[str, str, str, str | None, str | None, str | None]] = {
        "queue_clips": ("sensor", "Clips waiting for the archive", "{{ value_json.queue.clips }}", None, None,
                        "measurement"),
        "queue_bytes": ("sensor", "Bytes waiting for the archive", "{{ value_json.queue.bytes }}", "B",
                        "data_size", "measurement"),
        "staging_free": ("sensor", "Staging free space", "{{ value_json.staging_free_bytes }}", "B", "data_size",
                         "measurement"),
        "slots_in_use": ("sensor", "Recorders docked", "{{ value_json.slots_in_use }}", None, None,
                         "measurement"),
        # "None": Home Assistant's unknown, until the archive was ever contacted (archive_up null)
        "archive_up": ("binary_sensor", "Archive reachable",
                       "{{ 'None' if value_json.archive_up is none else ('ON' if value_json.archive_up "
                       "else 'OFF') }}", None, "connectivity", None),
        "archive_refused": ("binary_sensor", "Archive refuses the station",
                            "{{ 'ON' if value_json.archive_refused else 'OFF' }}", None, "problem", None),
        "station_clock": ("binary_sensor", "Station clock not synchronised",
                          "{{ 'ON' if value_json.station_clock_synchronised == false else 'OFF' }}", None,
                          "problem", None),
    }
    out: dict[str, dict[str, Any]] = {}
    for oid, (kind, name, template, unit, device_class, state_class) in sensors.items():
        conf: dict[str, Any] = {
            "name": name, "unique_id": f"dockgate_{node}_{oid}",
            # the entity id Home Assistant gives it first: `default_entity_id` (domain.slug) replaces
            # `object_id`, deprecated in 2025.10 and no longer read from 2026.4
            "default_entity_id": f"{kind}.dockgate_{node}_{oid}",
            "state_topic": f"{base}/state", "value_template": template,
            "availability_topic": f"{base}/availability", "payload_available": "online",
            "payload_not_available": "offline", "device": device}
        for k, v in (("unit_of_measurement", unit), ("device_class", device_class),
                     ("state_class", state_class)):
            if v:
                conf[k] = v
        out[f"{prefix}/{kind}/dockgate_{node}/{oid}/config"] = conf
    return out


class MqttLink:
    def __init__(self, cfg: MqttConfig, station: str, catalog: Catalog, snapshot: Callable[[], dict[str, Any]],
                 handle: Callable[[str, bytes], Awaitable[bytes]],
                 checkpoint: Callable[[], Checkpoint | None] = lambda: None) -> None:
        self.checkpoint = checkpoint
        self._sent_checkpoint: Checkpoint | None = None
        self.cfg = cfg
        self.station = station
        self.base = f"{cfg.prefix}/{station}"
        self.catalog = catalog
        self.snapshot = snapshot
        self.handle = handle
        self.connected: bool | None = None
        self._wake = asyncio.Event()
        self.password = read_secret(cfg.password_file) if cfg.password_file else None

    def wake(self, *_args: object) -> None:
        self._wake.set()

    async def flush(self) -> None:
        """Wait until the broker holds the current retained state and
        checkpoint (a clean stop); returns at once when not connected."""
        target = self.checkpoint()
        while self.connected and target is not None and self._sent_checkpoint is not target:
            await asyncio.sleep(0.05)

    def _client(self) -> aiomqtt.Client:
        tls = None
        if self.cfg.tls:
            tls = ssl.create_default_context(cafile=str(self.cfg.ca_file) if self.cfg.ca_file else None)
            if self.cfg.cert_file:
                tls.load_cert_chain(str(self.cfg.cert_file), str(self.cfg.key_file) if self.cfg.key_file else None)
        return aiomqtt.Client(
            self.cfg.host, self.cfg.port, identifier=self.cfg.client_id or f"dockgate-{self.station}",
            username=self.cfg.username, password=self.password, keepalive=self.cfg.keepalive, timeout=10,
            will=aiomqtt.Will(f"{self.base}/availability", "offline", qos=1, retain=True), tls_context=tls)

    async def run(self) -> None:
        backoff = 1.0
        while True:
            try:
                async with self._client() as client:
                    self.connected = True
                    backoff = 1.0
                    log.info("MQTT connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.base)
                    await self._session(client)
            except* aiomqtt.MqttError as eg:
                log.warning("MQTT %s:%d: %s; reconnecting in %.0fs", self.cfg.host, self.cfg.port,
                            eg.exceptions[0], backoff)
            finally:
                self.connected = False
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, 30.0)

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.publish(f"{self.base}/availability", "online", qos=1, retain=True)
        await client.subscribe(f"{self.base}/request/+", qos=1)
        if self.cfg.discovery:
            await self._discovery(client)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._states(client))
                tg.create_task(self._events(client))
                tg.create_task(self._requests(client))
        except asyncio.CancelledError:
            # a clean stop is no crash: say so, instead of leaving it to the will
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.publish(f"{self.base}/availability", "offline", qos=1,
                                                      retain=True), 2)
            raise

    # -- state and progress -------------------------------------------------------
    def station_state(self, snap: dict[str, Any]) -> dict[str, Any]:
        return {"version": __version__, "station": self.station,
                "slots": len(snap["slots"]), "slots_in_use": sum(1 for s in snap["slots"] if s["state"] != "idle"),
                "queue": snap["queue"],
                # retained state changes when something meaningful does: free
                # space in steps of 100 MB, not on every written block
                "staging_free_bytes": _coarse(snap["staging_free_bytes"]),
                "archive_up": snap["archive_up"], "archive_refused": snap["archive_refused"],
                "forwarding_paused": snap["forwarding_paused"], "uploads_held": snap.get("uploads_held", False),
                "last_error": snap.get("last_error_reason"), "started_at": snap["started_at"],
                # None until the daemon has looked (gateway/timesync.py)
                "station_clock_synchronised": (snap.get("station_clock") or {}).get("synchronised")}

    async def _states(self, client: aiomqtt.Client) -> None:
        sent: dict[str, bytes] = {}  # new session: everything retained is sent again
        last_progress = 0.0
        loop = asyncio.get_running_loop()
        while True:
            snap = self.snapshot()
            out = {f"{self.base}/state": _json(self.station_state(snap))}
            if (cp := self.checkpoint()) is not None:
                # retained: a witness that connects later still gets the newest one
                out[f"{self.base}/checkpoint"] = cp.mqtt_payload()
            for s in snap["slots"]:
                out[f"{self.base}/slot/{s['slot']}/state"] = _json({k: s.get(k) for k in _SLOT_FIELDS})
            for topic, payload in out.items():
                if sent.get(topic) != payload:
                    await client.publish(topic, payload, qos=1, retain=True)
                    sent[topic] = payload
            self._sent_checkpoint = cp
            now = loop.time()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                for s in snap["slots"]:
                    if s["state"] == "pulling":
                        await client.publish(f"{self.base}/slot/{s['slot']}/progress", _json({
                            "bytes_done": s["bytes_done"], "bytes_total": s["bytes_total"],
                            "clips_done": s["clips_done"], "clips_total": s["clips_total"],
                            "rate_bps": s["rate_bps"], "eta_s": s["eta_s"]}), qos=0)
            await asyncio.sleep(STATE_INTERVAL_S)

    # -- events from the outbox ---------------------------------------------------
    async def _events(self, client: aiomqtt.Client) -> None:
        while True:
            self._wake.clear()
            batch = self.catalog.unpublished(200)
            for ev in batch:
                payload = {**ev.as_dict(), "station": self.station}
                await client.publish(f"{self.base}/events", _json(payload), qos=1)
                self.catalog.mark_published(ev.seq)
            if not batch:
                await wait_event(self._wake, 1.0)

    # -- requests -------------------------------------------------------------------
    async def _requests(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            cmd = str(message.topic).rsplit("/", 1)[-1]
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            reply = await self.handle(cmd, payload)
            await client.publish(f"{self.base}/response/{cmd[:40]}", reply, qos=1)

    async def _discovery(self, client: aiomqtt.Client) -> None:
        for topic, conf in discovery_configs(self.base, self.station, self.cfg.discovery_prefix).items():
            await client.publish(topic, _json(conf), qos=1, retain=True)
