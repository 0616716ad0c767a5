"""`dockgate status`: the catalog's counts plus the running daemon's slots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.catalog.reports import DockSummary, ReportError, Reports
from gateway.catalog.states import STATES
from gateway.cli.digest import Digest
from gateway.evidence.newest import newest_entry
from gateway.process.runfiles import daemon_running, read_status

if TYPE_CHECKING:
    from gateway.config import Config


class _Station(Protocol):  # a Digest or a whole gateway.config.Config
    @property
    def catalog_path(self) -> Path: ...

    @property
    def custody_dir(self) -> Path: ...


def _catalog_station(cfg: Digest, checkpoint: str | None = None) -> str | None:
    """Whose catalog and custody log the state folder holds (None: nobody's yet, or not readable).
    *checkpoint*: the newest the catalog recorded (``Reports.newest_checkpoint``), a hint where to look."""
    try:
        found = newest_entry(cfg.custody_dir, checkpoint) if cfg.custody_dir.is_dir() else None
    except OSError:
        return None
    return found[0] if found else None


def collect(given: Digest | Config) -> dict[str, Any]:
    """`status --json`: from what `status` reads of the config (gateway/cli/digest.py) or a whole one."""
    cfg = given if isinstance(given, Digest) else Digest.of(given)
    running = daemon_running(cfg.run_dir)
    live = read_status(cfg.run_dir) or {}
    counts = dict.fromkeys(STATES, 0)
    queue = {"clips": 0, "bytes": 0}
    sightings = 0
    docks: list[DockSummary] = []
    released = purged = 0
    checkpoint = None
    if cfg.catalog_path.exists():
        try:
            cat = Reports(cfg.catalog_path)
        except ReportError:
            cat = None
        if cat is not None:
            try:
                counts, sightings = cat.kept_counts()
                checkpoint = cat.newest_checkpoint()
                q = cat.queue()
                queue = {"clips": q[0], "bytes": q[1]}
                docks = cat.recent_docks()
                released, purged = cat.released_and_purged()
            except ReportError:
                pass  # catalog not created yet by a first start
            finally:
                cat.close()
    slots = live.get("slots", []) if running else []
    return {
        "station": cfg.station_id,
        # the service refuses to start while either says so (gateway/process/daemon.py)
        "station_placeholder": cfg.placeholder_id,
        "catalog_station": _catalog_station(cfg, checkpoint),
        "config_drop_ins": str(cfg.drop_in_dir),
        "daemon": {"running": running, "pid": live.get("pid") if running else None,
                   "version": live.get("version"), "updated_at": live.get("updated_at")},
        "clips": counts,
        "sightings": sightings,
        "released": released,
        "purged": purged,
        "queue": queue,
        "archive_up": live.get("archive_up") if running else None,
        "archive_refused": live.get("archive_refused") if running else None,
        "staging_free_bytes": live.get("staging_free_bytes"),
        "last_error": live.get("last_error"),
        "station_clock": live.get("station_clock") if running else None,
        "slots": slots,
        "recent_docks": docks,
    }


def read_events(cfg: _Station, since: int | None = 0, limit: int = 1000,
                types: set[str] | None = None) -> list[dict[str, Any]]:
    """Events after *since*, oldest first; with ``since=None`` the newest
    *limit*, newest first. *types*: only these."""
    if not cfg.catalog_path.exists():
        return []
    cat = Reports(cfg.catalog_path)
    try:
        rows = cat.newest(limit, types) if since is None else cat.events(since, limit, types)
        return [e.as_dict() for e in rows]
    except ReportError:
        return []
    finally:
        cat.close()


def pruned_since(cfg: _Station, since: int) -> str | None:
    """What ``events --since`` says when events after *since* were pruned
    from the catalog (``Catalog.prune_events``), else None."""
    if not cfg.catalog_path.exists():
        return None
    cat = Reports(cfg.catalog_path)
    try:
        p = cat.pruned()
    except ReportError:
        return None
    finally:
        cat.close()
    if p is None or since >= p["upto_seq"]:
        return None
    return (f"events up to #{p['upto_seq']} older than evidence.events_keep_days were removed from the catalog once "
            f"published and archived ({p['events']} in all): the record of each is its custody log entry (up to "
            f"#{p['custody_upto']}), in {cfg.custody_dir} while the station keeps it and in the archive's custody/ "
            f"folder; a clip's page shows its own entries")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def bar(done: int, total: int, width: int = 24) -> str:
    frac = 1.0 if total <= 0 else min(1.0, done / total)
    full = int(frac * width)
    return "[" + "#" * full + "." * (width - full) + f"] {frac * 100:5.1f}%"


def render(s: dict[str, Any]) -> str:
    d = s["daemon"]
    lines = [f"station {s['station']}: daemon "
             + (f"running (pid {d['pid']}, version {d['version']})" if d["running"] else "stopped")]
    if s.get("station_placeholder"):
        lines.append(f"NOT CONFIGURED: station.id is still the placeholder {s['station']!r}; the service does not "
                     f"start and nothing is stamped until it is set: [station] id = \"...\" in a file in "
                     f"{s['config_drop_ins']}/, then systemctl restart dockgate")
    elif s.get("catalog_station") not in (None, s["station"]):
        lines.append(f"STATION ID MISMATCH: the catalog and custody log are station {s['catalog_station']!r}'s, the "
                     f"config says {s['station']!r}: the service does not start with this config. Set station.id "
                     f"back to continue them, or move the state folder aside")
    c = s["clips"]
    lines.append("clips: " + ", ".join(f"{k} {v}" for k, v in c.items() if v or k == "archived")
                 + (f"; {s['sightings']} seen again" if s["sightings"] else ""))
    q = s["queue"]
    archive = {True: "up", False: "DOWN", None: "not contacted yet"}[s["archive_up"]]
    if s.get("archive_refused"):
        archive = "REFUSES this station, forwarding paused (fix the credentials or permissions; it resumes by itself)"
    held = "; uploads wait while the docks pull (the officer's wait first)" if s.get("uploads_held") else ""
    lines.append(f"queue: {q['clips']} clips, {_size(q['bytes'])} to forward{held}; archive {archive}")
    if s.get("last_error"):
        lines.append(f"last error: {s['last_error']}")
    clock = s.get("station_clock") or {}
    if clock.get("alarm"):
        lines.append(f"station clock NOT synchronised ({clock.get('reason')}): no recorder clock is set and "
                     "drift is unverified until it is")
    for slot in s["slots"]:
        if slot["state"] == "idle":
            continue
        head = f"slot {slot['slot']:>2} {slot['state']:<11} {slot.get('serial') or '':<14}"
        if slot["state"] in ("pulling", "waiting", "done"):
            head += (f" {bar(slot['bytes_done'], slot['bytes_total'])} "
                     f"{slot['clips_done']}/{slot['clips_total']} clips "
                     f"{_size(slot['bytes_done'])}/{_size(slot['bytes_total'])}")
            if slot.get("rate_bps"):
                head += f" {_size(slot['rate_bps'])}/s"
        if slot.get("message") and slot["state"] != "pulling":
            head += f"  {slot['message']}"
        lines.append(head)
    if d["running"] and all(x["state"] == "idle" for x in s["slots"]):
        lines.append("no recorder docked")
    return "\n".join(lines)
