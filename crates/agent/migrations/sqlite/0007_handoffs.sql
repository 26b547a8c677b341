CREATE TABLE handoffs (
    task       TEXT NOT NULL,
    slot_ts    BIGINT NOT NULL,
    attempt    BIGINT NOT NULL,
    from_node  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    taken_by   TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (task, slot_ts)
);
