"""`dockgate run` on a station whose clock's synchronisation state the test
sets: the kernel's answer (gateway/timesync.read_kernel) is replaced here, in
test code, never in the product.

``DOCKGATE_TEST_CLOCK=<file>``: each read says what the file says now:
``synchronised`` (maximum error 10 ms) or anything else (the state a clock
set by hand is in: maximum error 16 s, STA_UNSYNC, TIME_ERROR)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway import timesync


def _from_file(path: Path) -> timesync.SyncState:
    if path.read_text().strip() == "synchronised":
        return timesync.judge(0, 0x2001, 10_000)  # TIME_OK, STA_PLL | STA_NANO
    return timesync.judge(timesync.TIME_ERROR, timesync.STA_UNSYNC, timesync.MAXERROR_LIMIT_US)


if __name__ == "__main__":
    state_file = Path(os.environ["DOCKGATE_TEST_CLOCK"])
    timesync.read_kernel = lambda: _from_file(state_file)
    from gateway.cli.main import main

    sys.exit(main())
