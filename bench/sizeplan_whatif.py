"""What the catalog's remaining size steps would give (issue 30: < 1 KiB per clip at a year).

Applied in SQL to a COPY of a station's catalog (it is rewritten in place),
each step followed by VACUUM and SQLite's dbstat: the hashes as 32-byte
blobs, ``clip_entries`` as one B-tree keyed (item, seq), the trigram index
of the file's own name only. A measurement of the layout, not the product's
code: the catalog does none of this yet. Usage::

    cp STATE/catalog.sqlite /dev/shm/c.sqlite && python bench/sizeplan_whatif.py /dev/shm/c.sqlite
"""

from __future__ import annotations

import sqlite3
import sys
import time


def _blob(h: object) -> object:
    return bytes.fromhex(h) if isinstance(h, str) and len(h) == 64 else h


def _base(p: object) -> str:
    return (p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)).rsplit("/", 1)[-1]


def main() -> None:
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.create_function("h2b", 1, _blob, deterministic=True)
    db.create_function("base", 1, _base, deterministic=True)
    n = db.execute("SELECT count(*) FROM clips").fetchone()[0]

    def size(label: str) -> None:
        db.execute("VACUUM")
        total = db.execute("SELECT sum(pgsize) FROM dbstat").fetchone()[0]
        top = db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8").fetchall()
        print(f"{label}: {total / n:.0f} B per clip; " + ", ".join(f"{k} {v / n:.0f}" for k, v in top), flush=True)

    size("as it is")
    t = time.monotonic()
    db.executescript("BEGIN; UPDATE clips SET sha256 = h2b(sha256), manifest_sha256 = h2b(manifest_sha256); "
                     "UPDATE items SET sha256 = h2b(sha256); UPDATE amendments SET sha256 = h2b(sha256); COMMIT;")
    print(f"  (converted in {time.monotonic() - t:.1f} s)")
    size("hashes as 32-byte blobs")
    db.executescript("BEGIN; CREATE TABLE entries_by_item (item INTEGER NOT NULL, seq INTEGER NOT NULL, "
                     "PRIMARY KEY (item, seq)) WITHOUT ROWID; "
                     "INSERT INTO entries_by_item SELECT item, seq FROM clip_entries; DROP TABLE clip_entries; COMMIT;")
    size("+ clip_entries as one B-tree (item, seq)")
    db.executescript("BEGIN; DROP TABLE clip_names; "
                     "CREATE VIRTUAL TABLE clip_names USING fts5(name, tokenize='trigram', content=''); "
                     "INSERT INTO clip_names (rowid, name) SELECT i.id, base(i.path) FROM clips c "
                     "JOIN items i ON i.id = c.item_id; COMMIT;")
    size("+ names: the file's own name only")


if __name__ == "__main__":
    main()
