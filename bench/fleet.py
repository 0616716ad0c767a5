"""A district on one machine (issue 31): N station daemons, each with a few
simulated recorders docking at shift end, forwarding into one S3 API server
(moto, a bucket with Object Lock, one prefix per station), publishing to one
mosquitto, watched by one witness with the district keyring.

    python bench/fleet.py [--stations 20] [--quick] [--throttle-s 120]

1. Steady: every recorder docks within the first ``--spread-s`` seconds (a
   shift change); measured: broker messages/s, archive requests/s and per
   clip (moto's request log), witness CPU-s per checkpoint kept, and per
   station dock -> archived -> witnessed latency p50/p95 (dock: when the
   recorder went in; archived: the station's ``clip_archived`` custody entry;
   witnessed: when the witness kept the first checkpoint covering that entry).
2. The archive stops answering for all stations for ``--throttle-s`` seconds
   (a proxy in front of moto accepts and relays nothing), while a second wave
   of recorders docks: queues grow; then it answers again: every station must
   drain, none may quarantine a clip.
3. Every daemon stops cleanly; `dockgate verify --keyring --witness` over the
   whole bucket must say OK for every station; after one clip of one station
   is deleted it must exit 1 naming that station and that clip.

Prints a table and writes it as JSON (``--out``). Per-station request
counts, CPU and memory come from /proc and the servers' own logs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt

from drivers.sim.dock import attach
from drivers.sim.make import make_recorder
from gateway.cli.simstation import write_station
from tests.helpers import scrape
from tests.servers import Mosquitto, MotoServer, Proxy, free_port

MiB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def ts_of(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Station:
    id: str
    dir: Path
    config: Path
    metrics: int
    proc: subprocess.Popen[bytes] | None = None
    #: recorder serial -> when it was docked (bench clock, time.time())
    docked: dict[str, float] = field(default_factory=dict)
    slots_used: int = 0
    max_queue: float = 0.0
    max_age: float = 0.0

    def m(self) -> dict[str, float]:
        return scrape(self.metrics)

    def archived(self, m: dict[str, float]) -> float:
        return m.get('dockgate_forward_clips_total{result="archived"}', 0.0)

    def quarantined(self, m: dict[str, float]) -> float:
        return m.get('dockgate_forward_clips_total{result="quarantined"}', 0.0)

    def custody(self) -> list[dict[str, Any]]:
        out = []
        for seg in sorted((self.dir / "state" / "custody").glob("custody-*.jsonl")):
            out += [json.loads(x) for x in seg.read_bytes().splitlines() if x.strip()]
        return out


def station_config(work: Path, sid: str, broker: int, endpoint: str, bucket: str, slots: int, rotate_s: float,
                   mport: int) -> Path:
    cfg = write_station(work / sid, station_id=sid, slots=slots, mqtt=f"127.0.0.1:{broker}", reserve_bytes=0,
                        custody_rotate_s=rotate_s)
    creds = work / sid / "secrets"
    for name, value in (("s3_access", "dockgate-test"), ("s3_secret", "dockgate-test-secret")):
        (creds / name).write_text(value)
        os.chmod(creds / name, 0o600)
    text = re.sub(r"\[archive\].*?(?=\n\[|\Z)", f'''[archive]
backend = "s3"
endpoint = "{endpoint}"
bucket = "{bucket}"
prefix = "{sid}/"
access_key_file = "{creds / 's3_access'}"
secret_key_file = "{creds / 's3_secret'}"
verify = "readback"
retention_mode = "GOVERNANCE"
retention_days = 1
connect_timeout_s = 5
read_timeout_s = 10

[forward]
retry_max_s = 30

[metrics]
enabled = true
listen = "127.0.0.1:{mport}"
''', cfg.read_text(), flags=re.S)
    cfg.write_text(text)
    return cfg


class Counter:
    """Every message on the broker under dockgate/#, with its arrival time."""

    def __init__(self, port: int) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,  # type: ignore[attr-defined]
                               client_id="fleet-bench-counter")
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("dockgate/#", qos=0)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on(self, c: Any, u: Any, msg: Any) -> None:
        with self.lock:
            self.times.append(time.time())

    def between(self, a: float, b: float) -> int:
        with self.lock:
            return sum(1 for t in self.times if a <= t < b)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def requests_in(log: Path) -> list[str]:
    """The HTTP methods of every request moto served, in order."""
    return re.findall(r'"(GET|PUT|POST|HEAD|DELETE) /', log.read_text(errors="replace"))


