"""Every door, driven with generated and hostile input, against a running
daemon and a real mosquitto while recorders dock (issue 27).

A hypothesis state machine (``Doors``) takes steps through the doors a
station has: MQTT requests (assign, and the others), `dockgate assign`,
an assignment forced into the catalog past every door (as a corrupt or old
catalog holds it), and recorders docking with hostile data (clocks years
or millennia off, file times from 1938 to 2242, names no filesystem
encoding reads). After every step the daemon is alive; at the end of each
example every request was answered, every recorder docked was pulled, every
clip it held is in the archive (or set aside with an event), every
assignment was applied or set aside with one event, and nothing the daemon
applied breaks the rules the doors apply (gateway/values.py).

One daemon and one broker serve every example (a daemon start per example
would cost most of the budget): the examples share the station as shifts do.
Bounded and seeded for CI: ``derandomize`` (the same examples every run),
``MAX_EXAMPLES`` examples of at most ``STEPS`` steps, no shrinking (a
shrink replays examples against the live daemon: a finding is read from the
failing example, printed as the steps that made it).

The web door is driven too: a supervisor's dispatch CSV with hostile rows,
confirmations with hostile values, and an officer's marking on the station
screen (PIN, then hostile fields); every answer is a page or a refusal
(never a 5xx) and nothing refused reaches the catalog."""

from __future__ import annotations

import hashlib
import http.cookiejar
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from drivers.sim.make import make_recorder
from gateway.catalog import Catalog
from gateway.cli.main import main as cli
from gateway.cli.simstation import write_station
from gateway.config import Config, load_config
from gateway.values import ValueRefused, check_assignment
from tests.helpers import DaemonProc, wait_until
from tests.mqttclient import Recorder
from tests.servers import Mosquitto, free_port
from tests.test_web_support import enable_web, wait_http

pytestmark = pytest.mark.e2e

STATION = "sim-station-01"
BASE = f"dockgate/{STATION}"
SLOTS = 4
MAX_EXAMPLES = 25
STEPS = 20
#: how long a dock, an answer or the queue may take before the station counts as stuck
SETTLE_S = 60.0
OFFICERS = ("012345", "054321")
PIN = "135790"
SUPERVISOR, PASSWORD = "inspector", "correct horse battery"
NOW = time.time()

# -- hostile values ------------------------------------------------------------------------------
HOSTILE_TIMES: list[Any] = [
    "0001-01-01T00:00:00+08:00", "2100-01-01T00:00:00+08:00", "9999-12-31T23:59:59-23:59", "1999-12-31T23:59:59Z",
    "2024-02-30T00:00:00+08:00", "2024-03-01T08:00:00", "2024-03-01", "yesterday", "", -1e308, 1e308, 10**400,
    -(2**63), 0, 1.5e9, float("nan"), float("inf"), None, [], {}, True,
    "+275760-09-13T00:00:00Z", "2024-03-01T08:00:00+24:00", "\uff12\uff10\uff12\uff14-03-01T08:00:00+08:00",
]
HOSTILE_TEXTS: list[Any] = [
    "", " ", "\t", "A\nB", "\x1b[2J\x1b[H", "a\u202eb", "\u200b", "x" * 201, "案" * 10_000, "\ud800", "\x00",
    "Robert'); DROP TABLE assignments;--", "../../etc/passwd", "%s%n%x", 5, 1.5, None, [], {"a": 1}, True,
]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=8))).isoformat(timespec="seconds")


def sane_span() -> st.SearchStrategy[tuple[float, float]]:
    """A span a supervisor would give: within the last days, up to a shift long."""
    return st.tuples(st.floats(NOW - 5 * 86400, NOW - 600), st.floats(0, 12 * 3600)).map(
        lambda t: (t[0], t[0] + t[1]))


times = st.one_of(st.sampled_from(HOSTILE_TIMES), st.floats(allow_nan=True, allow_infinity=True),
                  st.integers(-(2**70), 2**70), st.text(max_size=40))
texts = st.one_of(st.sampled_from(HOSTILE_TEXTS), st.text(max_size=60), st.sampled_from(["A-2024-001", "违章停车"]))


