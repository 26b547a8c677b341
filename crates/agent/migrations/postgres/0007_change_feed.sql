-- Agents sharing this database LISTEN on `cronfleet_changes`: every change to the fleet's
-- definitions (the task file, API tasks, pauses) tells them, at commit, whoever made it.
CREATE FUNCTION cronfleet_notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cronfleet_changes', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER api_tasks_changed AFTER INSERT OR UPDATE OR DELETE ON api_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION cronfleet_notify_changes();
CREATE TRIGGER paused_changed AFTER INSERT OR UPDATE OR DELETE ON paused
    FOR EACH STATEMENT EXECUTE FUNCTION cronfleet_notify_changes();
CREATE TRIGGER task_files_changed AFTER INSERT OR UPDATE OR DELETE ON task_files
    FOR EACH STATEMENT EXECUTE FUNCTION cronfleet_notify_changes();
