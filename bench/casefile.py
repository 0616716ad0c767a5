"""Case scale (issue 30): case export of 200 and 2 000 clips and its PDF,
`verify --bag` against `bagit.py --validate`, and `verify` full, with the
verified-hash cache, and incremental since the witnessed checkpoint, against
`sha256sum -c` on the same media. Archives come from tests/casefixture.py
(signed manifests and a custody log through the project's own code, built
in seconds; small MP4s, or padded to a size where bytes matter). Each
measured command runs as its own process so its peak RSS (VmHWM) is its own
(the PDF's font subsets are made in a short-lived child, counted in its CPU
seconds)."""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.casefixture import build, grow, publish

Row = Callable[..., None]
_PY = sys.executable

#: run in a child: export (or only the PDF) and print seconds and this process's VmHWM
_EXPORT = r"""
import json, sys, time
from pathlib import Path
from gateway.archive.directory import DirectoryArchive
from gateway.casefile.source import Selection, collect
from gateway.evidence.signing import load_public
work, case, what = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
a = DirectoryArchive(work / "archive")
keys = [load_public(work / "station.pub.pem")]
t = time.monotonic()
if what == "pdf":
    from gateway.casefile.report import write_pdf
    ev = collect(a, Selection(case=case))
    paths = write_pdf(ev, work / f"report-{case}.pdf", keys=keys)
    n = len(ev.clips)
else:
    from gateway.casefile.bag import export_case
    done = export_case(a, Selection(case=case), work / f"bag-{case}", keys, reports=(what == "export"))
    assert done.check.ok, done.check.failures[:3]
    n, paths = len(done.evidence.clips), []
took = time.monotonic() - t
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"s": took, "clips": n, "hwm_kib": hwm, "volumes": len(paths)}))
"""


def _cpu() -> float:
    """CPU seconds of every process this one has waited for (and theirs): on a
    shared machine the wall clock says more about the neighbours."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _child(work: Path, case: str, what: str) -> dict[str, float]:
    c = _cpu()
    out = subprocess.run([_PY, "-c", _EXPORT, str(work), case, what], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    got: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    got["cpu"] = _cpu() - c
    return got


CPU: dict[str, float] = {}


def _timed(cmd: list[str]) -> float:
    """Wall seconds of *cmd*; its CPU seconds in ``CPU[cmd[-1]]``."""
    t, c = time.monotonic(), _cpu()
    subprocess.run(cmd, check=True, capture_output=True)
    CPU[cmd[-1]] = _cpu() - c
    return time.monotonic() - t


def bench_casefile(work: Path, row: Row, quick: bool) -> None:
    root = work / "casefile"
    small_case, big_case = (40, 200) if quick else (200, 2000)
    # the same 200-clip case in a small archive and in one 5x larger: the cost must not follow the archive
    for total in ((small_case * 2, small_case * 10) if quick else (small_case * 2, small_case * 25)):
        w = root / f"a{total}"
        t = time.monotonic()
        build(w, total, case="C-1", case_every=total // small_case, rotate_entries=1000)
        built = time.monotonic() - t
        r = _child(w, "C-1", "export")
        row(f"case export, {int(r['clips'])} clips of {total} (with PDF)", f"{r['s']:.1f} s",
            f"{r['cpu']:.1f} CPU-s; peak RSS {r['hwm_kib'] / 1024:.0f} MiB; "
            f"archive built in {built:.0f} s", "< 30 s")
    w = root / "big"
    build(w, big_case, case="C-2", case_every=1, rotate_entries=1000)
    r = _child(w, "C-2", "bag")
    row(f"case export, {int(r['clips'])} clips (bag and self-check, no PDF)", f"{r['s']:.1f} s",
        f"{r['cpu']:.1f} CPU-s; peak RSS {r['hwm_kib'] / 1024:.0f} MiB", "< 5 min, < 200 MiB")
    pdf_case = 100 if quick else 1000
    w = root / "pdf"
    build(w, pdf_case, case="C-3", case_every=1, rotate_entries=1000)
    r = _child(w, "C-3", "pdf")
    row(f"PDF report, {int(r['clips'])} clips", f"{r['s']:.1f} s",
        f"{r['cpu']:.1f} CPU-s; {int(r['volumes'])} volume(s); peak RSS {r['hwm_kib'] / 1024:.0f} MiB (the font "
        "subsets are made in a child)",
        "< 60 s")
    # verify --bag against bagit.py on the 200-clip bag
    bag = root / f"a{small_case * 2}" / "bag-C-1"
    bagit = str(Path(_PY).parent / "bagit.py")
    b_s = min(_timed([bagit, "--validate", str(bag)]) for _ in range(2))
    v_s = min(_timed([_PY, "-m", "gateway.cli.main", "verify", "--bag", str(bag)]) for _ in range(2))
    row(f"verify --bag, {small_case} clips", f"{v_s / b_s:.1f}x",
        f"{v_s:.1f} s ({CPU[str(bag)]:.1f} CPU-s); bagit.py --validate {b_s:.2f} s "
        "(verify --bag adds signatures, custody, containers read through)", "<= 2x")
    bench_verify_modes(root, row, 100 if quick else 1000, 1 << 20)


def bench_verify_modes(root: Path, row: Row, clips: int, size: int) -> None:
    """Full verify, full verify with the warm cache, and incremental since
    the newest witnessed checkpoint after a day's new clips (5 %), against
    `sha256sum -c` of the same media."""
    w = root / "verify"
    b = build(w, clips, case="C-1", case_every=10, rotate_entries=500, pad=size)
    folder = b.root / "custody" / "bench-01"
    newest = sorted(folder.glob("checkpoint-*.json"))[-1]
    witness = w / "witness"
    witness.mkdir()
    for p in (newest, folder / (newest.name + ".sig")):
        shutil.copy(p, witness / p.name)
    grow(b, max(1, clips // 20), case="C-1", case_every=10)
    publish(b)
    media = sorted(p for p in b.root.rglob("*.MP4"))
    sums = w / "SHA256SUMS"
    sums.write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p}\n" for p in media))
    base = [_PY, "-m", "gateway.cli.main", "verify", "--archive", str(b.root), "--pubkey", str(b.pub)]
    cache = w / "cache.json"
    subprocess.run(["cat", *map(str, media)], stdout=subprocess.DEVNULL, check=True)  # warm, as sha256sum gets it
    full = min(_timed(base) for _ in range(2))
    sha = min(_timed(["sha256sum", "--quiet", "-c", str(sums)]) for _ in range(2))
    _timed([*base, "--hash-cache", str(cache)])
    cached = min(_timed([*base, "--hash-cache", str(cache)]) for _ in range(2))
    since = [*base, "--checkpoint", str(witness / newest.name), "--since-witnessed"]
    inc = min(_timed(since) for _ in range(2))
    row(f"verify full, {len(media)} clips of {size >> 20} MiB", f"{sha / full:.2f}x",
        f"{full:.1f} s ({CPU[str(b.pub)]:.1f} CPU-s); sha256sum -c {sha:.1f} s ({CPU[str(sums)]:.1f} CPU-s)", "> 1x")
    row("verify full with the verified-hash cache (warm)", f"{cached:.1f} s",
        f"{CPU[str(cache)]:.1f} CPU-s; identity unchanged: no media read")
    row(f"verify --since-witnessed ({len(media) - clips} new clips)", f"{inc:.1f} s",
        f"{CPU['--since-witnessed']:.1f} CPU-s; {inc / full:.2f} of full verify", "< 30 s a day")
