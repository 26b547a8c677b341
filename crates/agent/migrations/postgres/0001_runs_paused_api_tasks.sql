CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    task           TEXT NOT NULL,
    slot           TEXT NOT NULL,
    slot_ts        BIGINT NOT NULL,
    attempt        BIGINT NOT NULL,
    node           TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    duration_ms    BIGINT,
    exit_code      BIGINT,
    signal         BIGINT,
    cpu_ms         BIGINT,
    max_rss        BIGINT,
    outcome        TEXT NOT NULL,
    output         BYTEA NOT NULL DEFAULT ''::bytea,
    output_dropped BIGINT NOT NULL DEFAULT 0,
    reason         TEXT
);
CREATE INDEX runs_by_task_slot ON runs (task, slot_ts);
CREATE INDEX runs_by_slot ON runs (slot_ts);
CREATE TABLE paused (
    task  TEXT PRIMARY KEY,
    until TEXT
);
CREATE TABLE api_tasks (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
