CREATE TABLE paused (
    task  TEXT PRIMARY KEY,
    until TEXT
);
