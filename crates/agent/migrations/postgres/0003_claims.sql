CREATE TABLE claims (
    task       TEXT NOT NULL,
    slot_ts    BIGINT NOT NULL,
    seat       BIGINT NOT NULL,
    node       TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (task, slot_ts, seat)
);
