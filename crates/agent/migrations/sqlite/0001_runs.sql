CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    task           TEXT NOT NULL,
    slot           TEXT NOT NULL,
    slot_ts        INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    node           TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    duration_ms    INTEGER,
    exit_code      INTEGER,
    signal         INTEGER,
    cpu_ms         INTEGER,
    max_rss        INTEGER,
    outcome        TEXT NOT NULL,
    output         BLOB NOT NULL DEFAULT x'',
    output_dropped INTEGER NOT NULL DEFAULT 0,
    reason         TEXT
);
CREATE INDEX runs_by_task_slot ON runs (task, slot_ts);
CREATE INDEX runs_by_slot ON runs (slot_ts);
