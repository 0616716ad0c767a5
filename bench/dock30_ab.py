"""One dock of 30 clips at an empty station and at a year's history, alternated.

Both daemons run throughout, and the docks alternate empty, year, empty, ...
so a busy machine weighs on both sides alike (``--only history`` measures
the empty station's docks minutes before the year's). Issue 30's goal: the
year's dock takes no more than 5 % longer. Usage::

    PYTHONPATH=. python bench/dock30_ab.py ROUNDS [YEAR_CONFIG]

YEAR_CONFIG: a station bench/history.py built (default /work/hist250k's).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.yearbench import _dock30, _start_to_ready
from gateway.cli.simstation import write_station


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    year = Path(sys.argv[2] if len(sys.argv) > 2 else "/work/hist250k/station/dockgate.toml")
    work = Path(tempfile.mkdtemp(prefix="dockgate-d30-"))
    empty = write_station(work / "empty", slots=25, reserve_bytes=0)
    de, _ = _start_to_ready(empty, work / "empty.log")
    dy, _ = _start_to_ready(year, work / "year.log")
    try:
        es: list[float] = []
        ys: list[float] = []
        for i in range(n):
            es.append(_dock30(work / f"e{i}", empty, de, 1))
            ys.append(_dock30(work / f"y{i}", year, dy, 1))
            print(f"round {i}: empty {es[-1]:.3f} s, year {ys[-1]:.3f} s", flush=True)
        ratios = [y / e for e, y in zip(es, ys, strict=True)]
        print(f"best: empty {min(es):.3f} s, year {min(ys):.3f} s, ratio {min(ys) / min(es):.2f}x; "
              f"median of the rounds' ratios {statistics.median(ratios):.2f}x")
    finally:
        de.stop()
        dy.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
