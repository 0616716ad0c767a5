"""One memory budget for every slot's copy buffers."""

from __future__ import annotations

from gateway.copyhash import BUFFERS
from gateway.pipeline.buffers import SMALLEST, BufferBudget

MiB = 1 << 20


def test_a_lone_fast_slot_gets_the_largest_buffers() -> None:
    b = BufferBudget(16 * MiB, MiB)
    b.join(1)
    assert b.size_for(None) == MiB and b.size_for(1.4e9) == MiB


def test_twenty_five_slots_fit_the_budget_four_do() -> None:
    b = BufferBudget(16 * MiB, MiB)
    for slot in range(1, 26):
        b.join(slot)
    assert 25 * BUFFERS * b.size_for(None) <= 16 * MiB
    assert b.size_for(None) >= SMALLEST


def test_a_usb2_link_gets_buffers_for_its_rate_not_for_a_disk() -> None:
    b = BufferBudget(16 * MiB, MiB)
    b.join(1)
    assert b.size_for(35e6) == 512 << 10  # 20 ms at 35 MB/s, a power of two
    assert b.size_for(1e6) == SMALLEST


def test_a_slot_that_leaves_gives_its_share_back() -> None:
    b = BufferBudget(8 * MiB, MiB)
    b.join(1)
    b.join(2)
    b.join(3)
    shared = b.size_for(None)
    b.leave(2)
    b.leave(3)
    assert b.size_for(None) > shared
