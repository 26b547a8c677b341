CREATE TABLE api_tasks (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
