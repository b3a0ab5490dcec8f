-- Named queries of batch idempotency keys (see queries.sql for the form; engine/batches.py).

-- name: claim_batch_key
-- Record a keyed batch, unless another batch holds the key (then nothing: the caller reads it).
INSERT INTO batches (id, env_id, task_id, run_count, parent_id, created_at, idempotency_key,
                     idempotency_expires_at)
VALUES (:id, :env_id, :task_id, :run_count, :parent_id, :now, :key, :expires_at)
ON CONFLICT DO NOTHING;

-- name: find_keyed_batch
-- The batch holding an idempotency key, if any.
SELECT * FROM batches WHERE env_id = :env_id AND idempotency_key = :key;

-- name: set_batch_runs
-- The runs of a keyed batch, in input order (a JSON list of run ids).
UPDATE batches SET run_ids = :run_ids WHERE id = :id;

-- name: release_batch_key
-- The batch no longer holds its key (expired, a run of it failed, reset); whether it did.
UPDATE batches SET idempotency_key = NULL, idempotency_expires_at = NULL
WHERE id = :id AND idempotency_key = :key;
