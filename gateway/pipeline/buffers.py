"""One memory budget for every slot's copy buffers.

Each pulling slot holds ``copyhash.BUFFERS`` buffers in flight between its
copy loop and its hashing thread. Sized per slot for a local disk (1 MiB
each), 25 slots docked at once held 100 MiB of buffers for links that give
35 MB/s each. Here the daemon's budget is shared: a slot's buffers are the
smaller of its fair share of the budget and what its measured rate needs
(about ``FILL_S`` of data per buffer, so four buffers hide a hashing stall
of that long), between 64 KiB and ``ingest.buffer_size``. A slot asks again
before each clip; sizes are powers of two, so they change only when the
rate or the number of slots really does.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from gateway.copyhash import BUFFERS

SMALLEST = 64 << 10
#: seconds of data one buffer holds at the slot's measured rate
FILL_S = 0.02


def _pow2_floor(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


class BufferBudget:
    def __init__(self, budget: int, largest: int) -> None:
        self.budget = budget
        self.largest = max(SMALLEST, largest)
        self._slots: set[int] = set()

    def join(self, slot: int) -> None:
        self._slots.add(slot)

    def leave(self, slot: int) -> None:
        self._slots.discard(slot)

    def size_for(self, rate_bps: float | None) -> int:
        """The buffer size for a slot pulling at *rate_bps* (None: not yet
        measured) while the slots that joined share the budget."""
        share = self.budget // (BUFFERS * max(1, len(self._slots)))
        want = self.largest if not rate_bps else int(rate_bps * FILL_S)
        return max(SMALLEST, min(self.largest, _pow2_floor(min(share, want))))


def keep_the_allocator_lean() -> None:
    """glibc's malloc, tuned so that the budget is what the process holds.

    By default every thread that allocates may get its own arena (up to
    eight per core) and the mmap threshold rises after each large free, so
    buffers freed as slots come and go stay in the heap: 25 slots peaked at
    194 MiB of RSS with 32 MiB of buffers in use. A fixed 128 KiB threshold
    (large buffers are mapped and unmapped, never kept) and two arenas bring
    that to the buffers plus the interpreter. Not glibc (musl): nothing to do.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold, m_arena_max = -3, -8
    mallopt(m_mmap_threshold, 128 << 10)
    mallopt(m_arena_max, 2)