def wait(cond: Any, timeout: float, what: str, every: float = 1.0) -> float:
    t = time.time()
    while time.time() - t < timeout:
        if cond():
            return time.time() - t
        time.sleep(every)
    raise SystemExit(f"fleet: timed out after {timeout:.0f} s waiting for {what}")


def dock_wave(stations: list[Station], work: Path, wave: int, recorders: int, clips: int, size: int,
              spread_s: float, rng: random.Random) -> list[threading.Timer]:
    """Each station's recorders dock at random moments within *spread_s* (a shift change)."""
    timers = []
    for n, st in enumerate(stations):
        for r in range(recorders):
            serial = f"W{wave}S{n:02d}R{r:02d}"
            folder = work / "recorders" / st.id / serial
            make_recorder(folder, clips=clips, size=size, serial=serial, officer=f"{n:03d}{r:03d}",
                          seed=zlib.crc32(serial.encode()) & 0xFFFF)
            st.slots_used += 1
            slot = st.slots_used

            def go(st: Station = st, slot: int = slot, folder: Path = folder, serial: str = serial) -> None:
                st.docked[serial] = time.time()
                attach(st.dir / "dock", slot, folder)

            t = threading.Timer(rng.uniform(0, spread_s), go)
            t.start()
            timers.append(t)
    return timers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stations", type=int, default=20)
    ap.add_argument("--recorders", type=int, default=3, help="per station and wave")
    ap.add_argument("--clips", type=int, default=2, help="per recorder")
    ap.add_argument("--size", type=int, default=1, help="MiB per clip")
    ap.add_argument("--spread-s", type=float, default=60.0, help="docks of a wave spread over this long")
    ap.add_argument("--throttle-s", type=float, default=120.0, help="how long the archive answers nothing")
    ap.add_argument("--rotate-s", type=float, default=10.0, help="each station's evidence.custody_rotate_s")
    ap.add_argument("--quick", action="store_true", help="3 stations, 2 recorders, 30 s outage: a smoke test")
    ap.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    if a.quick:
        a.stations, a.recorders, a.spread_s, a.throttle_s = min(a.stations, 3), 2, 15.0, 30.0
    rng = random.Random(31)
    work = Path(tempfile.mkdtemp(prefix="dockgate-fleet-", dir="/work" if os.path.isdir("/work") else None))
    res: dict[str, Any] = {"stations": a.stations, "recorders_per_wave": a.recorders, "clips_per_recorder": a.clips,
                           "clip_mib": a.size, "throttle_s": a.throttle_s, "rotate_s": a.rotate_s,
                           "load_before": os.getloadavg()}
    print(f"fleet: {a.stations} stations x {a.recorders} recorders x {a.clips} clips of {a.size} MiB per wave, "
          f"2 waves; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; work {work}", flush=True)
    broker = Mosquitto(work / "broker")
    moto = MotoServer(work / "moto.log")
    proxy = Proxy(moto.port)
    bucket = moto.make_bucket()
    counter = Counter(broker.port)
    keyring, store = work / "keyring", work / "witness"
    keyring.mkdir()
    stations: list[Station] = []
    witness: subprocess.Popen[bytes] | None = None
    try:
        for n in range(a.stations):
            sid, mport = f"precinct-{n + 1:02d}", free_port()
            cfg = station_config(work, sid, broker.port, proxy.endpoint, bucket, 2 * a.recorders, a.rotate_s, mport)
            shutil.copy(work / sid / "secrets" / "station.pub.pem", keyring / f"{sid}.pub.pem")
            stations.append(Station(sid, work / sid, cfg, mport))
        wport = free_port()
        witness = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "witness", "--broker",
                                    f"127.0.0.1:{broker.port}", "--store", str(store), "--keyring", str(keyring),
                                    "--metrics", f"127.0.0.1:{wport}", "--silence-after", "3600"],
                                   stdout=subprocess.DEVNULL, stderr=open(work / "witness.log", "wb"))  # noqa: SIM115
        for st in stations:
            st.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "run", "-c", str(st.config)],
                                       stdout=subprocess.DEVNULL, stderr=open(st.dir / "daemon.log", "wb"),  # noqa: SIM115
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def all_up() -> bool:
            try:
                scrape(wport)
                for st in stations:
                    st.m()
            except OSError:
                return False
            return True

        res["start_s"] = wait(all_up, 300, "every daemon and the witness to serve metrics")
        print(f"  {a.stations} daemons and the witness up in {res['start_s']:.0f} s; RSS per daemon "
              f"{statistics.median(rss_mb(st.proc.pid) for st in stations if st.proc):.0f} MB", flush=True)
        per_wave = a.recorders * a.clips
        w_cpu0 = cpu_s(witness.pid)
        # -- 1. steady ---------------------------------------------------------------------------------------
        t1 = time.time()
        moto_log = work / "moto.log"
        req0 = len(requests_in(moto_log))
        for t in dock_wave(stations, work, 1, a.recorders, a.clips, a.size * MiB, a.spread_s, rng):
            t.join()

        def archived_all(n: int) -> bool:
            return all(st.archived(st.m()) >= n for st in stations)

        wait(lambda: archived_all(per_wave), 1800, "wave 1 archived", every=2.0)
        t1_end = time.time()
        req1 = requests_in(moto_log)[req0:]
        clips1 = a.stations * per_wave
        res["steady"] = {
            "seconds": t1_end - t1, "clips": clips1,
            "broker_msgs_per_s": counter.between(t1, t1_end) / (t1_end - t1),
            "archive_requests_per_s": len(req1) / (t1_end - t1), "archive_requests_per_clip": len(req1) / clips1,
            "requests_by_method": {m: req1.count(m) for m in sorted(set(req1))}}
        print(f"  wave 1: {clips1} clips archived in {t1_end - t1:.0f} s; broker "
              f"{res['steady']['broker_msgs_per_s']:.1f} msg/s; archive {res['steady']['archive_requests_per_s']:.1f} "
              f"req/s, {res['steady']['archive_requests_per_clip']:.1f} req/clip", flush=True)
        # -- 2. the archive stops answering for all ------------------------------------------------------------
        proxy.hold()
        t2 = time.time()
        timers = dock_wave(stations, work, 2, a.recorders, a.clips, a.size * MiB, min(a.spread_s, a.throttle_s / 2),
                           rng)
        while time.time() - t2 < a.throttle_s:
            for st in stations:
                m = st.m()
                st.max_queue = max(st.max_queue, m.get("dockgate_queue_clips", 0.0))
                st.max_age = max(st.max_age, m.get("dockgate_queue_oldest_age_seconds", 0.0))
            time.sleep(5)
        for t in timers:
            t.join()
        proxy.up()
        drain = wait(lambda: archived_all(2 * per_wave) and all(st.m().get("dockgate_queue_clips", 1) == 0
                                                                  for st in stations), 1800, "every queue drained")
        quarantined = sum(st.quarantined(st.m()) for st in stations)
        res["outage"] = {"seconds": a.throttle_s, "drain_s": drain, "quarantined": quarantined,
                         "max_queue_clips": max(st.max_queue for st in stations),
                         "max_oldest_age_s": max(st.max_age for st in stations),
                         "archive_down_errors": sum(st.m().get('dockgate_errors_total{reason="archive_down"}', 0)
                                                    for st in stations)}
        print(f"  outage {a.throttle_s:.0f} s: queues up to {res['outage']['max_queue_clips']:.0f} clips "
              f"(oldest {res['outage']['max_oldest_age_s']:.0f} s); drained {drain:.0f} s after; "
              f"quarantined {quarantined:.0f}", flush=True)
        # -- 3. clean stop, witness, latency --------------------------------------------------------------------
        for st in stations:
            assert st.proc is not None
            st.proc.send_signal(signal.SIGTERM)
        for st in stations:
            assert st.proc is not None
            if st.proc.wait(300) != 0:
                raise SystemExit(f"fleet: {st.id} exited {st.proc.returncode}; see {st.dir / 'daemon.log'}")
        # the newest checkpoint each station made (what its clean stop sealed and published)
        last = {st.id: max(int(p.name.rsplit("-", 1)[1].split(".")[0])
                           for p in (st.dir / "state" / "custody").glob("checkpoint-*.json")) for st in stations}

        def witnessed_all() -> bool:
            m = scrape(wport)
            return all(m.get(f'dockgate_witness_entries_covered{{station="{s}"}}', 0) >= n for s, n in last.items())

        wait(witnessed_all, 120, "the witness to keep every station's last checkpoint")
        w_cpu = cpu_s(witness.pid) - w_cpu0
        kept = len(list(store.glob("*/checkpoint-*.json")))
        wm = scrape(wport)
        refused = sum(v for k, v in wm.items() if k.startswith("dockgate_witness_refusals_total"))
        res["witness"] = {"cpu_s": w_cpu, "checkpoints": kept, "cpu_s_per_checkpoint": w_cpu / max(kept, 1),
                          "refused": refused, "rss_mb": rss_mb(witness.pid)}
        res["broker_msgs_per_s_overall"] = counter.between(t1, time.time()) / (time.time() - t1)
        allreq = requests_in(moto_log)[req0:]
        res["archive_requests_per_clip_overall"] = len(allreq) / (2 * clips1)
        lat: dict[str, dict[str, float]] = {}
        for st in stations:
            cps = sorted((json.loads(p.read_bytes())["seq"], p.stat().st_mtime)
                         for p in (store / st.id).glob("checkpoint-*.json"))
            arch, wit = [], []
            for e in st.custody():
                if e["event"] != "clip_archived":
                    continue
                serial = str(e["data"]["key"]).split("/")[2]
                if not serial.startswith("W1"):
                    continue  # the steady wave: the outage's clips wait for the archive by design
                docked = st.docked[serial]
                arch.append(ts_of(e["ts"]) - docked)
                w = [t for seq, t in cps if seq >= e["seq"]]
                if w:
                    wit.append(min(w) - docked)
            lat[st.id] = {"archived_p50": pct(arch, 50), "archived_p95": pct(arch, 95),
                          "witnessed_p50": pct(wit, 50), "witnessed_p95": pct(wit, 95), "clips": len(arch)}
        res["latency"] = lat
        # -- 4. district verify --------------------------------------------------------------------------------
        creds = work / stations[0].id / "secrets"
        base = [sys.executable, "-m", "gateway.cli.main", "verify", "--s3-endpoint", moto.endpoint, "--bucket", bucket,
                "--access-key-file", str(creds / "s3_access"), "--secret-key-file", str(creds / "s3_secret"),
                "--keyring", str(keyring), "--witness", str(store), "--json"]
        t0 = time.time()
        v = subprocess.run(base, capture_output=True, text=True, timeout=1800, check=False)
        res["verify"] = {"exit": v.returncode, "seconds": time.time() - t0,
                         "stations_ok": sum(s["ok"] for s in json.loads(v.stdout)["stations"]) if v.stdout else 0}
        victim = stations[len(stations) // 2]
        c = moto.client()
        keys = [o["Key"] for o in c.list_objects_v2(Bucket=bucket, Prefix=victim.id + "/").get("Contents", [])
                if o["Key"].endswith(".MP4")]
        gone = sorted(keys)[0]
        c.delete_object(Bucket=bucket, Key=gone, BypassGovernanceRetention=True)
        v2 = subprocess.run([x for x in base if x != "--json"], capture_output=True, text=True, timeout=1800,
                            check=False)
        named = f"FAILED: {victim.id}: " in v2.stderr and gone in v2.stderr
        res["verify_after_delete"] = {"exit": v2.returncode, "station": victim.id, "clip": gone,
                                      "names_station_and_clip": named,
                                      "first_line": v2.stderr.splitlines()[0] if v2.stderr else ""}
        res["load_after"] = os.getloadavg()
        report(res)
        if a.out:
            a.out.write_text(json.dumps(res, indent=1) + "\n")
        ok = (res["verify"]["exit"] == 0 and v2.returncode == 1 and named and quarantined == 0 and refused == 0)
        print("fleet: " + ("every promise held" if ok else "SOMETHING FAILED (see above)"))
        if not ok:
            sys.exit(1)
    finally:
        for st in stations:
            if st.proc is not None and st.proc.poll() is None:
                st.proc.kill()
        if witness is not None:
            witness.terminate()
            witness.wait(10)
        counter.close()
        proxy.down()
        moto.stop()
        broker.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(res: dict[str, Any]) -> None:
    lat = res["latency"]
    print(f"\n  {'station':<14} {'clips':>5} {'archived p50':>13} {'p95':>6} {'witnessed p50':>14} {'p95':>6}")
    for sid, r in lat.items():
        print(f"  {sid:<14} {r['clips']:>5} {r['archived_p50']:>12.1f}s {r['archived_p95']:>5.1f}s "
              f"{r['witnessed_p50']:>13.1f}s {r['witnessed_p95']:>5.1f}s")
    med = {k: statistics.median(r[k] for r in lat.values()) for k in ("archived_p50", "archived_p95",
                                                                         "witnessed_p50", "witnessed_p95")}
    worst = {k: max(r[k] for r in lat.values()) for k in med}
    res["latency_summary"] = {"median_over_stations": med, "worst_station": worst}
    s, o, w, v, d = res["steady"], res["outage"], res["witness"], res["verify"], res["verify_after_delete"]
    print(f"""
  stations                         {res['stations']} (load average {res['load_before'][0]:.1f} before, \
{res['load_after'][0]:.1f} after, {os.cpu_count()} cores)
  wave 1: clips                    {s['clips']} in {s['seconds']:.0f} s
  broker messages/s                {s['broker_msgs_per_s']:.1f} (wave 1), {res['broker_msgs_per_s_overall']:.1f} overall
  archive requests/s, per clip     {s['archive_requests_per_s']:.1f}/s, {s['archive_requests_per_clip']:.1f} per clip \
(overall {res['archive_requests_per_clip_overall']:.1f}) {s['requests_by_method']}
  witness                          {w['cpu_s']:.2f} CPU-s for {w['checkpoints']} checkpoints = \
{w['cpu_s_per_checkpoint'] * 1000:.1f} ms each; {w['refused']:.0f} refused; RSS {w['rss_mb']:.0f} MB
  dock -> archived p50/p95         median station {med['archived_p50']:.1f}/{med['archived_p95']:.1f} s, \
worst {worst['archived_p50']:.1f}/{worst['archived_p95']:.1f} s
  dock -> witnessed p50/p95        median station {med['witnessed_p50']:.1f}/{med['witnessed_p95']:.1f} s, \
worst {worst['witnessed_p50']:.1f}/{worst['witnessed_p95']:.1f} s
  archive silent {o['seconds']:.0f} s            queues up to {o['max_queue_clips']:.0f} clips, oldest \
{o['max_oldest_age_s']:.0f} s; drained {o['drain_s']:.0f} s after; quarantined {o['quarantined']:.0f}
  district verify                  exit {v['exit']}, {v['stations_ok']} stations OK in {v['seconds']:.1f} s
  one clip of {d['station']} deleted   exit {d['exit']}, names station and clip: {d['names_station_and_clip']}
                                   {d['first_line'][:160]}""")


if __name__ == "__main__":
    main()
