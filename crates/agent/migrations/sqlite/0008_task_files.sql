CREATE TABLE task_files (
    name       TEXT PRIMARY KEY,
    text       TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
