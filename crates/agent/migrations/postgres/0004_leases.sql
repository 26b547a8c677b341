CREATE TABLE leases (
    task       TEXT NOT NULL,
    seat       BIGINT NOT NULL,
    node       TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (task, seat)
);
