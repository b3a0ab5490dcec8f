-- A queue's limit comes from the code (queue(..., concurrency_limit=N), set at every load) unless
-- someone overrode it through the API; the override survives reloads until it is cleared.
ALTER TABLE queues ADD COLUMN override_limit INTEGER;
-- Whether any run of the queue has had a concurrency key: only such queues need the per-key look
-- that keeps one key's backlog from hiding another key's runs.
ALTER TABLE queues ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
