"""The daemon: one event loop, supervised workers, clean drain on SIGTERM.

Why it is one module of ~500 lines: it is the wiring, the one place that
knows every part (detection, sessions, the workers, telemetry, the web) and
the order they start and drain in; each part's own logic lives in its
stage. Split it and the start-up and drain order, which is the point, would
be read across files."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import faulthandler
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from drivers.base import DockedDevice, StorageSwitch
from drivers.detect import Attached, Detached, Detector, DetectProblem
from drivers.profiles import Registry
from gateway import __version__, drop_in_dir
from gateway.archive import ArchiveError, open_archive
from gateway.catalog import Catalog
from gateway.config import Config
from gateway.errors import ConfigError, DockgateError
from gateway.evidence.custody import CustodyLog
from gateway.evidence.newest import newest_entry
from gateway.evidence.signing import load_signer
from gateway.evidence.timestamp import Timestamper, TimestampWorker
from gateway.pipeline.buffers import BufferBudget, keep_the_allocator_lean
from gateway.pipeline.events import Journal
from gateway.pipeline.forward import Forwarder
from gateway.pipeline.housekeep import Housekeeper
from gateway.pipeline.live import StationState
from gateway.pipeline.purge import Purger
from gateway.pipeline.recovery import catch_up
from gateway.pipeline.session import Context, DockSession
from gateway.pipeline.staging import Staging
from gateway.pipeline.stamp import Stamper
from gateway.process.runfiles import InstanceLock, write_status
from gateway.process.supervise import supervise, until_listening
from gateway.secrets import read_secret
from gateway.telemetry.metrics import Metrics
from gateway.telemetry.mqtt import MqttLink
from gateway.telemetry.requests import AssignReq, CommandError, SlotReq, parse_request, request_id, response
from gateway.telemetry.sdnotify import notify, notify_before_exit, watchdog_interval
from gateway.timesync import StationClock

log = logging.getLogger(__name__)
STATUS_INTERVAL_S = 0.5
IDLE_STATUS_S = 5.0
DRAIN_WORKERS_S = 10.0
#: how long a clean stop waits for the archive to take the sealed custody record
DRAIN_EVIDENCE_S = 15.0
#: ... and for the broker to take the final state and checkpoint
DRAIN_TELEMETRY_S = 3.0


def make_detector(cfg: Config, registry: Registry) -> Detector:
    if cfg.detect.backend == "sim":
        from drivers.detect.sim import SimDetector

        assert cfg.detect.sim_dir is not None
        return SimDetector(cfg.detect.sim_dir, cfg.detect.slots, registry,
                           cfg.detect.poll_interval_s)
    from drivers.detect.udev import UdevDetector

    return UdevDetector(cfg.detect.slots, cfg.detect.ports)


def _resolved(cfg: Config, key: str) -> Path:
    section, name = key.split(".")
    value = getattr(getattr(cfg, section), name)
    return value if isinstance(value, Path) else Path("/nonexistent")


def _tell_systemd_it_takes_long(what: str) -> None:
    """Before start-up work that scales with the station's history: extend
    the unit's start timeout (TimeoutStartSec=120) by 15 minutes and say why
    (``systemctl status``), so systemd does not kill a migration midway and
    restart it for ever."""
    log.warning("%s", what)
    notify(f"EXTEND_TIMEOUT_USEC={15 * 60 * 1_000_000}\nSTATUS={what}")


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.lock = InstanceLock(cfg.run_dir)
        self.state = StationState(cfg.detect.slots)
        self.sessions: dict[int, asyncio.Task[None]] = {}
        self.devices: dict[int, Attached] = {}
        #: slot -> (what its recorder's storage switch said, once it said it; the hand-over)
        self.switching: dict[int, tuple[StorageSwitch | None, asyncio.Future[DockedDevice]]] = {}
        self.stopping = asyncio.Event()
        self.mqtt: MqttLink | None = None
        self.metrics: Metrics | None = None
        self.workers: set[asyncio.Task[None]] = set()

    def _refuse_unless_configured(self) -> None:
        """Before anything is touched: a station still under the shipped
        placeholder id, or one whose state folder holds another station's
        catalog and custody log, does not start. Said in the log and in
        systemd's STATUS= line; exit 2, which the unit does not restart."""
        cfg = self.cfg
        problem = None
        if cfg.placeholder_id:
            problem = (f"station.id is still the placeholder {cfg.station.id!r}: not started, nothing is docked or "
                       f"stamped. Set this station's own id in a drop-in, e.g. {drop_in_dir(cfg.source)}/"
                       f"station.toml with [station] id = \"...\", then: dockgate check-config && "
                       f"systemctl restart dockgate")
        elif (owner := newest_entry(cfg.custody_dir) if cfg.custody_dir.is_dir() else None) is not None \
                and owner[0] != cfg.station.id:
            problem = (f"station.id is {cfg.station.id!r}, but the catalog and custody log in {cfg.paths.state_dir} "
                       f"are station {owner[0]!r}'s (custody entry {owner[1]}): not started. Set station.id = "
                       f"{owner[0]!r} to continue them, or move {cfg.paths.state_dir} aside (once `dockgate "
                       f"verify` says the archive holds all of it) to start {cfg.station.id!r} afresh")
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if problem is None and creds:  # under systemd: a secret the unit does not hand over is read nowhere else
            missing = [f"{key} = {name!r}" for key, name in sorted(cfg.credentials.items())
                       if not (Path(creds) / name).is_file() and not os.access(_resolved(cfg, key), os.R_OK)]
            if missing:
                problem = (f"{', '.join(missing)}: not among this service's credentials (LoadCredential=): run "
                           f"`dockgate setup-systemd`, then systemctl daemon-reload && systemctl restart dockgate")
        if problem is not None:
            log.error("%s", problem)
            notify_before_exit(f"STATUS={problem}")
            raise ConfigError(cfg.source, [problem])

    def _startup(self) -> None:
        cfg = self.cfg
        self._refuse_unless_configured()
        self.lock.acquire()
        self.registry = Registry.load(cfg.recorders.profiles_dir)
        self.password = (read_secret(cfg.recorders.admin_password_file)
                         if cfg.recorders.admin_password_file else None)
        self.catalog = Catalog(cfg.catalog_path, compact=True,  # the station's lock is ours: no writer waits
                               long_work=_tell_systemd_it_takes_long)
        # SQLite's quick_check reads the whole file (seconds at a year's history): the housekeeper runs it
        # on a read-only connection of its own once the station is ready (gateway/pipeline/housekeep.py)
        recovered = self.catalog.recover()
        self.staging = Staging(cfg.paths.staging, cfg.ingest.reserve_bytes)
        dropped = self.staging.prepare()
        self.archive = open_archive(cfg)
        try:
            self.swept = self.archive.sweep_partial()
        except ArchiveError as e:  # not mounted yet, say: the forwarder will find out and say so
            log.warning("could not sweep the archive's temp files: %s", e)
            self.swept = 0
        self.signer = load_signer(cfg.evidence.signing_key_file)
        self.custody = CustodyLog(cfg.custody_dir, self.signer, cfg.station.id,
                                  rotate_entries=cfg.evidence.custody_rotate_entries,
                                  rotate_s=cfg.evidence.custody_rotate_s,
                                  counts=lambda: {"clips_archived": self.catalog.counts()["archived"]})
        self.journal = self.catalog.journal = Journal(self.custody)
        self._dirty = True
        self.journal.listeners.append(self._mark_dirty)
        self.forwarder = Forwarder(cfg, self.catalog, self.staging, self.archive, self.state, cfg.custody_dir,
                                   [self.signer.public])
        self.timestamps: TimestampWorker | None = None
        if cfg.evidence.tsa_url and cfg.evidence.tsa_ca_file:
            stamper = Timestamper(cfg.evidence.tsa_url, cfg.evidence.tsa_ca_file, cfg.evidence.tsa_timeout_s)
            self.timestamps = TimestampWorker(stamper, cfg.custody_dir, self._token_ready)
        self.stamper = Stamper(cfg, self.catalog, self.staging, self.registry, self.signer, self.custody,
                               self._evidence_ready)
        self.purger = Purger(cfg, self.catalog, self.staging)
        self.housekeeper = Housekeeper(cfg, self.catalog, self._docks_busy)

        # the station's own clock: every dock asks it, and a worker polls it (the alarm without a dock)
        self.clock = StationClock.for_config(cfg)
        self.ctx = Context(cfg, self.catalog, self.staging, self.registry, self.password, self.stamper.wake,
                           self.purger.need, self.switch_storage,
                           BufferBudget(cfg.ingest.memory_budget, cfg.ingest.buffer_size), self.state.pulling,
                           self.forwarder.wake, station_clock=self.clock)
        self.detector = make_detector(cfg, self.registry)
        if cfg.metrics.enabled:
            self.metrics = Metrics(cfg.detect.slots, cfg.station.id)
            self.journal.listeners.append(self.metrics.on_event)
        if cfg.mqtt.enabled:
            self.mqtt = MqttLink(cfg.mqtt, cfg.station.id, self.catalog, self.snapshot, self.handle_request,
                                 lambda: self.stamper.latest_checkpoint)
            self.journal.listeners.append(self.mqtt.wake)
        log.info("dockgate %s station %s: %d slots, %d profiles, archive %s; recovered %s, "
                 "dropped %d partial staging files", __version__, cfg.station.id,
                 cfg.detect.slots, len(self.registry.profiles), self.archive.describe(),
                 recovered, dropped)
        if self.swept:
            self.catalog.emit("archive_swept", archive=self.archive.describe(), partial_files=self.swept)
        catch_up(self.catalog, cfg.custody_dir, self.custody.seq, self.staging)

    async def _serve_metrics(self) -> None:
        """The Prometheus endpoint, on its own thread once bound; a taken
        port is retried, never a reason to stop pulling (supervise.until_listening)."""
        metrics = self.metrics
        assert metrics is not None

        async def start() -> None:
            metrics.serve(self.cfg.metrics.listen)

        await until_listening(start)
        await asyncio.Event().wait()  # a worker that returns would stop the station

    def _evidence_ready(self) -> None:
        """Something new to archive (a stamped clip, a sealed segment and checkpoint)."""
        self.forwarder.wake()
        if self.timestamps is not None:
            self.timestamps.wake()

    def _token_ready(self, tsr: Path) -> None:
        self.catalog.add_segment(tsr.name)
        cp = self.stamper.latest_checkpoint
        if cp is not None and tsr.name == cp.name + ".tsr":  # witnesses keep the token with the checkpoint
            self.stamper.latest_checkpoint = dataclasses.replace(cp, token=tsr.read_bytes())
        self.forwarder.wake()

    def snapshot(self) -> dict[str, Any]:
        clips, nbytes = self.catalog.queue()
        snap = self.state.snapshot()
        cp = self.stamper.latest_checkpoint
        snap["checkpoint"] = None if cp is None else {"name": cp.name, "seq": cp.doc["seq"], "head": cp.doc["head"]}
        snap.update(version=__version__, station=self.cfg.station.id, pid=os.getpid(),
                    updated_at=time.time(), queue={"clips": clips, "bytes": nbytes},
                    staging_free_bytes=self.staging.free_bytes(), running=True,
                    station_clock=self.clock.status(),
                    disk={**self.housekeeper.disk, "custody_removed": self.housekeeper.custody_removed,
                          "events_pruned": self.housekeeper.events_pruned})
        return snap

    def _mark_dirty(self, *_args: object) -> None:
        self._dirty = True

    async def _status_writer(self) -> None:
        """The live snapshot for `dockgate status`, metrics and systemd: every
        half second while anything moves, every few seconds when idle."""
        last_status = ""
        last_write = 0.0
        loop = asyncio.get_running_loop()
        while True:
            busy = any(s.state in ("identifying", "pulling", "waiting") for s in self.state.slots.values())
            write = busy or self._dirty or loop.time() - last_write >= IDLE_STATUS_S
            if not write and self.metrics is None:
                await asyncio.sleep(STATUS_INTERVAL_S)
                continue
            snap = self.snapshot()
            if self.metrics is not None:  # a scrape may come at any moment
                self.metrics.update(snap, self.catalog.unpublished_count(),
                                    self.mqtt.connected if self.mqtt else None,
                                    self.catalog.queue_oldest_age(time.time()))
            if not write:
                await asyncio.sleep(STATUS_INTERVAL_S)
                continue
            self._dirty = False
            last_write = loop.time()
            await asyncio.to_thread(write_status, self.cfg.run_dir, snap)
            docked = sum(1 for s in snap["slots"] if s["state"] != "idle")
            line = (f"STATUS={docked} docked, {snap['queue']['clips']} clips queued, archive "
                    + ("REFUSES this station" if snap["archive_refused"]
                       else {True: "up", False: "DOWN", None: "not contacted"}[snap["archive_up"]])
                    + ("; station clock NOT synchronised: no recorder clock set" if snap["station_clock"]["alarm"]
                       else ""))
            if line != last_status:
                notify(line)
                last_status = line
            await asyncio.sleep(STATUS_INTERVAL_S)

    def _docks_busy(self) -> bool:
        """A slot pulls, or waits for staging room to pull: no catalog
        rewrite now. A waiting slot does not hold back the uploads (they make
        its room), but a compaction would take the disk's last room for its
        copy of the catalog and hold the writer the uploads commit through."""
        return bool(self.state.pulling) or any(s.state == "waiting" for s in self.state.slots.values())

    async def _watchdog(self, interval: float) -> None:
        """Ping systemd while the loop runs and every worker is alive.

        A loop that does not run cannot ping, and systemd kills it by itself.
        A loop that ran again after a pause (a swap storm, a virtual machine
        resumed) pings at once: withholding that ping would turn a pause that
        is over into a kill. The pause is logged. Pings come four times a
        timeout, so one late wake-up never costs the station its process."""
        loop = asyncio.get_running_loop()
        every = interval / 2
        while True:
            before = loop.time()
            await asyncio.sleep(every)
            if (paused := loop.time() - before - every) > every:
                log.warning("the event loop did not run for %.0f s", paused)
            if all(not t.done() for t in self.workers):
                notify("WATCHDOG=1")

    async def handle_request(self, cmd: str, payload: bytes) -> bytes:
        """One MQTT request: validated, then applied; errors change nothing."""
        try:
            req = parse_request(cmd, payload)
        except CommandError as e:
            log.warning("rejected request %s: %s", cmd[:40], e)
            return response(request_id(payload), False, error=str(e))
        try:
            result = await self._apply(cmd, req)
        except DockgateError as e:
            return response(req.id, False, error=str(e))
        except Exception as e:  # a request is never the end of the MQTT worker: answered, logged, harmless
            log.exception("request %s could not be applied", cmd[:40])
            return response(req.id, False, error=f"could not be applied: {type(e).__name__}")
        return response(req.id, True, result=result)

    async def _apply(self, cmd: str, req: Any) -> dict[str, Any]:
        if isinstance(req, AssignReq):
            aid = self.catalog.add_assignment(req.officer, req.start.timestamp(), req.end.timestamp(), req.case,
                                              req.proof, req.category, req.important)
            self.stamper.wake()
            return {"assignment": aid}
        if isinstance(req, SlotReq):
            if req.slot > self.cfg.detect.slots:
                raise CommandError(f"slot {req.slot} does not exist (1..{self.cfg.detect.slots})")
            attached = self.devices.get(req.slot)
            if attached is None:
                raise CommandError(f"slot {req.slot} is empty")
            await self._undock(req.slot)
            self._dock(attached)
            return {"slot": req.slot, "rescanning": True}
        if cmd == "pause":
            self.state.forwarding_paused = True
            self.catalog.emit("forwarding_paused")
            return {"forwarding_paused": True}
        if cmd == "resume":
            self.state.forwarding_paused = False
            self.forwarder.wake()
            self.catalog.emit("forwarding_resumed")
            return {"forwarding_paused": False}
        snap = self.snapshot()
        return {"clips": self.catalog.counts(), "queue": snap["queue"], "archive_up": snap["archive_up"],
                "forwarding_paused": snap["forwarding_paused"],
                "slots": [{k: x[k] for k in ("slot", "state", "clips_done", "clips_total")} for x in snap["slots"]]}

    async def switch_storage(self, slot: int, enter: Callable[[], Awaitable[StorageSwitch | None]]
                             ) -> tuple[StorageSwitch | None, DockedDevice | None]:
        """Switch the recorder on *slot* to storage (*enter*) and wait for the
        storage device it becomes there: the detect loop hands it over instead
        of starting a new dock. Expecting it before the command goes out: the
        vendor device may leave the bus before the command even returns."""
        fut: asyncio.Future[DockedDevice] = asyncio.get_running_loop().create_future()
        self.switching[slot] = (None, fut)
        try:
            switch = await enter()
            if switch is None:
                return None, None
            self.switching[slot] = (switch, fut)
            try:
                async with asyncio.timeout(switch.settle_s + switch.timeout_s):
                    return switch, await fut
            except TimeoutError:
                return switch, None
        finally:
            self.switching.pop(slot, None)

    def _hand_over(self, event: Attached | Detached) -> bool:
        """True if *event* is the re-enumeration of a recorder switching to
        storage on that slot (its vendor device leaving, its storage arriving)."""
        slot = event.device.slot if isinstance(event, Attached) else event.slot
        waiting = self.switching.get(slot)
        if waiting is None:
            return False
        switch, fut = waiting
        if isinstance(event, Detached):
            log.info("slot %d: the recorder left the bus for its storage switch", slot)
            return True
        ids = event.device.ids
        want = switch.storage_ids if switch is not None else None
        if event.device.volume is None or (want is not None and (ids.vid, ids.pid) != (want.vid, want.pid)):
            return False  # something else was docked in that slot
        if not fut.done():
            fut.set_result(event.device)
        self.devices[slot] = event
        return True

    async def _detect_loop(self) -> None:
        async for event in self.detector.events():
            if isinstance(event, Attached | Detached) and self._hand_over(event):
                continue
            if isinstance(event, Attached):
                await self._undock(event.device.slot)
                self.devices[event.device.slot] = event
                self._dock(event)
            elif isinstance(event, Detached):
                self.devices.pop(event.slot, None)
                await self._undock(event.slot)
                self.catalog.emit("undocked", event.slot)
            elif isinstance(event, DetectProblem):
                await self._undock(event.slot)
                st = self.state.slots[event.slot]
                st.reset("error")
                st.message = event.message
                self.catalog.emit("device_error", event.slot, error=event.message)

    async def flush_custody(self, timeout: float = 30.0) -> bool:
        """Seal the open custody segment and wait until the archive holds every
        sealed one (the demo's last step; a running station rotates by time)."""
        self.stamper.rotate(force=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while self.catalog.due_segments():
            if asyncio.get_running_loop().time() > deadline:
                return False
            self.forwarder.wake()
            await asyncio.sleep(0.1)
        return True

    async def _seal_and_forward_custody(self) -> None:
        """A clean stop leaves the archive holding the custody record of
        everything that happened, with a checkpoint over it: a station lost
        after the stop takes nothing of the record with it."""
        try:
            self.stamper.rotate(force=True)
            async with asyncio.timeout(DRAIN_EVIDENCE_S):
                if self.timestamps is not None:  # the final checkpoint's token too, if the TSA answers now
                    await self.timestamps.step()
                done = await self.forwarder.flush_evidence()
        except TimeoutError:
            done = False
        except DockgateError as e:
            log.error("sealing the custody log on stop failed: %s", e)
            done = False
        if done:
            log.info("custody sealed and archived up to seq %d", self.custody.seq)
        else:
            log.warning("custody sealed up to seq %d; the archive did not take it all now: it goes out at the "
                        "next start", self.custody.seq)

    def _dock(self, event: Attached) -> None:
        slot = event.device.slot
        session = DockSession(self.ctx, event.device, self.state.slots[slot])
        task = asyncio.create_task(self._run_session(session), name=f"slot-{slot}")
        self.sessions[slot] = task

    async def _run_session(self, session: DockSession) -> None:
        try:
            await session.run()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in one slot must not take the station down
            log.exception("slot %d serial %s: session crashed", session.slot, session.serial)
            session.st.state, session.st.message = "error", f"internal error: {e}"
            self.catalog.emit("device_error", session.slot, serial=session.serial,
                             error=f"internal error: {e}")

    async def _undock(self, slot: int) -> None:
        task = self.sessions.pop(slot, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.state.slots[slot].reset("idle")

    async def run(self, on_ready: Callable[[], None] | None = None) -> int:
        # blocking work is I/O (USB, disks, the archive): enough threads that a
        # slot's pull never queues behind uploads and probes
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=8 + 2 * self.cfg.detect.slots,
                                                  thread_name_prefix="dockgate"))
        self._startup()
        # `kill -USR1 <pid>` writes every thread's stack to the log: what a
        # stuck station is doing, without stopping it
        with contextlib.suppress(AttributeError, ValueError, RuntimeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stopping.set)
        workers = self.workers = {
            asyncio.create_task(supervise("detect", self._detect_loop), name="detect"),
            asyncio.create_task(supervise("stamp", self.stamper.run), name="stamp"),
            asyncio.create_task(supervise("forward", self.forwarder.run), name="forward"),
            asyncio.create_task(supervise("status", self._status_writer), name="status"),
            asyncio.create_task(supervise("purge", self.purger.run), name="purge"),
            asyncio.create_task(supervise("housekeep", self.housekeeper.run), name="housekeep"),
            asyncio.create_task(supervise("timesync", lambda: self.clock.watch(self.catalog.emit)), name="timesync"),
        }
        if self.metrics is not None:
            workers.add(asyncio.create_task(supervise("metrics", self._serve_metrics), name="metrics"))
        if self.mqtt is not None:
            workers.add(asyncio.create_task(supervise("mqtt", self.mqtt.run), name="mqtt"))
        if self.timestamps is not None:
            workers.add(asyncio.create_task(supervise("timestamp", self.timestamps.run), name="timestamp"))
        if self.cfg.web.enabled:  # the station screen and supervisor review (gateway/web, docs/web.md)
            from gateway.web.app import WebServer

            web = WebServer(self.cfg, self.catalog, self.state, self.archive, self.staging, self.signer.public,
                            self.stamper.wake)
            self.journal.listeners.append(web.on_event)
            workers.add(asyncio.create_task(supervise("web", web.run), name="web"))
        stop = asyncio.create_task(self.stopping.wait(), name="stop")
        interval = watchdog_interval()
        watchdog = asyncio.create_task(self._watchdog(interval), name="watchdog") if interval else None
        notify("READY=1")
        if on_ready:
            on_ready()
        code = 0
        try:
            done, _ = await asyncio.wait(workers | {stop}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop and t.exception() is not None:
                    log.error("stopping: %s", t.exception())
                    code = 1
        finally:
            notify("STOPPING=1")
            if watchdog is not None:
                watchdog.cancel()
            log.info("draining: stopping workers, interrupting clips in flight, closing the catalog")
            # uploads and stamping resume from the catalog: stop them first, so
            # that they do not compete with the pulls being interrupted
            # MQTT goes last: it tells the broker (and witnesses) the final checkpoint
            telemetry = {t for t in workers if t.get_name() == "mqtt"}
            for t in (workers - telemetry) | {stop}:
                t.cancel()
            _, stuck = await asyncio.wait((workers - telemetry) | {stop}, timeout=DRAIN_WORKERS_S)
            if stuck:  # never let one worker keep the pulls from being interrupted
                log.error("workers %s did not stop within %.0fs; interrupting pulls anyway",
                          sorted(t.get_name() for t in stuck), DRAIN_WORKERS_S)
            for slot in list(self.sessions):
                await self._undock(slot)
            await self._seal_and_forward_custody()
            if self.mqtt is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_TELEMETRY_S):
                        await self.mqtt.flush()
            for t in telemetry:
                t.cancel()
            if telemetry:
                await asyncio.wait(telemetry, timeout=DRAIN_TELEMETRY_S)
            snap = self.snapshot()
            snap["running"] = False
            write_status(self.cfg.run_dir, snap)
            self.archive.close()
            self.custody.close()
            self.catalog.close()
            self.lock.release()
        return code


def run(cfg: Config) -> int:
    keep_the_allocator_lean()  # before the threads start: the memory budget is what the process holds
    return asyncio.run(Daemon(cfg).run())
