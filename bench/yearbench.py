"""Measurements at a year's history (issue 30), each beside the same figure
on an empty station in the same run: daemon start to READY (with catch-up),
`status --json` and `events --since` against the CLI's own start
(`dockgate --help`), the review's typical searches (p50/p95), the
statistics page, the dispatch matcher for 300 dispatches, one dock of 30
clips (dock -> all archived, by the daemon's own event times), catalog and
custody size on disk, the daemon's RSS. ``bench/run.py --only history``
runs it; ``--history DIR`` measures a station ``bench/history.py`` built
before instead of building one.

The machine is shared: every time is the best of N (or, for the searches,
percentiles over N requests per query), and each pair is measured in the
same minutes."""

from __future__ import annotations

import http.cookiejar
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.history import QUICK, History, Size, build, load, officer_id
from bench.scale import vm
from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import DaemonProc, dockgate
from tests.servers import free_port
from tests.test_web_support import enable_web, wait_http

Row = Callable[..., None]
USER, PASSWORD = "bench", "a long bench password"


def _proc_s(argv: list[str], n: int) -> float:
    """Best of *n* wall times of a new process running *argv*, after one
    unmeasured run: as the installed package is (its postinst compiles every
    module), with bytecode, which PYTHONDONTWRITEBYTECODE in a developer's
    environment would otherwise have recompiled at every start; and with the
    user's config digest as a second call finds it (gateway/cli/digest.py)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, check=True, capture_output=True, env=env)
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        best = min(best, time.perf_counter() - t)
    return best


def _cli_s(*args: str, n: int) -> float:
    """Best of *n* wall times of `dockgate ARGS` (a new process each)."""
    return _proc_s([sys.executable, "-m", "gateway.cli.main", *args], n)


def _start_to_ready(config: Path, log: Path) -> tuple[DaemonProc, float]:
    """Start the daemon with a NOTIFY_SOCKET of our own: seconds to its READY=1."""
    path = Path(tempfile.mkdtemp(prefix="notify-")) / "sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(300)
    d = DaemonProc(config, log, env={"NOTIFY_SOCKET": str(path)})
    t = time.perf_counter()
    d.start()
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        return d, time.perf_counter() - t
    finally:
        sock.close()


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


class _Web:
    def __init__(self, url: str) -> None:
        self.url = url
        self.open = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())).open
        req = urllib.request.Request(url + "/login", urllib.parse.urlencode(
            {"user": USER, "password": PASSWORD, "next": "/review"}).encode(), headers={"Origin": url})
        self.open(req, timeout=60).read()

    def get_s(self, path: str) -> float:
        t = time.perf_counter()
        self.open(self.url + path, timeout=300).read()
        return time.perf_counter() - t

    def dispatch_s(self, csv: str) -> float:
        boundary = "----bench"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"d.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n").encode()
        req = urllib.request.Request(self.url + "/review/dispatch", body, headers={
            "Origin": self.url, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        t = time.perf_counter()
        self.open(req, timeout=600).read()
        return time.perf_counter() - t


def _queries(h: History | None) -> dict[str, str]:
    officer = officer_id(3)
    day = max(h.officer_days[officer]) if h else time.time() // 86400 * 86400
    iso = time.strftime("%Y-%m-%d", time.gmtime(day))
    case = h.cases[len(h.cases) // 2] if h and h.cases else "C-00000"
    return {"officer + day": f"/review?officer={officer}&from={iso}&to={iso}",
            "officer (every page 1)": f"/review?officer={officer}",
            "case": f"/review?case={case}",
            "category": "/review?category=theft",
            "important": "/review?important=yes",
            "free text on names": f"/review?text={officer}_{iso.replace('-', '')}",
            "no filter (newest)": "/review"}


def _dispatches(h: History | None, n: int = 300) -> str:
    """A day's 300 dispatches: officer, start, end, case (half with footage at a year)."""
    lines = ["officer,start,end,case"]
    day = (time.time() // 86400 - 2) * 86400
    for i in range(n):
        officer = officer_id(i % 60)
        start = (max(h.officer_days[officer]) if h and officer in h.officer_days else day) + 7 * 3600 + (i % 20) * 1800
        lines.append(f"{officer},{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start))},"
                     f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start + 1500))},D-{i:04d}")
    return "\n".join(lines) + "\n"


