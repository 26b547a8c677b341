-- Every list of runs reads an index in its own order (newest slot first, the id breaking
-- ties), whatever its filter: a task, an outcome, a time range, or none.
CREATE INDEX IF NOT EXISTS runs_by_task_slot_id ON runs (task, slot_ts, id);
CREATE INDEX IF NOT EXISTS runs_by_slot_id ON runs (slot_ts, id);
CREATE INDEX IF NOT EXISTS runs_by_outcome_slot_id ON runs (outcome, slot_ts, id);
DROP INDEX IF EXISTS runs_by_task_slot;
DROP INDEX IF EXISTS runs_by_slot;
