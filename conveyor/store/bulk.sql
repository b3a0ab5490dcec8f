-- Named queries of bulk actions (see queries.sql for the form; conveyor/engine/bulk.py).

-- name: insert_bulk_action
-- Create a bulk action (nothing when its idempotency key is held already).
INSERT INTO bulk_actions (id, env_id, kind, filters, status, upto, total, idempotency_key,
                          created_at, updated_at)
VALUES (:id, :env_id, :kind, :filters, 'RUNNING', :now, :total, :idempotency_key, :now, :now)
ON CONFLICT DO NOTHING;

-- name: get_bulk_action
-- One bulk action of an environment.
SELECT * FROM bulk_actions WHERE env_id = :env_id AND id = :id;

-- name: find_bulk_action_by_key
-- The bulk action holding an idempotency key in an environment.
SELECT * FROM bulk_actions WHERE env_id = :env_id AND idempotency_key = :key;

-- name: list_bulk_actions
-- An environment's bulk actions, newest first.
SELECT * FROM bulk_actions WHERE env_id = :env_id ORDER BY id DESC LIMIT :limit;

-- name: running_bulk_actions
-- The bulk actions with runs left to handle, oldest first, made before :now (their bound passed).
SELECT id FROM bulk_actions WHERE status = 'RUNNING' AND created_at < :now ORDER BY created_at;

-- name: next_bulk_action
-- When the oldest running bulk action was made (the tick handles it once the clock has passed).
SELECT MIN(created_at) AS created_at FROM bulk_actions WHERE status = 'RUNNING';

-- name: claim_bulk_action
-- A running bulk action, locked until the chunk's transaction ends (another server's chunk skips it).
SELECT * FROM bulk_actions WHERE id = :id AND status = 'RUNNING';

-- name: claim_bulk_action [postgres]
SELECT * FROM bulk_actions WHERE id = :id AND status = 'RUNNING' FOR UPDATE SKIP LOCKED;

-- name: bulk_action_runs
-- The next runs a bulk action handles: matching its filters, made by its bound, after its cursor.
SELECT * FROM runs
WHERE env_id = :env_id
  AND id > :after
  AND created_at <= :upto
  AND (:any_status = 0 OR status IN (:statuses))
  AND (:task_id IS NULL OR task_id = :task_id)
  AND (:tag IS NULL OR tags LIKE :tag)
  AND (:version IS NULL OR version = :version)
  AND (:created_from IS NULL OR created_at >= :created_from)
  AND (:created_to IS NULL OR created_at < :created_to)
ORDER BY id LIMIT :limit;

-- name: count_bulk_action_runs
-- How many runs match a bulk action's filters, made by :upto.
SELECT COUNT(*) AS n FROM runs
WHERE env_id = :env_id
  AND created_at <= :upto
  AND (:any_status = 0 OR status IN (:statuses))
  AND (:task_id IS NULL OR task_id = :task_id)
  AND (:tag IS NULL OR tags LIKE :tag)
  AND (:version IS NULL OR version = :version)
  AND (:created_from IS NULL OR created_at >= :created_from)
  AND (:created_to IS NULL OR created_at < :created_to);

-- name: advance_bulk_action
-- Record a chunk: the cursor moves past it and its counts add up, in the chunk's transaction.
UPDATE bulk_actions
SET cursor = :cursor, done = done + :done, skipped = skipped + :skipped,
    failed = failed + :failed, error = COALESCE(:error, error), chunks = chunks + 1,
    status = :status, completed_at = :completed_at, updated_at = :now
WHERE id = :id;

-- name: stop_bulk_action
-- Stop a running bulk action: the runs it has not reached are left as they are.
UPDATE bulk_actions SET status = 'CANCELED', completed_at = :now, updated_at = :now
WHERE env_id = :env_id AND id = :id AND status = 'RUNNING';
