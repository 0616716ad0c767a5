"""District verify: every station of one archive, each against its own key
and its own witnessed checkpoints, one process per core.

A district archive holds one folder (key prefix) per station, the prefix the
station's ``archive.prefix`` names and its S3 policy confines it to
(``<station_id>/`` by convention): ``<folder>/custody/<station>/`` marks a
station's archive. Each archive is verified by `Verifier` alone, with the keyring key of each station
whose custody it holds and the checkpoints the witness store keeps under
``<store>/<station>/``: one station's key can prove nothing about another.
When the root itself holds ``custody/``, the whole archive is one (a station,
or stations sharing one namespace, verified together) and folders are not
split off.

Beside what `Verifier` checks, per station:

* ``keyring-missing``: the archive holds a station the keyring has no key for;
* ``witness-none``: a witness store is given and kept nothing of the station;
* ``station-missing``: the witness kept checkpoints of a station the archive
  does not hold at all (a whole station's folder deleted);
* ``station-unknown``: a top-level folder (or file) no station's custody
  marks: a station whose whole custody record was deleted, or a stranger.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.evidence.keyring import Keyring


@dataclass
class StationResult:
    """What verifying one station's archive found."""

    #: the station ids whose custody the archive holds (one, in a district laid out by prefix)
    stations: list[str]
    #: its folder (key prefix) in the district archive, "" for the root
    prefix: str
    summary: str = ""
    clips: int = 0
    custody_entries: int = 0
    witnessed: int = 0
    #: (check, object, detail), objects named from the district archive's root
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def name(self) -> str:
        return ",".join(self.stations) or self.prefix.rstrip("/")

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["station"] = self.name
        out["ok"] = self.ok
        out["failures"] = [{"check": c, "object": o, "detail": d} for c, o, d in self.failures]
        return out


def station_archives(keys: Iterable[str]) -> tuple[dict[str, set[str]], list[str]]:
    """From one listing of the district archive: key prefix -> the stations
    whose custody it holds, and the top-level folders or files no station's
    custody accounts for. An archive whose root holds ``custody/`` is one
    archive (its stations verified together); else each folder is one."""
    keys = list(keys)
    root = {p[1] for k in keys if len(p := k.split("/")) >= 3 and p[0] == "custody"}
    if root:
        return {"": root}, []
    out: dict[str, set[str]] = defaultdict(set)
    tops = set()
    for k in keys:
        parts = k.split("/")
        tops.add(parts[0] + "/" if len(parts) > 1 else parts[0])
        if len(parts) >= 4 and parts[1] == "custody":
            out[parts[0] + "/"].add(parts[2])
    return dict(out), sorted(tops - set(out))


#: (prefix, stations) -> an Archive over that prefix; made in each worker process (picklable: a directory
#: path or S3 settings)
Opener = Callable[[str], Any]


@dataclass(frozen=True)
class DirectoryOpener:
    root: Path

    def __call__(self, prefix: str) -> Any:
        from gateway.archive.directory import DirectoryArchive

        return DirectoryArchive(self.root / prefix if prefix else self.root)


@dataclass(frozen=True)
class S3Opener:
    """S3 settings (the `S3ArchiveConfig` fields) and a scratch folder the
    caller removes."""

    settings: tuple[tuple[str, Any], ...]
    scratch: Path

    def __call__(self, prefix: str) -> Any:
        from gateway.archive.s3 import S3Archive
        from gateway.config import S3ArchiveConfig

        cfg = dict(self.settings)
        cfg["prefix"] = (cfg.get("prefix") or "") + prefix
        return S3Archive(S3ArchiveConfig.model_validate(cfg), self.scratch)


def verify_one(opener: Opener, prefix: str, stations: list[str], keyring_dir: Path, witness: Path | None,
               tsa_ca: str | None) -> StationResult:
    """One station's archive (run in a worker process)."""
    from gateway.evidence.verify import Verifier
    from gateway.evidence.witness import witnessed

    res = StationResult(sorted(stations), prefix)
    ring = Keyring(keyring_dir)
    keys = []
    for st in res.stations:
        pub = ring.key(st)
        if pub is None:
            res.failures.append(("keyring-missing", f"{prefix}custody/{st}", f"station {st} is not in the keyring "
                                                                             f"{keyring_dir}: it cannot be verified"))
        else:
            keys.append(pub)
    if res.failures:
        return res
    cps = []
    if witness is not None:
        for st in res.stations:
            got = witnessed(witness, st)
            if not got:
                res.failures.append(("witness-none", f"{prefix}custody/{st}", f"the witness kept no checkpoint of "
                                                                                 f"station {st}"))
            cps += got
    report = Verifier(opener(prefix), keys, cps, tsa_ca=tsa_ca).run()
    res.summary, res.clips = report.summary(), report.clips
    res.custody_entries, res.witnessed = report.custody_entries, report.witnessed
    res.failures += [(f.check, prefix + f.obj if not f.obj.startswith("witness ") else f.obj, f.detail)
                     for f in report.failures]
    return res


def verify_district(opener: Opener, keys: Iterable[str], keyring_dir: Path, witness: Path | None = None,
                    tsa_ca: str | None = None, jobs: int | None = None) -> list[StationResult]:
    """Every station archive under *keys* (the district archive's listing),
    in parallel; stations the witness holds that the archive lacks fail."""
    units, stray = station_archives(keys)
    results: list[StationResult] = []
    workers = max(1, min(jobs or os.cpu_count() or 1, len(units)))
    if units:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(verify_one, opener, prefix, sorted(sts), keyring_dir, witness, tsa_ca)
                       for prefix, sts in sorted(units.items())]
            results = [f.result() for f in futures]
    for top in stray:
        results.append(StationResult([], top, failures=[(
            "station-unknown", top, "objects no station's custody record accounts for (a station's custody "
                                    "deleted, or a folder that is no station's)")]))
    held = {st for sts in units.values() for st in sts}
    if witness is not None:
        for folder in sorted(p for p in witness.iterdir() if p.is_dir()):
            if folder.name not in held and any(folder.glob("checkpoint-*.json")):
                results.append(StationResult([folder.name], "", failures=[(
                    "station-missing", f"custody/{folder.name}", f"the witness kept checkpoints of station "
                                                                 f"{folder.name}; the archive holds none of it")]))
    return sorted(results, key=lambda r: r.name)
