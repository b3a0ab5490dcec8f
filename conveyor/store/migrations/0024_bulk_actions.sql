-- Bulk actions: cancel or replay every run that matches filters, a chunk of runs per
-- transaction (conveyor/engine/bulk.py). `upto` bounds the runs an action sees to those made
-- at or before it was (a replay's runs are never replayed again); `cursor` is the last run id
-- handled, moved in the transaction of the chunk it ends, so an interrupted server resumes
-- there and no run is handled twice. An idempotency key is held by one action per environment.
CREATE TABLE bulk_actions (
    id              TEXT PRIMARY KEY,
    env_id          TEXT NOT NULL REFERENCES environments (id),
    kind            TEXT NOT NULL,              -- cancel | replay
    filters         TEXT NOT NULL,              -- JSON: statuses, task_id, tag, version, times
    status          TEXT NOT NULL,              -- RUNNING, then COMPLETED or CANCELED
    upto            DOUBLE PRECISION NOT NULL,  -- runs created at or before it
    cursor          TEXT NOT NULL DEFAULT '',   -- the last run id handled
    total           INTEGER NOT NULL DEFAULT 0, -- runs matching when it began
    done            INTEGER NOT NULL DEFAULT 0, -- runs canceled or replayed
    skipped         INTEGER NOT NULL DEFAULT 0, -- runs that had ended when their turn came
    failed          INTEGER NOT NULL DEFAULT 0, -- runs that could not be replayed
    error           TEXT,                       -- why the last of those failed
    chunks          INTEGER NOT NULL DEFAULT 0, -- transactions it took so far
    idempotency_key TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    completed_at    DOUBLE PRECISION
);
CREATE UNIQUE INDEX bulk_actions_idempotency ON bulk_actions (env_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX bulk_actions_list ON bulk_actions (env_id, id);
CREATE INDEX bulk_actions_running ON bulk_actions (created_at) WHERE status = 'RUNNING';