#: payloads no parser expects: not JSON, not UTF-8, nested past any recursion limit, over the size limit
RAW_PAYLOADS = [b"{not json", b"\xff\xfe", b"[" * 8000 + b"]" * 8000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
                b'{"id": "' + b"x" * 20000 + b'"}', b"null", b'"id"', b"1e999", b'{"id": "r", "id": "s"}', b"",
                b'{"__proto__": {}}', b"NaN", b"\x00" * 100]


@st.composite
def assign_payloads(draw: st.DrawFn, rid: str) -> bytes:
    """An assign request: mostly well-formed, any field hostile; or bytes no parser expects."""
    kind = draw(st.sampled_from(["sane", "hostile", "hostile", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from(RAW_PAYLOADS) | st.binary(max_size=64))
    start, end = draw(sane_span())
    req: dict[str, Any] = {"id": rid, "officer": draw(st.sampled_from(OFFICERS)), "from": iso(start),
                           "to": iso(end), "case": f"C-{rid}"}
    if kind == "hostile":
        for key in draw(st.lists(st.sampled_from(["officer", "from", "to", "case", "proof", "category", "important",
                                                  "id", "extra"]), min_size=1, max_size=3, unique=True)):
            req[key] = draw(times if key in ("from", "to") else texts)
    return json.dumps(req, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def cli_args(draw: st.DrawFn) -> list[str]:
    start, end = draw(sane_span())
    args = {"--officer": draw(st.sampled_from(OFFICERS)), "--from": iso(start), "--to": iso(end),
            "--case": "CLI-" + draw(st.text("0123456789", min_size=1, max_size=6))}
    for flag in draw(st.lists(st.sampled_from([*args, "--proof", "--category"]), max_size=3, unique=True)):
        value = draw(st.one_of(st.sampled_from([v for v in HOSTILE_TIMES + HOSTILE_TEXTS if isinstance(v, str)]),
                               st.text(max_size=40)))
        args[flag] = value.replace("\x00", "")  # argv holds no NUL
    return [f"{k}={v}" for k, v in args.items()]


forced_rows = st.tuples(
    st.one_of(st.sampled_from(OFFICERS), st.sampled_from([t for t in HOSTILE_TEXTS if isinstance(t, str)
                                                          and t not in ("\ud800",)])),
    st.one_of(st.sampled_from([-1e308, -math.inf, -62135625600.0, 0.0, NOW - 3600]), st.floats(allow_nan=False)),
    st.one_of(st.sampled_from([1e308, math.inf, 4102416000.0, NOW + 40 * 86400, NOW]), st.floats(allow_nan=False)),
    st.one_of(st.none(), st.sampled_from([t for t in HOSTILE_TEXTS if isinstance(t, str) and t != "\ud800"])),
    st.booleans())

#: recorder clocks (seconds off true time): right, a reset to 2000 or 1970, millennia either way
CLOCK_OFFSETS = [0.0, 3600.0, -(NOW - 946684800), -NOW + 1, 2.4e11, -6.0e10]
#: file times a FAT volume, a reset clock or garbage gives (seconds)
FILE_TIMES = [0, 315532800, 4102444800, 2**33, -10**9, 1]
ODD_NAMES = [b"\xff\xfe.MP4", b"line\nbreak.MP4", b"\x1b[31mred.MP4", "长".encode() * 80 + b".MP4", b"empty.MP4"]


@st.composite
def recorders(draw: st.DrawFn) -> dict[str, Any]:
    protocol = draw(st.sampled_from(["ums", "ums", "bc-text"]))
    return {"protocol": protocol, "officer": draw(st.sampled_from(OFFICERS)), "clips": draw(st.integers(1, 3)),
            "offset": draw(st.sampled_from(CLOCK_OFFSETS)),
            "odd": draw(st.lists(st.tuples(st.sampled_from(ODD_NAMES), st.sampled_from(FILE_TIMES)),
                                 max_size=3, unique_by=lambda t: t[0])) if protocol == "ums" else []}


# -- the live station ----------------------------------------------------------------------------
class Live:
    """The station every example drives: daemon, broker, a subscriber to the
    responses, a catalog connection of the test's own (the forced door)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = Mosquitto(tmp / "broker")
        self.station = write_station(tmp / "st", slots=SLOTS, reserve_bytes=0, mqtt=f"127.0.0.1:{self.broker.port}")
        self.url = enable_web(self.station, free_port(), "login_attempts = 100\n")
        for args, secret in ((["web-user", "add", SUPERVISOR], PASSWORD), (["web-pin", "set", OFFICERS[0]], PIN)):
            flag = "--password-stdin" if args[0] == "web-user" else "--pin-stdin"
            subprocess.run([sys.executable, "-m", "gateway.cli.main", *args, "-c", str(self.station), flag],
                           input=secret + "\n", text=True, check=True, capture_output=True, timeout=60)
        self.cfg: Config = load_config(self.station)
        self.log = tmp / "daemon.log"
        self.daemon = DaemonProc(self.station, self.log).start()
        self.sub = Recorder(self.broker.port, f"{BASE}/response/#")
        self.sub.wait(self.sub.subscribed.is_set, what="subscribed")
        self.catalog = Catalog(self.cfg.catalog_path)
        wait_http(self.url + "/")
        self.web = WebClient(self.url)
        self.web.post("/login", {"user": SUPERVISOR, "password": PASSWORD, "next": "/review"})
        self.ids = itertools.count(1)
        #: slot -> (serial, the SHA-256s of what its recorder holds)
        self.docked: dict[int, tuple[str, set[str]]] = {}
        #: slot -> the officer whose recorder it holds
        self.officers: dict[int, str] = {}
        self.stats: dict[str, int] = {}
        #: every step taken, and the first check that failed: a replay against a live station that
        #: has moved on is not the run that failed (hypothesis then says "flaky"), so this is the report
        self.trail: list[str] = []
        self.failure: str | None = None
        self.log_seen = 0

    def count(self, what: str, detail: object = "") -> None:
        self.stats[what] = self.stats.get(what, 0) + 1
        self.trail.append(f"example {self.stats.get('examples', 0)}: {what} {repr(detail)[:200]}")

    def fail(self, why: str) -> None:
        self.failed(why)
        raise AssertionError(why)

    def failed(self, why: str) -> None:
        if self.failure is None:
            self.failure = f"example {self.stats.get('examples', 0)}: {why}"

    def new_log(self) -> str:
        """What the daemon logged since the last call."""
        with open(self.log, "rb") as f:
            f.seek(self.log_seen)
            data = f.read()
        self.log_seen += len(data)
        return data.decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    def events(self, type_: str) -> list[Any]:
        return self.catalog.events(0, 1_000_000, {type_})

    def close(self) -> None:
        self.sub.close()
        self.catalog.close()
        try:
            if self.alive():
                assert self.daemon.stop() == 0
        finally:
            self.broker.stop()


class WebClient:
    """A browser's requests, as plain HTTP: the station's own origin, a cookie jar."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                                  _NoRedirect())

    def post(self, path: str, fields: dict[str, Any] | list[tuple[str, str]],
             files: dict[str, bytes] | None = None) -> tuple[int, str]:
        if files:
            boundary = "dockgate-property-boundary"
            parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{k}.csv\"\r\n"
                     f"Content-Type: text/csv\r\n\r\n".encode() + v + b"\r\n" for k, v in files.items()]
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            ctype = f"multipart/form-data; boundary={boundary}"
        else:
            body = urllib.parse.urlencode(fields).encode()
            ctype = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"Origin": self.url, "Content-Type": ctype})
        try:
            with self.opener.open(req, timeout=SETTLE_S) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None


