CREATE TABLE nodes (
    name       TEXT PRIMARY KEY,
    addresses  TEXT NOT NULL,
    tags       TEXT NOT NULL,
    version    TEXT NOT NULL,
    api        TEXT,
    started_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    stopped_at TEXT
);
