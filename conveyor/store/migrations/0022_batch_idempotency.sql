-- A batch's idempotency key (`batch_trigger(items, idempotency_key=...)`): one batch holds a key
-- in an environment at a time (the unique index decides between racing calls), until
-- idempotency_expires_at (NULL: never) or until the key is released. run_ids: the runs of a
-- keyed batch in input order (a JSON list; it may hold runs other triggers made, found by an
-- item's own key), what a later call with the key answers.
ALTER TABLE batches ADD COLUMN idempotency_key TEXT;
ALTER TABLE batches ADD COLUMN idempotency_expires_at DOUBLE PRECISION;
ALTER TABLE batches ADD COLUMN run_ids TEXT;
CREATE UNIQUE INDEX batches_idempotency ON batches (env_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
