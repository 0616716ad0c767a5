"""The web as a tenant of the station (issue 27), measured against a running
sim station with the pages on:

1. a recorder's pull time alone, and while a supervisor uploads a 20 000-row
   dispatch CSV (the ratio; the goal: < 1.10), with the station screen
   fetched every 100 ms meanwhile (the slowest answer; the goal: < 1 s);
2. 200 station-screen streams asked for at once from 50 addresses: how many
   are served (the limits), and the daemon's CPU with them open, idle and
   during a pull, against the same without them (the goal: < 2 % of a core
   more).

    python bench/web_tenant.py [--clips 6 --size 32M --rate 40M]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.cli.common import parse_size
from gateway.cli.simstation import write_station
from tests.helpers import DaemonProc, attach, detach, dockgate, events, wait_until
from tests.servers import free_port
from tests.test_web_support import cpu_seconds, enable_web, wait_http

OFFICER = "0712345"


def csv_rows(n: int) -> bytes:
    lines = ["officer,start,end,case"]
    for i in range(n):
        day = 1 + i % 28
        lines.append(f"{100000 + i % 500},2024-03-{day:02d}T08:00:00+08:00,2024-03-{day:02d}T09:00:00+08:00,"
                     f"D-{i}")
    return ("\n".join(lines) + "\n").encode()


def pull_seconds(config: Path, dock_from: int) -> float:
    """From the recorder's `docked` event to its last `pulled` one."""
    docked = [e for e in events(config, "docked") if e["seq"] > dock_from][-1]
    pulled = [e for e in events(config, "pulled") if e["seq"] > docked["seq"]]
    return pulled[-1]["ts"] - docked["ts"]


def dock_and_pull(config: Path, rec: Path, clips: int) -> tuple[int, float]:
    seq = max([e["seq"] for e in events(config)], default=0)
    attach(config, rec, 1)
    wait_until(lambda: len([e for e in events(config, "pulled") if e["seq"] > seq])
               + len([e for e in events(config, "seen_again") if e["seq"] > seq]) >= clips,
               timeout=300, what="the pull")
    return seq, pull_seconds(config, seq)


async def login(url: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post(url + "/login", data={"user": "inspector", "password": "correct horse battery"},
                      headers={"Origin": url}, allow_redirects=False) as r:
        assert r.status == 302
    return s


async def upload_while_probing(url: str, body: bytes, pulling: asyncio.Event) -> dict[str, float]:
    s = await login(url)
    worst = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        async with aiohttp.ClientSession() as p:
            while not done.is_set():
                t0 = time.monotonic()
                async with p.get(url + "/") as r:
                    await r.read()
                worst = max(worst, time.monotonic() - t0)
                await asyncio.sleep(0.1)

    prober = asyncio.create_task(probe())
    t0 = time.monotonic()
    async with s:
        form = aiohttp.FormData()
        form.add_field("csv", body, filename="dispatch.csv", content_type="text/csv")
        async with s.post(url + "/review/dispatch", data=form, headers={"Origin": url}) as r:
            status = r.status
            await r.read()
    upload_s = time.monotonic() - t0
    done.set()
    await prober
    return {"upload_status": status, "upload_s": round(upload_s, 2), "worst_page_s": round(worst, 3)}


async def open_streams(url: str, n: int, addresses: int) -> tuple[list[Any], dict[int, int]]:
    held: list[Any] = []
    statuses: dict[int, int] = {}
    for i in range(n):
        s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.1.{1 + i % addresses}", 0)))
        r = await s.get(url + "/station/stream")
        statuses[r.status] = statuses.get(r.status, 0) + 1
        held.append((s, r))
    return held, statuses


async def close_streams(held: list[Any]) -> None:
    for s, r in held:
        r.close()
        await s.close()


def cpu_over(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--size", type=parse_size, default=parse_size("32M"))
    ap.add_argument("--rate", type=parse_size, default=parse_size("40M"))
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dockgate-web-bench-") as tmp_:
        tmp = Path(tmp_)
        config = write_station(tmp / "station", slots=2, reserve_bytes=0)
        url = enable_web(config, free_port())
        subprocess.run([sys.executable, "-m", "gateway.cli.main", "web-user", "add", "inspector", "-c", str(config),
                        "--password-stdin"], input="correct horse battery\n", text=True, check=True,
                       capture_output=True)
        recs = []
        for i in range(3):  # a fresh recorder per pull: the same content would be a sighting, not a pull
            rec = tmp / f"rec{i}"
            dockgate("sim", "make", str(rec), "--clips", str(args.clips), "--size", str(args.size), "--officer",
                     OFFICER, "--serial", f"ZF0090{i}", "--link-rate", str(args.rate), "--seed", str(i))
            recs.append(rec)
        d = DaemonProc(config, tmp / "daemon.log").start()
        try:
            wait_http(url + "/")
            _, alone = dock_and_pull(config, recs[0], args.clips)
            detach(config, 1)
            out["pull_alone_s"] = round(alone, 2)

            body = csv_rows(args.rows)
            seq = max(e["seq"] for e in events(config))
            attach(config, recs[1], 1)
            probe = asyncio.run(upload_while_probing(url, body, asyncio.Event()))
            wait_until(lambda: len([e for e in events(config, "pulled") if e["seq"] > seq]) >= args.clips,
                       timeout=300, what="the pull beside the upload")
            beside = pull_seconds(config, seq)
            detach(config, 1)
            out.update({"pull_beside_csv_s": round(beside, 2), "pull_ratio": round(beside / alone, 3),
                        "csv_rows": args.rows, **probe})

            assert d.proc is not None
            pid = d.proc.pid
            idle = cpu_over(pid, 5)

            async def with_streams() -> dict[str, Any]:
                held, statuses = await open_streams(url, 200, 50)
                try:
                    busy = await asyncio.to_thread(cpu_over, pid, 5)
                finally:
                    await close_streams(held)
                return {"streams_asked": 200, "stream_statuses": statuses, "cpu_idle_core": round(idle, 4),
                        "cpu_idle_with_streams_core": round(busy, 4)}

            out.update(asyncio.run(with_streams()))
        finally:
            d.stop()
    print(json.dumps(out, indent=1))
    ok = out["pull_ratio"] < 1.10 and out["worst_page_s"] < 1.0 \
        and out["cpu_idle_with_streams_core"] - out["cpu_idle_core"] < 0.02
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
