"""Start-up at a year's history reads only what is new: a catch-up reads
the custody log from the segment that holds the catalog's last position,
never the segments before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.pipeline import recovery


def _segments(tmp: Path, n: int, per: int) -> None:
    for s in range(n):
        first = 1 + s * per
        lines = [json.dumps({"seq": first + k, "event": "pulled", "data": {}}) for k in range(per)]
        name = f"custody-st-{first:010d}" + (".open.jsonl" if s == n - 1 else ".jsonl")
        (tmp / name).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("seq", [0, 1, 250, 999, 1000, 1001, 1499])
def test_a_catch_up_reads_from_the_segment_holding_the_next_entry(tmp_path, monkeypatch, seq):
    _segments(tmp_path, 15, 100)
    read: list[str] = []
    original = Path.read_bytes

    def spy(self: Path) -> bytes:
        read.append(self.name)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    entries = recovery._entries_after(tmp_path, seq)
    assert [e["seq"] for e in entries] == list(range(seq + 1, 1501))
    first_read = min(int(n.split(".")[0].rsplit("-", 1)[-1]) for n in read)
    assert first_read == (seq // 100) * 100 + 1  # the segments before it are not read