def measure(work: Path, config: Path, h: History | None, n: int) -> dict[str, Any]:
    cfg = load_config(config)
    out: dict[str, Any] = {}
    if "[web]" not in config.read_text():
        url = enable_web(config, free_port())
        subprocess.run([sys.executable, "-m", "gateway.cli.main", "web-user", "add", USER, "-c", str(config),
                        "--password-stdin"], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        config.with_suffix(".url").write_text(url)
    url = config.with_suffix(".url").read_text()
    starts = []
    for i in range(n):
        d, s = _start_to_ready(config, work / f"{config.parent.name}-{i}.log")
        starts.append(s)
        if i < n - 1:
            d.stop()
    out["start_to_ready_s"] = min(starts)
    try:
        out["rss_ready_kib"] = vm(d.proc.pid, "VmRSS") if d.proc else 0
        out["python_s"] = _proc_s([sys.executable, "-c", "pass"], n)
        out["help_s"] = _cli_s("--help", n=n)
        # what a script reads without starting Python (docs/operations.md, "From a script")
        out["status_file_s"] = _proc_s(["cat", str(cfg.run_dir / "status.json")], n)
        out["status_s"] = _cli_s("status", "-c", str(config), "--json", n=n)
        newest = dockgate("events", "-c", str(config), "--json", "--limit", "1").stdout
        high = int(json.loads(newest.splitlines()[0])["seq"]) if newest.strip() else 0
        out["events_s"] = _cli_s("events", "-c", str(config), "--json", "--since", str(max(0, high - 100)), n=n)
        wait_http(url + "/login")
        web = _Web(url)
        out["search"] = {}
        for name, path in _queries(h).items():
            times = sorted(web.get_s(path) for _ in range(max(5, n * 4)))
            out["search"][name] = (statistics.median(times), times[int(0.95 * (len(times) - 1))])
        out["stats_s"] = min(web.get_s("/review/stats") for _ in range(n))
        out["dispatch_s"] = min(web.dispatch_s(_dispatches(h)) for _ in range(n))
        out["dock30_s"] = _dock30(work, config, d, n)
        out["rss_hwm_kib"] = vm(d.proc.pid, "VmHWM") if d.proc else 0
    finally:
        d.stop()
    out.update(catalog_bytes=sum(p.stat().st_size for p in cfg.catalog_path.parent.glob(cfg.catalog_path.name + "*")),
               custody_bytes=_du(cfg.custody_dir), staging_bytes=_du(cfg.paths.staging))
    return out


def _dock30(work: Path, config: Path, d: DaemonProc, n: int) -> float:
    """One recorder of 30 clips of 64 KiB: dock -> all archived by the daemon's event times; best of *n*."""
    best = float("inf")
    for i in range(n):
        rec = work / f"R30-{config.parent.name}-{i}"
        seed = str(int(time.time() * 1000) % 2**31)  # new content every run: a station measured again has seen the last
        # a serial of its own too: a file of the same recorder, name, size and time is one the station already has
        # (names are by the second), and a station measured again has docked D30-0 before: it waited for 30 new
        dockgate("sim", "make", str(rec), "--clips", "30", "--size", str(64 * 1024), "--serial", f"D{seed:0>10}",
                 "--officer", f"09{i:05d}", "--seed", seed)
        before = d.status()["clips"]["archived"]
        os.sync()
        t = time.time()
        dockgate("sim", "attach", str(rec), "-c", str(config), "--slot", "1")
        d.wait_for(lambda s, b=before: s["clips"]["archived"] >= b + 30 and s["queue"]["clips"] == 0,
                   timeout=600, interval=0.5, what="30 archived")
        last = max(e["ts"] for e in _newest(config))
        best = min(best, last - t)
        dockgate("sim", "detach", "-c", str(config), "--slot", "1")
    return best


def _newest(config: Path) -> list[dict[str, Any]]:
    out = dockgate("events", "-c", str(config), "--json", "--limit", "200").stdout
    return [e for e in map(json.loads, out.splitlines()) if e["type"] == "clip_archived"]


def bench_history(work: Path, row: Row, quick: bool, rounds: int, prebuilt: Path | None = None) -> None:
    size = QUICK if quick else Size()
    h: History | None
    if prebuilt is not None:
        h = load(prebuilt)
        config, built_s = prebuilt, None
    else:
        t = time.monotonic()
        hist = build(work / "year", size)
        built_s = time.monotonic() - t
        config, h = hist.config, hist
    empty = write_station(work / "empty", slots=size.recorders, reserve_bytes=0)
    n = max(1, rounds)
    e = measure(work, empty, None, n)
    y = measure(work, config, h, n)
    clips = load_clips(config)
    what = f"history of {clips} clips" + (f" (built in {built_s:.0f} s)" if built_s else "")
    def pair(k: str, v_e: str, v_y: str, goal: str) -> None:
        return row(k, v_y, f"empty {v_e}; {what}", goal)
    pair("daemon start -> READY (incl. catch-up)", f"{e['start_to_ready_s']:.2f} s", f"{y['start_to_ready_s']:.2f} s",
         "< 3 s")
    pair("bare python start (python -c pass)", f"{e['python_s'] * 1000:.0f} ms", f"{y['python_s'] * 1000:.0f} ms",
         "")
    pair("dockgate --help (the CLI's own start)", f"{e['help_s'] * 1000:.0f} ms", f"{y['help_s'] * 1000:.0f} ms", "")
    pair("status --json", f"{e['status_s'] * 1000:.0f} ms", f"{y['status_s'] * 1000:.0f} ms", "<= --help + 50 ms")
    pair("events --since (last 100)", f"{e['events_s'] * 1000:.0f} ms", f"{y['events_s'] * 1000:.0f} ms",
         "<= --help + 50 ms")
    pair("the daemon's live status without Python (cat run/status.json)", f"{e['status_file_s'] * 1000:.1f} ms",
         f"{y['status_file_s'] * 1000:.1f} ms", "< 50 ms")
    for k in y["search"]:
        ep, yp = e["search"][k], y["search"][k]
        pair(f"search: {k}, p50 / p95", f"{ep[0] * 1000:.0f} / {ep[1] * 1000:.0f} ms",
             f"{yp[0] * 1000:.0f} / {yp[1] * 1000:.0f} ms", "p95 < 200 ms")
    pair("statistics page", f"{e['stats_s'] * 1000:.0f} ms", f"{y['stats_s'] * 1000:.0f} ms", "< 500 ms")
    pair("dispatch matcher, 300 dispatches", f"{e['dispatch_s']:.2f} s", f"{y['dispatch_s']:.2f} s", "< 2 s")
    pair("one dock of 30 clips x 64 KiB, dock -> archived", f"{e['dock30_s']:.2f} s", f"{y['dock30_s']:.2f} s "
         f"({y['dock30_s'] / e['dock30_s']:.2f}x)", "<= 1.05x")
    pair("catalog on disk", f"{e['catalog_bytes'] / 1e6:.1f} MB", f"{y['catalog_bytes'] / 1e6:.1f} MB "
         f"({y['catalog_bytes'] / max(clips, 1):.0f} B per clip)", "< 1 KiB per clip")
    pair("custody log on the station", f"{e['custody_bytes'] / 1e6:.1f} MB", f"{y['custody_bytes'] / 1e6:.1f} MB", "")
    pair("daemon RSS at READY / peak", f"{e['rss_ready_kib'] // 1024} / {e['rss_hwm_kib'] // 1024} MiB",
         f"{y['rss_ready_kib'] // 1024} / {y['rss_hwm_kib'] // 1024} MiB", "< 128 MiB")


def load_clips(config: Path) -> int:
    from gateway.catalog.reports import ClipQuery, Reports

    r = Reports(load_config(config).catalog_path)
    try:
        return r.search_count(ClipQuery())
    finally:
        r.close()