def csv_field(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, float) else repr(value)
    return '"' + text.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    station = Live(tmp_path_factory.mktemp("doors"))
    try:
        yield station
    finally:
        station.close()


class Doors(RuleBasedStateMachine):
    live: ClassVar[Live]

    def __init__(self) -> None:
        super().__init__()
        self.asked: dict[str, str] = {}  # request id -> command, answers expected
        self.paused = False

    @initialize()
    def fresh_example(self) -> None:
        """Each example; the first also sends the corpus of known poison
        pills, each through every door it fits (generated input then varies
        around them)."""
        self.live.count("examples")
        if self.live.stats["examples"] == 1:
            self._corpus()

    def _corpus(self) -> None:
        live = self.live
        for raw in RAW_PAYLOADS:
            live.sub.publish(f"{BASE}/request/assign", raw)
            live.sub.publish(f"{BASE}/request/status", raw)
        start, end = NOW - 7200, NOW - 3600
        base = {"officer": OFFICERS[0], "from": iso(start), "to": iso(end), "case": "CORPUS"}
        variants = [{"from": t} for t in HOSTILE_TIMES] + [{"to": t} for t in HOSTILE_TIMES]
        variants += [{k: t} for k in ("officer", "case", "proof", "category", "important", "id") for t in HOSTILE_TEXTS]
        for v in variants:
            rid = f"c{next(live.ids)}"
            live.sub.publish(f"{BASE}/request/assign", json.dumps({"id": rid, **base, **v}).encode(
                "utf-8", "surrogatepass"))
            if "id" not in v:
                self.asked[rid] = "assign"
        for flag in ("--officer", "--from", "--to", "--case", "--proof", "--category"):
            for t in HOSTILE_TIMES + HOSTILE_TEXTS:
                if isinstance(t, str) and "\x00" not in t:
                    self.cli_assign([f"--officer={OFFICERS[0]}", f"--from={iso(start)}", f"--to={iso(end)}",
                                     "--case=CORPUS", f"{flag}={t}"])
        for officer in (OFFICERS[0], "", "\x1b[2J", "x" * 5000):
            for a, b in ((-1e308, 1e308), (-math.inf, math.inf), (-62135625600.0, 4102416000.0), (end, start),
                         (start, start + 40 * 86400), (start, end)):
                for case in ("CORPUS", None, "A\nB", "x" * 10_000):
                    live.catalog.add_assignment(officer, a, b, case, None, None, None)
                    live.count("forced assignment")

    # -- the MQTT door ---------------------------------------------------------------------------
    @rule(data=st.data())
    def mqtt_assign(self, data: st.DataObject) -> None:
        rid = f"a{next(self.live.ids)}"
        payload = data.draw(assign_payloads(rid))
        self.live.sub.publish(f"{BASE}/request/assign", payload)
        if rid.encode() in payload[:100]:
            self.asked[rid] = "assign"
        self.live.count("mqtt assign", payload)

    @rule(cmd=st.sampled_from(["rescan", "pause", "resume", "status", "explode", "assign/x", "a" * 300]),
          body=st.one_of(st.sampled_from([{}, {"slot": 0}, {"slot": 1}, {"slot": SLOTS + 1}, {"slot": 10**30},
                                          {"slot": "1"}, {"slot": 1.5}, {"slot": None}, {"x": 1}]),
                         st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)))
    def mqtt_other(self, cmd: str, body: dict[str, Any]) -> None:
        rid = f"o{next(self.live.ids)}"
        self.live.sub.publish(f"{BASE}/request/{cmd}", json.dumps({"id": rid, **body}).encode())
        if "/" not in cmd:
            self.asked[rid] = cmd[:40]
        if cmd == "pause" and set(body) <= {"id"}:
            self.paused = True
        elif cmd == "resume" and set(body) <= {"id"}:
            self.paused = False
        self.live.count("mqtt other", (cmd, body))

    # -- the command line door -------------------------------------------------------------------
    @rule(args=cli_args())
    def cli_assign(self, args: list[str]) -> None:
        code = cli(["assign", "-c", str(self.live.station), *args])
        self.live.count(f"cli assign exit {code}", args)
        if code not in (0, 1):
            self.live.fail(f"dockgate assign {args} -> {code}")

    # -- past every door: what a corrupt or old catalog holds ------------------------------------
    @rule(row=forced_rows)
    def forced_assignment(self, row: tuple[str, float, float, str | None, bool]) -> None:
        officer, start, end, case, important = row
        self.live.catalog.add_assignment(officer, start, end, case, None, None, important)
        self.live.count("forced assignment", row)

    # -- a recorder's files and replies ----------------------------------------------------------
    @rule(rec=recorders(), slot=st.integers(1, SLOTS))
    def dock(self, rec: dict[str, Any], slot: int) -> None:
        live = self.live
        n = next(live.ids)
        serial = f"PROP{n:04d}"
        folder = live.tmp / "recorders" / serial
        make_recorder(folder, clips=rec["clips"], size=2048 + n, serial=serial, officer=rec["officer"],
                      protocol=rec["protocol"], clock_offset_s=rec["offset"], seed=n)
        storage = folder / "storage" / "DCIM"
        for name, mtime in rec["odd"]:
            p = Path(os.fsdecode(bytes(storage) + b"/" + name))
            p.write_bytes(b"" if name == b"empty.MP4" else os.urandom(1000 + n))
            os.utime(p, ns=(mtime * 10**9, mtime * 10**9))
        held = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (folder / "storage").rglob("*") if p.is_file()}
        self._free(slot)
        assert cli(["sim", "attach", str(folder), "-c", str(live.station), f"--slot={slot}"]) == 0
        live.docked[slot] = (serial, held)
        live.officers[slot] = rec["officer"]
        live.count(f"dock {rec['protocol']}", {**rec, "serial": serial, "slot": slot})

    # -- the web door --------------------------------------------------------------------------
    def _web_answer(self, what: str, status: int, page: str) -> None:
        self.live.count(f"web {what} {status}")
        if status >= 500:
            self.live.fail(f"web {what}: {status}\n{page[:2000]}")

    @rule(rows=st.lists(st.tuples(st.one_of(st.sampled_from(OFFICERS), texts), times, times, texts),
                        min_size=1, max_size=6))
    def web_dispatch(self, rows: list[tuple[Any, Any, Any, Any]]) -> None:
        """A supervisor's dispatch CSV: any row may be hostile; refused rows
        are named on the page, the rest proposed."""
        text = "officer,start,end,case\n" + "".join(",".join(csv_field(v) for v in r) + "\n" for r in rows)
        status, page = self.live.web.post("/review/dispatch", {}, files={"csv": text.encode("utf-8", "replace")})
        self._web_answer("dispatch", status, page)

    @rule(take=st.one_of(sane_span().map(lambda t: (OFFICERS[0], t[0], t[1], "WEB-1")),
                         st.tuples(st.one_of(st.sampled_from(OFFICERS), texts), times, times, texts)))
    def web_confirm(self, take: tuple[Any, Any, Any, Any]) -> None:
        """A confirmation as a page sends it, or altered: refused (400), or an
        assignment like any other (checked with the rest at the end)."""
        try:
            value = json.dumps(list(take))
        except (ValueError, TypeError):
            value = repr(take)
        status, page = self.live.web.post("/review/dispatch/confirm", [("take", value)])
        self._web_answer("confirm", status, page)
        if status not in (200, 400):
            self.live.fail(f"web confirm {take!r}: {status}")

    @precondition(lambda self: any(o == OFFICERS[0] for o in self.live.officers.values()))
    @rule(data=st.data(), fields=st.tuples(texts, texts, texts))
    def web_mark(self, data: st.DataObject, fields: tuple[Any, Any, Any]) -> None:
        """The officer's PIN on the station screen, then hostile fields."""
        slot = data.draw(st.sampled_from(sorted(s for s, o in self.live.officers.items() if o == OFFICERS[0])))
        status, page = self.live.web.post(f"/station/slot/{slot}/mark", {"pin": PIN})
        self._web_answer("pin", status, page)
        token = re.search(r'name="token" value="([^"]+)"', page)
        if status != 200 or token is None:
            return
        clips = re.findall(r'name="clip" value="([0-9a-f]{64})"', page)
        form = [("token", token.group(1)), *[("clip", c) for c in clips[:2]]]
        form += [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in zip(("case", "proof", "category"), fields,
                                                                                strict=True)]
        status, page = self.live.web.post(f"/station/slot/{slot}/mark", form)
        self._web_answer("mark", status, page)

    @invariant()
    def the_daemon_runs(self) -> None:
        """Alive, and no worker crashed (a crash restarts the worker: the
        sixth in five minutes stops the daemon)."""
        new = self.live.new_log()
        if "crashed" in new:
            self.live.fail("a worker crashed:\n" + new[new.index("crashed") - 200:][:4000])
        if not self.live.alive():
            self.live.fail("the daemon exited:\n" + self.live.log.read_text(errors="replace")[-4000:])

    # -- what must hold once an example's steps are taken ----------------------------------------
    def _done(self, serial: str) -> bool:
        return any(e.data.get("serial") == serial for e in self.live.events("dock_done"))

    def _free(self, slot: int) -> None:
        """Undock what *slot* holds once its dock is done (never mid-pull: then
        its clips would wait for the next dock, as they should)."""
        if slot in self.live.docked:
            serial, _ = self.live.docked[slot]
            wait_until(lambda: self._done(serial) or not self.live.alive(), SETTLE_S, f"{serial} done")
            self.the_daemon_runs()
            assert cli(["sim", "detach", "-c", str(self.live.station), f"--slot={slot}"]) == 0
            self.live.officers.pop(slot, None)

    def teardown(self) -> None:
        try:
            self._settle()
        except AssertionError as e:
            self.live.failed(str(e))
            raise

    def _settle(self) -> None:
        live = self.live
        if live.failure is not None:
            return  # said once; the station is not what the next check expects
        if self.paused:
            live.sub.publish(f"{BASE}/request/resume", b'{"id": "resume-at-end"}')
        # every request with an id of ours is answered
        def answered() -> set[Any]:
            return {r.get("id") for r in live.sub.json_on("") if isinstance(r, dict)}

        wait_until(lambda: set(self.asked) <= answered() or not live.alive(), SETTLE_S, "every request answered")
        # every recorder is pulled and every clip it holds archived, or quarantined with its event
        for slot in list(live.docked):
            self._free(slot)
            serial, held = live.docked.pop(slot)

            def placed(held: set[str] = held) -> bool:
                clips = [live.catalog.clip(s) for s in held]
                return all(c is not None and c.state in ("archived", "quarantined") for c in clips) \
                    or not live.alive()

            wait_until(placed, SETTLE_S, f"{serial}'s clips archived")
            self.the_daemon_runs()
            quarantined = {s for s in held if (c := live.catalog.clip(s)) and c.state == "quarantined"}
            said = {e.data.get("sha256") for e in live.events("quarantined")}
            assert quarantined <= said, f"quarantined without an event: {quarantined - said}"
            live.stats["clips archived"] = live.stats.get("clips archived", 0) + len(held) - len(quarantined)
            live.stats["clips quarantined"] = live.stats.get("clips quarantined", 0) + len(quarantined)
        # every assignment is applied or set aside, with one event each; what was applied breaks no rule
        wait_until(lambda: not live.catalog.new_assignments() or not live.alive(), SETTLE_S, "assignments processed")
        self.the_daemon_runs()
        applied = [e.data["assignment"] for e in live.events("assigned")]
        aside = [e.data["assignment"] for e in live.events("assignment_set_aside")]
        assert len(applied) == len(set(applied)) and len(aside) == len(set(aside)) and not set(applied) & set(aside)
        for e in live.events("assigned"):  # the values the stamper applied, by the doors' rules then
            d = e.data
            try:
                check_assignment(d["officer"], datetime.fromisoformat(d["start"].replace("Z", "+00:00")),
                                 datetime.fromisoformat(d["end"].replace("Z", "+00:00")), d.get("case_number"),
                                 d.get("proof_object"), d.get("category"), True, now=e.ts)
            except ValueRefused as err:
                raise AssertionError(f"assignment {d['assignment']} was applied against the rules: {err}") from None
        live.stats["assignments applied"] = len(applied)
        live.stats["assignments set aside"] = len(aside)


def test_every_door_keeps_the_station_pulling_and_forwarding(live: Live) -> None:
    Doors.live = live
    started = time.monotonic()
    try:
        run_state_machine_as_test(Doors, settings=settings(
            max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, derandomize=True, database=None, deadline=None,
            phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck)))
    except BaseException:
        if live.failure is None:
            raise
        example = live.failure.split(":")[0]
        steps = "\n".join(t for t in live.trail if t.startswith(example + ":"))
        raise AssertionError(f"{live.failure}\n\nthe steps of {example}, in order:\n{steps}") from None
    took = time.monotonic() - started
    text = live.log.read_text(errors="replace")
    assert "crashed" not in text and "Traceback" not in text, text[-4000:]
    print(f"doors property: {took:.0f} s, {json.dumps(live.stats, sort_keys=True)}")
    assert live.stats.get("dock ums", 0) and live.stats.get("mqtt assign", 0) and live.stats.get("forced assignment")
