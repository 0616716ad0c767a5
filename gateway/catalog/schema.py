"""The catalog's tables, and the migrations that take an older file to
the current schema (each one transaction, so a crash leaves no half-made
schema).

Why ~420 lines in one module: the migrations are one ordered list, appended
to and never edited (a catalog of any age reaches the current schema step by
step), each with the reason for its tables and indexes beside it; split by
era, the order would live in two places.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS docks (
    id INTEGER PRIMARY KEY,
    slot INTEGER NOT NULL,
    vid INTEGER, pid INTEGER, usb_serial TEXT, detect_source TEXT,
    profile TEXT, serial TEXT, model TEXT, officer TEXT, officer_name TEXT, unit TEXT,
    recorder_clock REAL, station_clock REAL, clock_drift_s REAL, clock_set INTEGER,
    docked_at REAL NOT NULL, undocked_at REAL, result TEXT
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    dock_id INTEGER REFERENCES docks(id),
    officer TEXT,
    sha256 TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    discovered_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (serial, path, size, mtime_ns)
);
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE INDEX IF NOT EXISTS items_sha ON items(sha256);
CREATE TABLE IF NOT EXISTS clips (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items(id),
    staged_path TEXT,
    archive_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    archived_at REAL
);
CREATE INDEX IF NOT EXISTS clips_state ON clips(state, next_try_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    slot INTEGER,
    data TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_unpublished ON events(published, seq);
"""
# each step takes the schema from version i to i + 1, in one transaction
MIGRATIONS = [
    SCHEMA,
    """
    ALTER TABLE clips ADD COLUMN manifest_path TEXT;
    ALTER TABLE clips ADD COLUMN manifest_sha256 TEXT;
    ALTER TABLE clips ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE clips ADD COLUMN capture_utc REAL;
    ALTER TABLE clips ADD COLUMN assignment_id INTEGER;
    CREATE TABLE assignments (
        id INTEGER PRIMARY KEY,
        officer TEXT NOT NULL,
        from_ts REAL NOT NULL,
        to_ts REAL NOT NULL,
        case_number TEXT, proof TEXT, category TEXT, important INTEGER,
        created_at REAL NOT NULL,
        processed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE amendments (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL REFERENCES clips(sha256),
        assignment_id INTEGER NOT NULL REFERENCES assignments(id),
        path TEXT NOT NULL,
        state TEXT NOT NULL,
        archive_key TEXT,
        created_at REAL NOT NULL,
        UNIQUE (sha256, assignment_id)
    );
    CREATE TABLE segments (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    """
    ALTER TABLE items ADD COLUMN released_at REAL;
    ALTER TABLE clips ADD COLUMN purged_at REAL;
    """,
    # the custody log's sequence number of each event it recorded: how far
    # the catalog has followed the custody log (a rolled-back catalog shows)
    """
    ALTER TABLE events ADD COLUMN custody_seq INTEGER;
    """,
    # the forwarding queue in its order without sorting it (20 000 queued clips: 7 ms a look, then 0.25 ms)
    """
    CREATE INDEX clips_queue ON clips(state, created_at);
    CREATE INDEX clips_assignment ON clips(assignment_id);
    """,
    # why a clip was quarantined (states.REPULL_REASONS: the station's own copy failed, so a pull again
    # cures it). Clips quarantined before are given the reason their quarantined event recorded
    # (the forwarder wrote the archive error's reason; a missing or unreadable manifest had none)
    """
    ALTER TABLE clips ADD COLUMN quarantine_reason TEXT;
    CREATE TEMP TABLE old_quarantines AS
        SELECT seq, json_extract(data, '$.sha256') AS sha256, json_extract(data, '$.reason') AS reason,
               json_extract(data, '$.error') AS error
        FROM events WHERE type = 'quarantined';
    UPDATE clips SET quarantine_reason = (
        SELECT CASE WHEN q.reason IS NOT NULL THEN q.reason
                    WHEN q.error LIKE 'manifest unreadable%' OR q.error = 'no staged copy or manifest'
                    THEN 'manifest_fault' END
        FROM old_quarantines q WHERE q.sha256 = clips.sha256 ORDER BY q.seq DESC LIMIT 1)
    WHERE state = 'quarantined';
    DROP TABLE old_quarantines;
    """,
    # retention follows the evidence graph (gateway/catalog/locks.py, gateway/evidence/retention.py): the
    # custody entries about each clip (which segment and checkpoint prove something about it), each
    # archived clip's lock date and case, each archived object's wanted and applied lock (a failed
    # extension stays pending here until the archive takes it), and legal holds, which belong to cases
    """
    CREATE TABLE clip_custody (sha256 TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (sha256, seq))
        WITHOUT ROWID;
    CREATE INDEX clip_custody_seq ON clip_custody(seq);
    INSERT OR IGNORE INTO clip_custody
        SELECT json_extract(data, '$.sha256'), custody_seq FROM events
        WHERE custody_seq IS NOT NULL AND json_extract(data, '$.sha256') IS NOT NULL;
    CREATE TABLE clip_locks (
        sha256 TEXT PRIMARY KEY,
        archive_key TEXT NOT NULL,
        extras TEXT NOT NULL DEFAULT '',
        until REAL NOT NULL,
        case_number TEXT
    );
    CREATE INDEX clip_locks_case ON clip_locks(case_number);
    CREATE TABLE locks (
        key TEXT PRIMARY KEY,
        wanted REAL,
        hold INTEGER NOT NULL DEFAULT 0,
        applied REAL,
        applied_hold INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try_at REAL NOT NULL DEFAULT 0,
        error TEXT,
        pending_since REAL
    );
    CREATE INDEX locks_pending ON locks(next_try_at)
        WHERE (wanted IS NOT NULL AND (applied IS NULL OR applied < wanted)) OR hold != applied_hold;
    CREATE INDEX segments_state ON segments(state);
    CREATE TABLE holds (
        case_number TEXT PRIMARY KEY,
        since REAL NOT NULL,
        released_at REAL,
        announced INTEGER NOT NULL DEFAULT 0
    );
    """,
    # the dock record holds the GA/T 947 IDCode the recorder reported (manufacturer
    # and model code) and the label of the volume it was paired with
    """
    ALTER TABLE docks ADD COLUMN idcode TEXT;
    ALTER TABLE docks ADD COLUMN volume_label TEXT;
    """,
    # issue 30: the review searches every filter in SQL, paged, each typical query walking an index (a
    # year's 250 000 clips). A clip carries what it is searched and counted by: its officer (its item's),
    # its category and importance (the newest assignment that says, else its manifest's: kept current by
    # ``stamped`` and ``add_amendment``), whether some assignment files it under a case, and its duration
    # (the statistics, without reading 250 000 manifests). Clips from before: officer, category, case and
    # importance from their assignments (a recorder's own mark is in their manifests only: not backfilled).
    # ``clip_names``: a trigram index of each clip's file name (its item's path), by the item's id (an
    # INTEGER PRIMARY KEY, which VACUUM keeps), contentless: the names stay in ``items``. ``events_custody``:
    # a clip's trail from its custody entries (``clip_custody``), not a scan of every event's JSON.
    # ``clips_stats``: the statistics' aggregate reads this index, not the clips' rows (half the time)
    """
    ALTER TABLE clips ADD COLUMN officer TEXT;
    ALTER TABLE clips ADD COLUMN category TEXT;
    ALTER TABLE clips ADD COLUMN important INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE clips ADD COLUMN cased INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE clips ADD COLUMN duration_s REAL;
    UPDATE clips SET officer = (SELECT i.officer FROM items i WHERE i.id = clips.item_id);
    CREATE TEMP TABLE said AS
        SELECT c.sha256, a.id, a.category, a.important, a.case_number FROM clips c JOIN assignments a
        ON a.id = c.assignment_id OR a.id IN (SELECT m.assignment_id FROM amendments m WHERE m.sha256 = c.sha256);
    UPDATE clips SET
        category = (SELECT s.category FROM said s WHERE s.sha256 = clips.sha256 AND s.category IS NOT NULL
                    ORDER BY s.id DESC LIMIT 1),
        important = coalesce((SELECT s.important FROM said s WHERE s.sha256 = clips.sha256
                              AND s.important IS NOT NULL ORDER BY s.id DESC LIMIT 1), 0),
        cased = EXISTS (SELECT 1 FROM said s WHERE s.sha256 = clips.sha256 AND s.case_number IS NOT NULL);
    DROP TABLE said;
    CREATE INDEX clips_officer_when ON clips(officer, coalesce(capture_utc, created_at));
    CREATE INDEX clips_when ON clips(coalesce(capture_utc, created_at));
    CREATE INDEX clips_category_when ON clips(category, coalesce(capture_utc, created_at)) WHERE category IS NOT NULL;
    CREATE INDEX clips_important_when ON clips(important, coalesce(capture_utc, created_at));
    CREATE INDEX assignments_case ON assignments(case_number) WHERE case_number IS NOT NULL;
    CREATE INDEX amendments_assignment ON amendments(assignment_id);
    CREATE INDEX docks_officer_name ON docks(officer_name) WHERE officer_name IS NOT NULL;
    CREATE INDEX events_custody ON events(custody_seq) WHERE custody_seq IS NOT NULL;
    CREATE INDEX clips_stats ON clips(officer, item_id, capture_utc, duration_s, cased);
    CREATE VIRTUAL TABLE clip_names USING fts5(name, tokenize='trigram', content='');
    INSERT INTO clip_names (rowid, name)
        SELECT i.id, CAST(i.path AS TEXT) FROM clips c JOIN items i ON i.id = c.item_id;
    """,
    # issue 30, the catalog's size (5 560 B per clip at a year, goal < 1 KiB). ``clip_entries``: which custody
    # entry is about which clip, one row per entry keyed by its custody sequence number (the table's rowid: the
    # range retention asks for is the table's own order) with the clip's item id (an INTEGER PRIMARY KEY, which
    # VACUUM keeps), not the hex hash twice over (``clip_custody`` and its ``seq`` index: 1 195 B per clip, now
    # about 170). An entry about content no clip row holds had no use (retention and the trail start from the
    # clip) and is not carried over. ``events_pruned``: the outbox forgets events once published, their custody
    # entries archived and older than ``evidence.events_keep_days`` (``Catalog.prune_events``); its one row
    # says up to which event and custody entry it pruned, so ``events --since`` can say where the rest is.
    # ``events_unpublished``: only the unpublished are indexed (a partial index: nearly empty, was 118 B a clip)
    """
    CREATE TABLE clip_entries (seq INTEGER PRIMARY KEY, item INTEGER NOT NULL);
    INSERT OR IGNORE INTO clip_entries (seq, item)
        SELECT k.seq, c.item_id FROM clip_custody k JOIN clips c ON c.sha256 = k.sha256 ORDER BY k.seq;
    CREATE INDEX clip_entries_item ON clip_entries(item);
    DROP TABLE clip_custody;
    CREATE TABLE events_pruned (
        id INTEGER PRIMARY KEY,
        upto_seq INTEGER NOT NULL,
        custody_upto INTEGER,
        events INTEGER NOT NULL,
        at REAL NOT NULL
    );
    DROP INDEX events_unpublished;
    CREATE INDEX events_unpublished ON events(seq) WHERE published = 0;
    """,
]


def _rollup_migration() -> str:
    """issue 30: the statistics from a rollup, not an aggregate over every clip (99 ms at 25 000 clips,
    linear). ``stats_rollup``: per officer (the clip's, '?' for none), dock (its item's, 0 for none) and
    UTC capture day (``STATS_NO_DAY`` for a clip not stamped yet): clips, recorded seconds, late docks
    (docked more than ``STATS_LATE_S`` after capture) and clips with a capture time no assignment files
    under a case. Triggers keep it in the transaction of every write that changes what a clip counts as
    (a clip staged or restored, stamped, amended; its item's dock; a row deleted), whichever call of the
    catalog makes it; a row whose clips reach 0 is deleted. Back-filled here from the clips. A dock's
    ``docked_at`` is written once, when it opens (``Catalog.open_dock``), and never changes.
    ``events_alarms``: the page's alarm counts read the (rare) alarms' index entries, not every event
    (137 ms at 203 000 events); its WHERE is ``reports.ALARMS`` as ``Reports.alarm_counts`` writes it."""
    def day(x: str) -> str:  # floor(x / 1 day): CAST truncates toward zero; the planner has no floor()
        return (f"coalesce(CAST({x} / 86400.0 AS INTEGER) - ({x} < CAST({x} / 86400.0 AS INTEGER) * 86400), "
                f"{STATS_NO_DAY})")

    def add(c: str, dock: str, sign: str, source: str) -> str:
        """Upsert clip *c*'s contribution (times *sign*) from *dock*, for each row of *source*."""
        return f"""
        INSERT INTO stats_rollup (officer, dock_id, day, clips, seconds, late_docks, uncased)
            SELECT coalesce({c}.officer, '?'), coalesce({dock}, 0), {day(f"{c}.capture_utc")}, {sign},
                   {sign} * coalesce({c}.duration_s, 0),
                   {sign} * coalesce((SELECT d.docked_at FROM docks d WHERE d.id = {dock}) - {c}.capture_utc
                                     > {STATS_LATE_S}, 0),
                   {sign} * ({c}.capture_utc IS NOT NULL AND NOT {c}.cased)
            {source}
            ON CONFLICT (officer, dock_id, day) DO UPDATE SET clips = clips + excluded.clips,
                seconds = seconds + excluded.seconds, late_docks = late_docks + excluded.late_docks,
                uncased = uncased + excluded.uncased;"""

    def drop_empty(c: str, dock: str, source: str) -> str:
        return f"""
        DELETE FROM stats_rollup WHERE clips = 0 AND (officer, dock_id, day) IN
            (SELECT coalesce({c}.officer, '?'), coalesce({dock}, 0), {day(f"{c}.capture_utc")} {source});"""

    item = "FROM items i WHERE i.id = {c}.item_id"
    # the clip whose item this is (by the item's content: clips has no index on item_id)
    items_clip = "FROM clips c WHERE c.sha256 IN (OLD.sha256, NEW.sha256) AND c.item_id = NEW.id"
    return f"""
    CREATE TABLE stats_rollup (
        officer TEXT NOT NULL, dock_id INTEGER NOT NULL, day INTEGER NOT NULL,
        clips INTEGER NOT NULL, seconds REAL NOT NULL, late_docks INTEGER NOT NULL, uncased INTEGER NOT NULL,
        PRIMARY KEY (officer, dock_id, day)
    ) WITHOUT ROWID;
    {add("c", "i.dock_id", "1", "FROM clips c JOIN items i ON i.id = c.item_id WHERE true")}
    DELETE FROM stats_rollup WHERE clips = 0;
    CREATE TRIGGER stats_clip_added AFTER INSERT ON clips BEGIN
        {add("NEW", "i.dock_id", "1", item.format(c="NEW"))}
    END;
    CREATE TRIGGER stats_clip_changed AFTER UPDATE OF officer, item_id, capture_utc, duration_s, cased ON clips
    WHEN OLD.officer IS NOT NEW.officer OR OLD.item_id IS NOT NEW.item_id OR OLD.capture_utc IS NOT NEW.capture_utc
         OR OLD.duration_s IS NOT NEW.duration_s OR OLD.cased IS NOT NEW.cased BEGIN
        {add("OLD", "i.dock_id", "-1", item.format(c="OLD"))}
        {drop_empty("OLD", "i.dock_id", item.format(c="OLD"))}
        {add("NEW", "i.dock_id", "1", item.format(c="NEW"))}
    END;
    CREATE TRIGGER stats_clip_deleted AFTER DELETE ON clips BEGIN
        {add("OLD", "i.dock_id", "-1", item.format(c="OLD"))}
        {drop_empty("OLD", "i.dock_id", item.format(c="OLD"))}
    END;
    CREATE INDEX events_alarms ON events(type)
        WHERE type IN ('foreign_device','login_failed','unrecognised_device','wrong_password');
    CREATE TRIGGER stats_item_docked AFTER UPDATE OF dock_id ON items WHEN OLD.dock_id IS NOT NEW.dock_id BEGIN
        {add("c", "OLD.dock_id", "-1", items_clip)}
        {drop_empty("c", "OLD.dock_id", items_clip)}
        {add("c", "NEW.dock_id", "1", items_clip)}
    END;
    """


#: ``stats_rollup``: a clip docked more than this after its capture is a late dock (the statistics' rule)
STATS_LATE_S = 24 * 3600
#: ``stats_rollup``'s day of a clip without a capture time (not stamped yet): before every real day
STATS_NO_DAY = -(2 ** 40)
MIGRATIONS.append(_rollup_migration())
# issue 30: ``status`` counts the station's released items and purged clips over its life; a count(*) of
# each read every row (185 ms at a year's 250 000 clips). ``station_totals`` keeps both, by triggers in the
# transaction of every write that sets or clears ``released_at`` / ``purged_at`` (or adds or removes a row).
MIGRATIONS.append("""
    CREATE TABLE station_totals (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO station_totals SELECT 'released', count(*) FROM items WHERE released_at IS NOT NULL;
    INSERT INTO station_totals SELECT 'purged', count(*) FROM clips WHERE purged_at IS NOT NULL;
    """ + "".join(f"""
    CREATE TRIGGER totals_{name}_ins AFTER INSERT ON {table} WHEN NEW.{column} IS NOT NULL BEGIN
        UPDATE station_totals SET n=n+1 WHERE name='{name}';
    END;
    CREATE TRIGGER totals_{name}_upd AFTER UPDATE OF {column} ON {table}
        WHEN (OLD.{column} IS NULL) != (NEW.{column} IS NULL) BEGIN
        UPDATE station_totals SET n=n+(CASE WHEN NEW.{column} IS NULL THEN -1 ELSE 1 END) WHERE name='{name}';
    END;
    CREATE TRIGGER totals_{name}_del AFTER DELETE ON {table} WHEN OLD.{column} IS NOT NULL BEGIN
        UPDATE station_totals SET n=n-1 WHERE name='{name}';
    END;
    """ for name, table, column in (("released", "items", "released_at"), ("purged", "clips", "purged_at"))))
# issue 30, the catalog's size (1 663 B a clip at a year, goal < 1 KiB): a clip's staged copy and manifest where
# staging names them by the clip's hash are stored as ``records.DERIVED`` (''), not 162 B of path a clip (NULL still
# means none); the catalog's reads expand it (``records.staged_sql``). ``compact_due``: the rows shrank in place, so
# the daemon's next start rewrites the file once (``store.compact_file``), which drops the table
MIGRATIONS.append("""
    UPDATE clips SET staged_path = '' WHERE staged_path = 'media/' || substr(sha256, 1, 2) || '/' || sha256;
    UPDATE clips SET manifest_path = '' WHERE manifest_path = 'manifests/' || sha256 || '.manifest.json';
    CREATE TABLE IF NOT EXISTS compact_due (since REAL);
    """)
#: the rows the queue's and state's indexes hold (a query that walks one says so in its WHERE, the planner's
#: rule for a partial index): nearly every clip is archived and every item pulled at a year, and none is looked up
#: by that state
CLIP_OPEN = "state != 'archived'"
ITEM_OPEN = "state != 'pulled'"
# issue 30, the catalog's size: the indexes hold only the rows their queries can want (partial indexes): the
# queue's and state's the clips not archived and the items not pulled, ``clips_assignment`` the clips an assignment
# was stamped with, ``clips_important_when`` the important ones (96 B a clip at a year). Each step can run twice
MIGRATIONS.append(f"""
    DROP INDEX IF EXISTS clips_state;
    CREATE INDEX clips_state ON clips(state, next_try_at) WHERE {CLIP_OPEN};
    DROP INDEX IF EXISTS clips_queue;
    CREATE INDEX clips_queue ON clips(state, created_at) WHERE {CLIP_OPEN};
    DROP INDEX IF EXISTS items_state;
    CREATE INDEX items_state ON items(state) WHERE {ITEM_OPEN};
    DROP INDEX IF EXISTS clips_assignment;
    CREATE INDEX clips_assignment ON clips(assignment_id) WHERE assignment_id IS NOT NULL;
    DROP INDEX IF EXISTS clips_important_when;
    CREATE INDEX clips_important_when ON clips(important, coalesce(capture_utc, created_at)) WHERE important = 1;
    """)
# issue 30, the catalog's size: an outbox event's id (a UUID) as its 16 bytes, not 36 of text (the row and its
# UNIQUE index; callers see the text: ``records.event_id``); ``stored_event_id`` is the catalog's own function
MIGRATIONS.append("""
    UPDATE events SET id = stored_event_id(id) WHERE typeof(id) = 'text' AND length(id) = 36;
    CREATE TABLE IF NOT EXISTS compact_due (since REAL);
    """)
# issue 30: ``status`` counts items and clips by state; a count(*) GROUP BY over an index read every clip
# (30 ms at a year's 250 000). ``state_counts`` keeps them, by triggers in the transaction of every write that
# adds a row, changes its state or removes it (a state's row stays at 0 once emptied). It can run twice
MIGRATIONS.append("""
    CREATE TABLE IF NOT EXISTS state_counts (tbl TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL,
                                             PRIMARY KEY (tbl, state)) WITHOUT ROWID;
    DELETE FROM state_counts;
    INSERT INTO state_counts SELECT 'items', state, count(*) FROM items GROUP BY state;
    INSERT INTO state_counts SELECT 'clips', state, count(*) FROM clips GROUP BY state;
    """ + "".join(f"""
    CREATE TRIGGER IF NOT EXISTS state_counts_{table}_ins AFTER INSERT ON {table} BEGIN
        INSERT INTO state_counts VALUES ('{table}', NEW.state, 1) ON CONFLICT DO UPDATE SET n=n+1;
    END;
    CREATE TRIGGER IF NOT EXISTS state_counts_{table}_upd AFTER UPDATE OF state ON {table}
        WHEN OLD.state IS NOT NEW.state BEGIN
        UPDATE state_counts SET n=n-1 WHERE tbl='{table}' AND state=OLD.state;
        INSERT INTO state_counts VALUES ('{table}', NEW.state, 1) ON CONFLICT DO UPDATE SET n=n+1;
    END;
    CREATE TRIGGER IF NOT EXISTS state_counts_{table}_del AFTER DELETE ON {table} BEGIN
        UPDATE state_counts SET n=n-1 WHERE tbl='{table}' AND state=OLD.state;
    END;
    """ for table in ("items", "clips")))
# issue 30, the catalog's size (1 364 B a clip at a year, goal < 1 KiB). Hashes as their 32 bytes
# (``records.stored_hash``, the catalog's own function here: SQLite 3.40 has no unhex()) in every row and index
# that holds one. ``clip_trail``: which custody entries are about which clip, one row per clip (its item's id, the
# rowid) with the entries' numbers packed (``records.packed_seqs``), not ``clip_entries``' table by number and index
# by item (12 B an entry twice, some 7 entries a clip): the trail and every lock ask by clip; the one question by
# range (``LockStore.clips_with_entries``) reads a custody file's entries from the outbox.
# ``items_sha`` and ``clips_stats`` go: nothing looks an item up by its content (items find their clip by its
# key), and the statistics read ``stats_rollup``. ``clip_names``: trigrams of the file's own name (``FILE_NAME``:
# what the review's text search matches), without per-row sizes (``columnsize=0``: nothing ranks), merged into one
# segment once filled (else every later insert pays FTS5's merging of the fill's many segments: 0.72 ms, not
# 0.17, a year's dock of 30 some 10 % slower). Each step can run twice
FILE_NAME = "substr({p}, length(rtrim({p}, replace({p}, '/', ''))) + 1)"
MIGRATIONS.append("""
    UPDATE clips SET sha256 = stored_hash(sha256), manifest_sha256 = stored_hash(manifest_sha256)
        WHERE typeof(sha256) = 'text' OR typeof(manifest_sha256) = 'text';
    UPDATE items SET sha256 = stored_hash(sha256) WHERE typeof(sha256) = 'text';
    UPDATE amendments SET sha256 = stored_hash(sha256) WHERE typeof(sha256) = 'text';
    UPDATE clip_locks SET sha256 = stored_hash(sha256) WHERE typeof(sha256) = 'text';
    CREATE TABLE IF NOT EXISTS clip_entries (seq INTEGER PRIMARY KEY, item INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS clip_trail (item INTEGER PRIMARY KEY, seqs BLOB NOT NULL);
    INSERT OR IGNORE INTO clip_trail (item, seqs) SELECT item, packed_seqs(seq) FROM clip_entries GROUP BY item;
    DROP TABLE clip_entries;
    DROP INDEX IF EXISTS items_sha;
    DROP INDEX IF EXISTS clips_stats;
    DROP TABLE IF EXISTS clip_names;
    CREATE VIRTUAL TABLE clip_names USING fts5(name, tokenize='trigram', content='', columnsize=0);
    INSERT INTO clip_names (rowid, name)
        SELECT i.id, """ + FILE_NAME.format(p="CAST(i.path AS TEXT)") + """
        FROM clips c JOIN items i ON i.id = c.item_id;
    INSERT INTO clip_names (clip_names) VALUES ('optimize');
    CREATE TABLE IF NOT EXISTS compact_due (since REAL);
    """)
# issue 30, retention's share of the catalog (Object Lock on: 915 -> 1 731 B a clip at a year). ``clip_locks``:
# one row per archived clip keyed by its item's id (the rowid, as ``clip_trail``; a clip's own rowid is not stable
# under VACUUM), its object suffixes by reference (``lock_extras``: one set per station configuration) and its
# archive key only where it is not the clip's own. ``locks``: a row per object only while the archive does not
# hold what is wanted, the object is held, or it is a custody file (``keep``: a file's date follows many clips);
# a clip's own object without a row is locked at least until its clip's ``until`` (``LockStore.want_locks``)
#: a lock row the archive does not yet hold as wanted (the partial index ``locks_pending`` is on this)
LOCK_PENDING = "((wanted IS NOT NULL AND (applied IS NULL OR applied < wanted)) OR hold != applied_hold)"
#: a lock row the archive holds as wanted, not held (``LockStore.want_locks`` drops it unless kept)
LOCK_SETTLED = f"NOT {LOCK_PENDING} AND hold = 0 AND applied_hold = 0"
MIGRATIONS.append("""
    CREATE TABLE IF NOT EXISTS lock_extras (id INTEGER PRIMARY KEY, suffixes TEXT NOT NULL UNIQUE);
    INSERT OR IGNORE INTO lock_extras (suffixes) SELECT DISTINCT extras FROM clip_locks WHERE extras != '';
    CREATE TABLE clip_locks_by_item (
        item INTEGER PRIMARY KEY,
        until REAL NOT NULL,
        case_number TEXT,
        extras INTEGER REFERENCES lock_extras(id),
        archive_key TEXT
    );
    INSERT OR REPLACE INTO clip_locks_by_item (item, until, case_number, extras, archive_key)
        SELECT c.item_id, l.until, l.case_number, x.id,
               NULLIF(l.archive_key, coalesce(c.archive_key, 'unstamped/' || lower(hex(c.sha256))))
        FROM clip_locks l JOIN clips c ON c.sha256 = l.sha256 LEFT JOIN lock_extras x ON x.suffixes = l.extras;
    DROP TABLE clip_locks;
    ALTER TABLE clip_locks_by_item RENAME TO clip_locks;
    CREATE INDEX clip_locks_case ON clip_locks(case_number) WHERE case_number IS NOT NULL;
    ALTER TABLE locks ADD COLUMN keep INTEGER NOT NULL DEFAULT 0;
    UPDATE locks SET keep = 1 WHERE key GLOB 'custody/*/*'
        AND substr(key, 9 + instr(substr(key, 9), '/')) IN (SELECT name FROM segments);
    DELETE FROM locks WHERE keep = 0 AND """ + LOCK_SETTLED + """;
    CREATE TABLE IF NOT EXISTS compact_due (since REAL);
    """)
# issue 30, what a station grows (not only what a migration leaves): the outbox's UUID ids keep no index of their
# own (nothing looks an event up by its id; each is a fresh UUID), an index whose random keys, inserted and pruned
# every day, kept its pages half empty (35 B a clip at a year, grown; 17 B compacted). ``catalog_compacted``: when
# the file was last rewritten (``compact_file``), so the housekeeper compacts it on a schedule (a new file: now)
MIGRATIONS.append("""
    ALTER TABLE events RENAME TO events_before;
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        slot INTEGER,
        data TEXT NOT NULL,
        published INTEGER NOT NULL DEFAULT 0,
        custody_seq INTEGER
    );
    INSERT INTO events (seq, id, ts, type, slot, data, published, custody_seq)
        SELECT seq, id, ts, type, slot, data, published, custody_seq FROM events_before ORDER BY seq;
    DROP TABLE events_before;
    CREATE INDEX events_custody ON events(custody_seq) WHERE custody_seq IS NOT NULL;
    CREATE INDEX events_unpublished ON events(seq) WHERE published = 0;
    CREATE INDEX events_alarms ON events(type)
        WHERE type IN ('foreign_device','login_failed','unrecognised_device','wrong_password');
    CREATE TABLE IF NOT EXISTS catalog_compacted (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL);
    INSERT OR IGNORE INTO catalog_compacted (id, at) VALUES (1, CAST(strftime('%s', 'now') AS REAL));
    """)
VERSION = len(MIGRATIONS)
