-- A run canceled while an attempt of it executes ends at once, but its body runs on until its
-- worker has stopped it (at once on a heartbeat, or at its next durable call). Until then the
-- run keeps its concurrency slot (`stopping`), so a new run never starts beside a body that is
-- still running and a queue or environment limit holds.
ALTER TABLE runs ADD COLUMN stopping INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_stopping ON runs (env_id, worker_id) WHERE stopping = 1;
