-- Named queries (more in one file per concept beside this one: accounts.sql, deployments.sql,
-- schedules.sql, ...). Each starts with `-- name: NAME` and a one-line description.
-- Parameters are :name. A list parameter inside `IN (:name)` is expanded by the store.
-- A query may have a PostgreSQL variant written `-- name: NAME [postgres]`; the plain one is
-- SQLite's then (e.g. where it names an index with INDEXED BY).

-- name: get_environment
-- One environment by id.
SELECT * FROM environments WHERE id = :id;

-- name: set_load_failures
-- The modules that failed to import at the last load of the environment's worker code.
UPDATE environments SET load_failures = :failures WHERE id = :id;

-- name: lock_environment
-- One environment by id, locked until the transaction ends (a lease that must respect its limit).
SELECT * FROM environments WHERE id = :id;

-- name: lock_environment [postgres]
SELECT * FROM environments WHERE id = :id FOR UPDATE;

-- name: find_environment
-- One environment by project and slug.
SELECT * FROM environments WHERE project = :project AND slug = :slug;

-- name: insert_environment
-- Create an environment.
INSERT INTO environments (id, project, slug, kind, concurrency_limit, created_at)
VALUES (:id, :project, :slug, :kind, :concurrency_limit, :now);

-- name: set_environment_limit
-- Change the environment-wide concurrency limit.
UPDATE environments SET concurrency_limit = :concurrency_limit WHERE id = :id;

-- name: insert_api_key
-- Store a key's hash for an environment (ignored when it exists).
INSERT INTO api_keys (key_hash, env_id, prefix, created_at) VALUES (:key_hash, :env_id, :prefix, :now)
ON CONFLICT (key_hash) DO NOTHING;

-- name: environment_for_key
-- The environment a live key belongs to.
SELECT e.* FROM api_keys k JOIN environments e ON e.id = k.env_id
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL;

-- name: revoke_api_key
-- Revoke a live key: it stops authenticating.
UPDATE api_keys SET revoked_at = :now WHERE key_hash = :key_hash AND revoked_at IS NULL;

-- name: upsert_task
-- Record (or update) a task a worker can run.
INSERT INTO tasks (env_id, task_id, queue, definition, updated_at) VALUES (:env_id, :task_id, :queue, :definition, :now)
ON CONFLICT (env_id, task_id) DO UPDATE SET queue = excluded.queue, definition = excluded.definition, updated_at = excluded.updated_at;

-- name: delete_tasks_except
-- Forget tasks that the current code no longer defines.
DELETE FROM tasks WHERE env_id = :env_id AND task_id NOT IN (:keep);

-- name: delete_all_tasks
-- Forget every task of an environment.
DELETE FROM tasks WHERE env_id = :env_id;

-- name: get_task
-- One task definition.
SELECT * FROM tasks WHERE env_id = :env_id AND task_id = :task_id;

-- name: list_tasks
-- Every task of an environment.
SELECT * FROM tasks WHERE env_id = :env_id ORDER BY task_id;

-- name: ensure_queue
-- Create a queue if it does not exist.
INSERT INTO queues (env_id, name, concurrency_limit, rate_limit, rate_period, weights, created_at)
VALUES (:env_id, :name, :concurrency_limit, :rate_limit, :rate_period, :weights, :now)
ON CONFLICT (env_id, name) DO NOTHING;

-- name: declare_queue
-- Create a queue or change the limits and weights the code declares for it.
INSERT INTO queues (env_id, name, concurrency_limit, rate_limit, rate_period, weights, created_at)
VALUES (:env_id, :name, :concurrency_limit, :rate_limit, :rate_period, :weights, :now)
ON CONFLICT (env_id, name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit,
    rate_limit = excluded.rate_limit, rate_period = excluded.rate_period, weights = excluded.weights;

-- name: queue_limit
-- The limits in force on a queue (the API's override, else the one it was made or declared with)
-- and its weights.
SELECT COALESCE(override_limit, concurrency_limit) AS concurrency_limit, rate_limit, rate_period,
       weights
FROM queues WHERE env_id = :env_id AND name = :name;

-- name: set_queue_override
-- Override a queue's limit from the API (NULL clears the override).
UPDATE queues SET override_limit = :override_limit WHERE env_id = :env_id AND name = :name;

-- name: set_queue_paused
-- Pause or resume a queue.
UPDATE queues SET paused = :paused WHERE env_id = :env_id AND name = :name;

-- name: list_queues
-- Every queue of an environment with its running and queued counts, and its starts in the window
-- of its rate limit (every concurrency key's together).
SELECT q.name, COALESCE(q.override_limit, q.concurrency_limit) AS concurrency_limit, q.paused,
       q.concurrency_limit AS code_limit, q.override_limit, q.rate_limit, q.rate_period, q.weights,
       (SELECT COUNT(*) FROM queue_starts s WHERE s.env_id = q.env_id AND s.queue = q.name
          AND s.started_at > :now - q.rate_period) AS rate_used,
       (SELECT COUNT(*) FROM runs r WHERE r.env_id = q.env_id AND r.queue = q.name AND r.status = 'EXECUTING') AS running,
       (SELECT COUNT(*) FROM runs r WHERE r.env_id = q.env_id AND r.queue = q.name AND r.status = 'QUEUED') AS queued
FROM queues q WHERE q.env_id = :env_id ORDER BY q.name;

-- name: active_queues
-- Queues of an environment that are not paused, with the limit in force. On PostgreSQL each is
-- locked for the lease that reads it, and a queue another lease holds is skipped: concurrent
-- leases share out the queues, and each queue's limit is checked by one lease at a time.
SELECT name, COALESCE(override_limit, concurrency_limit) AS concurrency_limit, keyed, rate_limit,
       rate_period, weights, vclock
FROM queues WHERE env_id = :env_id AND paused = 0;

-- name: active_queues [postgres]
SELECT name, COALESCE(override_limit, concurrency_limit) AS concurrency_limit, keyed, rate_limit,
       rate_period, weights, vclock
FROM queues WHERE env_id = :env_id AND paused = 0 ORDER BY name FOR UPDATE SKIP LOCKED;

-- name: count_active_queues
-- How many queues of an environment are not paused (to tell whether a lease skipped some).
SELECT COUNT(*) AS n FROM queues WHERE env_id = :env_id AND paused = 0;

-- name: mark_queue_keyed
-- A run with a concurrency key entered the queue (writes only the first time).
UPDATE queues SET keyed = 1 WHERE env_id = :env_id AND name = :name AND keyed = 0;

-- name: executing_counts
-- Runs holding a slot, per queue and concurrency key: executing, or ended while their body is
-- still being stopped (a queue and key may come twice; the engine adds them up).
SELECT queue, concurrency_key, COUNT(*) AS n FROM runs
WHERE env_id = :env_id AND status = 'EXECUTING' GROUP BY queue, concurrency_key
UNION ALL
SELECT queue, concurrency_key, COUNT(*) AS n FROM runs INDEXED BY runs_stopping
WHERE env_id = :env_id AND stopping = 1 GROUP BY queue, concurrency_key;

-- name: executing_counts [postgres]
-- (SQLite's text names the partial index of stopping runs, which its planner would pass over)
SELECT queue, concurrency_key, COUNT(*) AS n FROM runs
WHERE env_id = :env_id AND status = 'EXECUTING' GROUP BY queue, concurrency_key
UNION ALL
SELECT queue, concurrency_key, COUNT(*) AS n FROM runs
WHERE env_id = :env_id AND stopping = 1 GROUP BY queue, concurrency_key;

-- name: mark_stopping
-- The run ended while an attempt executes: it keeps its slot until its worker has stopped it.
UPDATE runs SET stopping = 1 WHERE id = :id;

-- name: stopping_runs_of_worker
-- Runs whose bodies a worker is still stopping (they keep their concurrency slots until then).
SELECT id, env_id, lease_seq FROM runs WHERE worker_id = :worker_id AND stopping = 1;

-- name: release_slots
-- The bodies of these runs have stopped: their slots are free.
UPDATE runs SET stopping = 0 WHERE id IN (:ids) AND stopping = 1;

-- name: queued_candidates
-- The next runs of one queue that may start now, best first.
-- (`+available_at`: keep the planner on runs_dequeue, which is already in score order, rather than
-- scanning every queued run by time and sorting them)
SELECT id, concurrency_key, score, resuming FROM runs
WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND +available_at <= :now
ORDER BY score LIMIT :limit;

-- name: queued_candidates [postgres]
-- (a run another transaction has locked, a cancel say, is skipped rather than waited for)
SELECT id, concurrency_key, score, resuming FROM runs
WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND available_at <= :now
ORDER BY score LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: queued_key_heads
-- Each concurrency key of one queue with runs that may start now: its best score, how many (up
-- to :most) and its round-robin turn; the keys furthest behind first (at most 1,000 keys a lease).
SELECT h.concurrency_key, h.score, h.n, t.turn FROM (
    SELECT concurrency_key, MIN(score) AS score, COUNT(*) AS n FROM runs INDEXED BY runs_keyed_dequeue
    WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key IS NOT NULL
      AND +available_at <= :now
    GROUP BY concurrency_key
    UNION ALL
    SELECT NULL, MIN(score), COUNT(*) FROM runs
    WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key IS NULL
      AND +available_at <= :now
    HAVING COUNT(*) > 0
) h LEFT JOIN queue_key_turns t
    ON t.env_id = :env_id AND t.queue = :queue AND t.bucket = COALESCE(h.concurrency_key, '')
ORDER BY COALESCE(t.turn, 0), h.score LIMIT 1000;

-- name: queued_key_heads [postgres]
-- (SQLite's text names the index of keyed queued runs, which covers the query, and keeps the
-- keyless half off the index of every queued run by available_at)
SELECT h.concurrency_key, h.score, h.n, t.turn FROM (
    SELECT concurrency_key, MIN(score) AS score, COUNT(*) AS n FROM runs
    WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key IS NOT NULL
      AND available_at <= :now
    GROUP BY concurrency_key
    UNION ALL
    SELECT NULL, MIN(score), COUNT(*) FROM runs
    WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key IS NULL
      AND available_at <= :now
    HAVING COUNT(*) > 0
) h LEFT JOIN queue_key_turns t
    ON t.env_id = :env_id AND t.queue = :queue AND t.bucket = COALESCE(h.concurrency_key, '')
ORDER BY COALESCE(t.turn, 0), h.score LIMIT 1000;

-- name: queued_candidates_of_key
-- The next runs of one concurrency key of a queue that may start now, best first.
SELECT id, concurrency_key, score, resuming FROM runs
WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key = :key
  AND +available_at <= :now
ORDER BY score LIMIT :limit;

-- name: queued_candidates_of_key [postgres]
SELECT id, concurrency_key, score, resuming FROM runs
WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key = :key
  AND available_at <= :now
ORDER BY score LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: queued_candidates_without_key
-- The next runs without a concurrency key of a queue whose other runs have keys, best first.
SELECT id, concurrency_key, score, resuming FROM runs
WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key IS NULL
  AND +available_at <= :now
ORDER BY score LIMIT :limit;

-- name: queued_candidates_without_key [postgres]
SELECT id, concurrency_key, score, resuming FROM runs
WHERE env_id = :env_id AND queue = :queue AND status = 'QUEUED' AND concurrency_key IS NULL
  AND available_at <= :now
ORDER BY score LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: set_key_turn
-- A concurrency key's next round-robin turn in its queue.
INSERT INTO queue_key_turns (env_id, queue, bucket, turn) VALUES (:env_id, :queue, :bucket, :turn)
ON CONFLICT (env_id, queue, bucket) DO UPDATE SET turn = excluded.turn;

-- name: set_queue_clock
-- A queue's round-robin clock moves on; keys at or behind it need no row of their own.
UPDATE queues SET vclock = :vclock WHERE env_id = :env_id AND name = :queue;

-- name: forget_key_turns
-- Keys the queue's clock has caught up with: they are at the clock, so their rows can go.
DELETE FROM queue_key_turns WHERE env_id = :env_id AND queue = :queue AND turn <= :vclock;

-- name: rate_window
-- A rate-limited queue's starts in the window, per concurrency key ('' without one), with the
-- earliest of them (the window has room again once it is a period old).
SELECT bucket, COUNT(*) AS n, MIN(started_at) AS first FROM queue_starts
WHERE env_id = :env_id AND queue = :queue AND started_at > :since GROUP BY bucket;

-- name: forget_starts
-- Starts that left the window of their queue's rate limit.
DELETE FROM queue_starts WHERE env_id = :env_id AND queue = :queue AND started_at <= :since;

-- name: insert_start
-- A start of a rate-limited queue, counted in its window.
INSERT INTO queue_starts (env_id, queue, bucket, started_at) VALUES (:env_id, :queue, :bucket, :now);

-- name: next_available_at
-- When the next queued run of an environment becomes startable.
SELECT MIN(available_at) AS at FROM runs WHERE env_id = :env_id AND status = 'QUEUED' AND available_at > :now;

-- name: lease_runs
-- Hand queued runs to a worker: start their next attempt, or continue one that was suspended.
-- A run that has started can no longer expire: its ttl is about waiting to start. In a deployed
-- environment it locks to the current version when it first starts, and stays on it.
UPDATE runs SET status = 'EXECUTING', worker_id = :worker_id, version = COALESCE(version, :version), attempt_count = attempt_count + 1 - resuming,
       attempt_started_at = CASE WHEN resuming = 1 THEN attempt_started_at ELSE :now END,
       compute_used = CASE WHEN resuming = 1 THEN compute_used ELSE 0 END, resuming = 0,
       started_at = COALESCE(started_at, :now), expires_at = NULL, updated_at = :now,
       fence = fence + 1, lease_seq = :lease_seq, segment_started_at = :now
WHERE id IN (:ids) AND +status = 'QUEUED'
RETURNING id, task_id, payload, tags, metadata, metadata_seq, attempt_count, max_attempts, max_duration,
          machine, hooks, queue, concurrency_key, parent_id, root_id, batch_id, created_at, started_at,
          compute_used, version, fence, available_at, compute_seconds, attempt_started_at, trace_context;

-- name: lease_runs [postgres]
-- (SQLite's text keeps the planner on the primary key: `+status`)
UPDATE runs SET status = 'EXECUTING', worker_id = :worker_id, version = COALESCE(version, :version), attempt_count = attempt_count + 1 - resuming,
       attempt_started_at = CASE WHEN resuming = 1 THEN attempt_started_at ELSE :now END,
       compute_used = CASE WHEN resuming = 1 THEN compute_used ELSE 0 END, resuming = 0,
       started_at = COALESCE(started_at, :now), expires_at = NULL, updated_at = :now,
       fence = fence + 1, lease_seq = :lease_seq, segment_started_at = :now
WHERE id IN (:ids) AND status = 'QUEUED'
RETURNING id, task_id, payload, tags, metadata, metadata_seq, attempt_count, max_attempts, max_duration,
          machine, hooks, queue, concurrency_key, parent_id, root_id, batch_id, created_at, started_at,
          compute_used, version, fence, available_at, compute_seconds, attempt_started_at, trace_context;

-- name: lease_hooks
-- Hand runs whose lifecycle hook has not run yet to a worker.
UPDATE runs SET hook_lease_until = :until, fence = fence + 1
WHERE id IN (SELECT id FROM runs INDEXED BY runs_pending_hook WHERE env_id = :env_id AND hook IS NOT NULL
             AND (hook_lease_until IS NULL OR hook_lease_until < :now) LIMIT :limit)
RETURNING id, task_id, payload, output, error, status, hook, tags, metadata, attempt_count, max_duration, machine,
          parent_id, root_id, batch_id, created_at, started_at, version, fence;

-- name: lease_hooks [postgres]
-- (two servers leasing at once must not hand out the same hook)
UPDATE runs SET hook_lease_until = :until, fence = fence + 1
WHERE id IN (SELECT id FROM runs WHERE env_id = :env_id AND hook IS NOT NULL
             AND (hook_lease_until IS NULL OR hook_lease_until < :now) LIMIT :limit FOR UPDATE SKIP LOCKED)
  AND hook IS NOT NULL AND (hook_lease_until IS NULL OR hook_lease_until < :now)
RETURNING id, task_id, payload, output, error, status, hook, tags, metadata, attempt_count, max_duration, machine,
          parent_id, root_id, batch_id, created_at, started_at, version, fence;

-- name: finish_hook
-- A lifecycle hook ran: forget it (when the report comes from the hook job's holder).
UPDATE runs SET hook = NULL, hook_lease_until = NULL WHERE id = :id AND hook = :hook AND fence = :fence;

-- name: revoke_fence
-- Take a run away from the attempt holding it (canceled, taken back): its reports no longer count.
UPDATE runs SET fence = fence + 1 WHERE id = :id;

-- name: next_lease_seq
-- Count one more lease of a worker that hands out runs; the new count.
UPDATE workers SET lease_seq = lease_seq + 1 WHERE id = :id RETURNING lease_seq;

-- name: revoke_leases
-- A worker declared lost: the leases it was given so far must start nothing more.
UPDATE workers SET revoked_through = lease_seq WHERE id = :id;

-- name: insert_run
-- Create a run.
INSERT INTO runs (id, env_id, task_id, status, payload, queue, concurrency_key, priority, score, available_at, ttl,
                  expires_at, tags, metadata, idempotency_key, idempotency_expires_at, max_attempts, retry,
                  max_duration, machine, hooks, parent_id, root_id, batch_id, replayed_from, version, trigger_options,
                  debounce_key, debounce_deadline, trace_context, created_at, updated_at)
VALUES (:id, :env_id, :task_id, :status, :payload, :queue, :concurrency_key, :priority, :score, :available_at, :ttl,
        :expires_at, :tags, :metadata, :idempotency_key, :idempotency_expires_at, :max_attempts, :retry,
        :max_duration, :machine, :hooks, :parent_id, :root_id, :batch_id, :replayed_from, :version, :trigger_options,
        :debounce_key, :debounce_deadline, :trace_context, :now, :now);

-- name: find_debounced_run
-- The run still waiting to start that gathers a task's triggers under a debounce key.
SELECT * FROM runs WHERE env_id = :env_id AND task_id = :task_id AND debounce_key = :key AND status = 'DELAYED';

-- name: push_debounced_run
-- Another trigger of a debounced run: it starts later, with this trigger's payload and settings
-- (trailing mode; leading mode passes the run's own).
-- A trigger's idempotency key goes to the run when it has none, so that key finds it later.
UPDATE runs SET available_at = :available_at, score = :available_at - priority, payload = :payload,
       metadata = :metadata, tags = :tags, max_attempts = :max_attempts, max_duration = :max_duration,
       machine = :machine, updated_at = :now,
       idempotency_expires_at = CASE WHEN idempotency_key IS NULL THEN :idempotency_expires_at
                                     ELSE idempotency_expires_at END,
       idempotency_key = COALESCE(idempotency_key, :idempotency_key)
WHERE id = :id AND status = 'DELAYED';

-- name: insert_batch
-- Record a batch of runs.
INSERT INTO batches (id, env_id, task_id, run_count, parent_id, created_at) VALUES (:id, :env_id, :task_id, :run_count, :parent_id, :now);

-- name: find_idempotent_run
-- The run that holds an idempotency key, if any.
SELECT * FROM runs WHERE env_id = :env_id AND task_id = :task_id AND idempotency_key = :key;

-- name: release_idempotency_key
-- Let an expired idempotency key be used again.
UPDATE runs SET idempotency_key = NULL, idempotency_expires_at = NULL WHERE id = :id;

-- name: get_run
-- One run of an environment.
SELECT * FROM runs WHERE env_id = :env_id AND id = :id;

-- name: lock_run
-- One run of an environment, to change it: on PostgreSQL a lease starting it finishes first.
SELECT * FROM runs WHERE env_id = :env_id AND id = :id;

-- name: lock_run [postgres]
SELECT * FROM runs WHERE env_id = :env_id AND id = :id FOR UPDATE;

-- name: get_run_by_id
-- One run, whatever its environment (for workers holding it).
SELECT * FROM runs WHERE id = :id;

-- name: lock_run_by_id
-- One run, to check who holds it before a durable call's effect: on PostgreSQL a cancel or a
-- take-back of the run waits for the call (or the call for them).
SELECT * FROM runs WHERE id = :id;

-- name: lock_run_by_id [postgres]
SELECT * FROM runs WHERE id = :id FOR UPDATE;

-- name: get_runs_by_id
-- Several runs by id.
SELECT * FROM runs WHERE id IN (:ids);

-- name: list_runs
-- The first page of runs, newest first, with optional filters (:roots = 1: only runs no run triggered).
SELECT * FROM runs
WHERE env_id = :env_id
  AND (:any_status = 0 OR status IN (:statuses))
  AND (:task_id IS NULL OR task_id = :task_id)
  AND (:tag IS NULL OR tags LIKE :tag)
  AND (:roots = 0 OR parent_id IS NULL)
  AND (:created_from IS NULL OR created_at >= :created_from)
  AND (:created_to IS NULL OR created_at < :created_to)
ORDER BY id DESC LIMIT :limit;

-- name: list_runs_older
-- A page of runs older than a cursor, newest first. The cursor is a plain `id <` bound (no
-- `IS NULL OR`), so the index range starts at the cursor: a deep page costs what the first does.
SELECT * FROM runs
WHERE env_id = :env_id
  AND (:any_status = 0 OR status IN (:statuses))
  AND (:task_id IS NULL OR task_id = :task_id)
  AND (:tag IS NULL OR tags LIKE :tag)
  AND (:roots = 0 OR parent_id IS NULL)
  AND id < :cursor
  AND (:created_from IS NULL OR created_at >= :created_from)
  AND (:created_to IS NULL OR created_at < :created_to)
ORDER BY id DESC LIMIT :limit;

-- name: list_runs_newer
-- A page of runs just newer than a cursor, oldest first (the page before a list_runs page).
SELECT * FROM runs
WHERE env_id = :env_id
  AND (:any_status = 0 OR status IN (:statuses))
  AND (:task_id IS NULL OR task_id = :task_id)
  AND (:tag IS NULL OR tags LIKE :tag)
  AND (:roots = 0 OR parent_id IS NULL)
  AND id > :cursor
  AND (:created_from IS NULL OR created_at >= :created_from)
  AND (:created_to IS NULL OR created_at < :created_to)
ORDER BY id ASC LIMIT :limit;

-- name: count_children
-- How many child runs each of some runs triggered (runs without children are left out).
SELECT parent_id, COUNT(*) AS children FROM runs WHERE parent_id IN (:ids) GROUP BY parent_id;

-- name: finish_run
-- End a run (any final status) and record the hook it still owes; a run that did not complete
-- releases its idempotency key, so the next trigger with it makes a new run.
UPDATE runs SET status = :status, output = :output, error = :error, completed_at = :now, updated_at = :now,
       hook = :hook, hook_lease_until = NULL, expires_at = NULL,
       idempotency_key = CASE WHEN :status = 'COMPLETED' THEN idempotency_key END,
       idempotency_expires_at = CASE WHEN :status = 'COMPLETED' THEN idempotency_expires_at END
WHERE id = :id;

-- name: requeue_run
-- Put a run back in its queue for its next attempt.
UPDATE runs SET status = 'QUEUED', worker_id = NULL, attempt_started_at = NULL, error = :error,
       available_at = :available_at, score = :available_at - priority, updated_at = :now
WHERE id = :id;

-- name: requeue_on_machine
-- Put back a run that ran out of memory, to run at once on a larger machine; that attempt does
-- not count against its retries.
UPDATE runs SET status = 'QUEUED', worker_id = NULL, attempt_started_at = NULL, error = :error, machine = :machine,
       max_attempts = max_attempts + 1, available_at = :now, score = :now - priority, updated_at = :now
WHERE id = :id;

-- name: requeue_interrupted
-- Put back a run whose attempt the platform stopped; that attempt does not count against its retries.
UPDATE runs SET status = 'QUEUED', worker_id = NULL, attempt_started_at = NULL, error = :error,
       max_attempts = max_attempts + 1, available_at = :now, score = :now - priority, updated_at = :now
WHERE id = :id;

-- name: insert_attempt
-- Record a finished attempt with the compute seconds it used.
INSERT INTO attempts (run_id, number, status, worker_id, started_at, completed_at, error, compute_seconds)
VALUES (:run_id, :number, :status, :worker_id, :started_at, :now, :error, :compute_seconds)
ON CONFLICT (run_id, number) DO NOTHING;

-- name: add_run_compute
-- Add a finished attempt's compute seconds to its run's.
UPDATE runs SET compute_seconds = compute_seconds + :seconds WHERE id = :id;

-- name: list_attempts
-- The finished attempts of a run.
SELECT * FROM attempts WHERE run_id = :run_id ORDER BY number;

-- name: environments_with_due_work
-- Environments where time has made something due: delayed runs to queue, waits and token
-- timeouts to complete, queued runs past their ttl, runs held by workers that stopped.
SELECT env_id FROM runs WHERE status = 'DELAYED' AND available_at <= :now
UNION SELECT env_id FROM waitpoints WHERE status = 'PENDING' AND complete_at IS NOT NULL AND complete_at <= :now
UNION SELECT env_id FROM runs INDEXED BY runs_expiry WHERE status = 'QUEUED' AND expires_at IS NOT NULL AND expires_at <= :now
UNION SELECT r.env_id FROM runs r JOIN workers w ON w.id = r.worker_id
      WHERE r.status = 'EXECUTING' AND w.stopped_at IS NOT NULL;

-- name: environments_with_due_work [postgres]
SELECT env_id FROM runs WHERE status = 'DELAYED' AND available_at <= :now
UNION SELECT env_id FROM waitpoints WHERE status = 'PENDING' AND complete_at IS NOT NULL AND complete_at <= :now
UNION SELECT env_id FROM runs WHERE status = 'QUEUED' AND expires_at IS NOT NULL AND expires_at <= :now
UNION SELECT r.env_id FROM runs r JOIN workers w ON w.id = r.worker_id
      WHERE r.status = 'EXECUTING' AND w.stopped_at IS NOT NULL;

-- name: promote_delayed
-- Queue an environment's delayed runs whose time has come.
UPDATE runs SET status = 'QUEUED', expires_at = CASE WHEN ttl IS NULL THEN NULL ELSE available_at + ttl END,
       updated_at = :now
WHERE env_id = :env_id AND status = 'DELAYED' AND available_at <= :now
RETURNING env_id;

-- name: expired_runs
-- An environment's queued runs whose ttl has passed.
SELECT * FROM runs INDEXED BY runs_expiry
WHERE status = 'QUEUED' AND expires_at IS NOT NULL AND expires_at <= :now AND env_id = :env_id LIMIT 1000;

-- name: expired_runs [postgres]
SELECT * FROM runs
WHERE status = 'QUEUED' AND expires_at IS NOT NULL AND expires_at <= :now AND env_id = :env_id LIMIT 1000
FOR UPDATE SKIP LOCKED;

-- name: upsert_worker
-- A worker starts (or starts again with the same id); `deployed` when it runs deployed versions.
INSERT INTO workers (id, env_id, name, started_at, heartbeat_at, deployed) VALUES (:id, :env_id, :name, :now, :now, :deployed)
ON CONFLICT (id) DO UPDATE SET env_id = excluded.env_id, name = excluded.name, started_at = excluded.started_at,
    heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, deployed = excluded.deployed;

-- name: touch_worker
-- A worker's heartbeat (a worker declared lost that heartbeats again is alive again).
UPDATE workers SET heartbeat_at = :now, stopped_at = NULL WHERE id = :id RETURNING revoked_through;

-- name: get_worker
-- One worker.
SELECT * FROM workers WHERE id = :id;

-- name: orphaned_runs
-- An environment's executing runs held by a worker that has stopped or was declared lost.
SELECT r.* FROM runs r JOIN workers w ON w.id = r.worker_id
WHERE r.env_id = :env_id AND r.status = 'EXECUTING' AND w.stopped_at IS NOT NULL LIMIT 1000;

-- name: stop_worker
-- A worker stopped (or was declared lost).
UPDATE workers SET stopped_at = :now WHERE id = :id;

-- name: lost_workers
-- Workers that stopped heartbeating.
SELECT id FROM workers WHERE stopped_at IS NULL AND heartbeat_at < :before;

-- name: runs_of_worker
-- Runs a worker holds.
SELECT * FROM runs WHERE worker_id = :worker_id AND status = 'EXECUTING';

-- name: runs_held_by
-- Runs a worker holds that were handed out in a lease it has received (to compare with what it
-- says it runs).
SELECT id, env_id, fence FROM runs WHERE worker_id = :worker_id AND status = 'EXECUTING' AND lease_seq <= :lease_seq;

-- name: runs_by_id_fenced
-- The runs a worker thinks it runs, with their state and fence now.
SELECT id, status, worker_id, fence FROM runs WHERE id IN (:ids);

-- name: insert_log
-- Store one log line of an attempt.
INSERT INTO logs (run_id, attempt, seq, ts, level, message, attributes)
VALUES (:run_id, :attempt, :seq, :ts, :level, :message, :attributes)
ON CONFLICT (run_id, attempt, seq) DO NOTHING;

-- name: list_logs
-- The log lines of a run, oldest first.
SELECT * FROM logs WHERE run_id = :run_id ORDER BY attempt, seq LIMIT :limit;

-- name: insert_waitpoint
-- Create a waitpoint.
INSERT INTO waitpoints (id, env_id, kind, status, owner_run_id, complete_at, batch_id, run_count, done_count,
                        idempotency_key, tags, result, created_at, completed_at)
VALUES (:id, :env_id, :kind, :status, :owner_run_id, :complete_at, :batch_id, :run_count, :done_count,
        :idempotency_key, :tags, :result, :now, :completed_at);

-- name: insert_waitpoint_run
-- A run a run or batch waitpoint waits for, at its place in the input.
INSERT INTO waitpoint_runs (waitpoint_id, idx, run_id) VALUES (:waitpoint_id, :idx, :run_id);

-- name: count_waitpoint_runs_done
-- A run ended: count it in every pending waitpoint waiting for it; their counts after it.
UPDATE waitpoints SET done_count = done_count + (
    SELECT COUNT(*) FROM waitpoint_runs wr WHERE wr.waitpoint_id = waitpoints.id AND wr.run_id = :run_id)
WHERE status = 'PENDING' AND id IN (SELECT waitpoint_id FROM waitpoint_runs WHERE run_id = :run_id)
RETURNING id, kind, done_count, run_count;

-- name: waitpoint_run_results
-- The runs a waitpoint waited for, in input order, with how they ended.
SELECT r.id, r.task_id, r.status, r.output, r.error FROM waitpoint_runs wr JOIN runs r ON r.id = wr.run_id
WHERE wr.waitpoint_id = :waitpoint_id ORDER BY wr.idx;

-- name: get_waitpoint
-- One waitpoint of an environment.
SELECT * FROM waitpoints WHERE env_id = :env_id AND id = :id;

-- name: get_waitpoints_by_id
-- Several waitpoints by id.
SELECT * FROM waitpoints WHERE id IN (:ids);

-- name: find_token_by_key
-- The token holding an idempotency key.
SELECT * FROM waitpoints WHERE env_id = :env_id AND idempotency_key = :key;

-- name: set_token_key_expiry
-- Until when a new token's idempotency key holds.
UPDATE waitpoints SET idempotency_expires_at = :expires_at WHERE id = :id;

-- name: release_token_key
-- A token's idempotency key has expired: the next token with it is a new one.
UPDATE waitpoints SET idempotency_key = NULL, idempotency_expires_at = NULL WHERE id = :id;

-- name: list_tokens
-- A page of tokens, newest first.
SELECT * FROM waitpoints
WHERE env_id = :env_id AND kind = 'token' AND (:status IS NULL OR status = :status) AND (:cursor IS NULL OR id < :cursor)
ORDER BY id DESC LIMIT :limit;

-- name: complete_waitpoint
-- Complete a pending waitpoint with its result.
UPDATE waitpoints SET status = :status, result = :result, completed_at = :now WHERE id = :id AND status = 'PENDING';

-- name: due_waitpoints
-- An environment's durations that have passed and tokens whose timeout has passed.
SELECT id, kind FROM waitpoints
WHERE status = 'PENDING' AND complete_at IS NOT NULL AND complete_at <= :now AND env_id = :env_id LIMIT 1000;

-- name: insert_journal
-- Record the answer to a durable call (ignored if the call is already journaled).
INSERT INTO journal (run_id, key, value, waitpoint_id, created_at) VALUES (:run_id, :key, :value, :waitpoint_id, :now)
ON CONFLICT (run_id, key) DO NOTHING;

-- name: insert_trigger_journal
-- Record a trigger a run waits for, with the attempt that made it (ignored if already journaled).
INSERT INTO journal (run_id, key, value, waitpoint_id, attempt, created_at)
VALUES (:run_id, :key, :value, :waitpoint_id, :attempt, :now)
ON CONFLICT (run_id, key) DO NOTHING;

-- name: replace_trigger_journal
-- A retry triggered the failed children of a journaled trigger again: the entry answers with them.
UPDATE journal SET value = :value, waitpoint_id = :waitpoint_id, attempt = :attempt, created_at = :now
WHERE run_id = :run_id AND key = :key;

-- name: insert_step_journal
-- Record the result of a step with when it began (ignored if the call is already journaled).
INSERT INTO journal (run_id, key, value, waitpoint_id, started_at, created_at)
VALUES (:run_id, :key, :value, NULL, :started_at, :now)
ON CONFLICT (run_id, key) DO NOTHING;

-- name: get_journal_entry
-- One journal entry of a run.
SELECT * FROM journal WHERE run_id = :run_id AND key = :key;

-- name: journal_for_runs
-- The journals of several runs, with the state of the waitpoints their entries wait on.
SELECT j.run_id, j.key, j.value, j.waitpoint_id, w.status AS waitpoint_status, w.result AS waitpoint_result,
       w.kind AS waitpoint_kind, w.complete_at AS waitpoint_complete_at, j.attempt, j.created_at,
       w.completed_at AS waitpoint_completed_at
FROM journal j LEFT JOIN waitpoints w ON w.id = j.waitpoint_id
WHERE j.run_id IN (:ids) ORDER BY j.created_at;

-- name: trace_journal
-- A run's journal for its trace: each call with when it began and ended, and its waitpoint's state.
SELECT j.key, j.value, j.waitpoint_id, j.started_at, j.created_at, w.kind AS waitpoint_kind,
       w.status AS waitpoint_status, w.complete_at AS waitpoint_complete_at, w.completed_at AS waitpoint_completed_at
FROM journal j LEFT JOIN waitpoints w ON w.id = j.waitpoint_id
WHERE j.run_id = :run_id ORDER BY j.created_at, j.key LIMIT :limit;

-- name: child_runs
-- The runs a run triggered, oldest first, as its trace shows them.
SELECT id, task_id, status, batch_id, created_at, started_at, completed_at FROM runs
WHERE parent_id = :parent_id ORDER BY id LIMIT :limit;

-- name: insert_run_wait
-- A suspended run waits on a waitpoint.
INSERT INTO run_waits (run_id, waitpoint_id) VALUES (:run_id, :waitpoint_id) ON CONFLICT DO NOTHING;

-- name: waits_of_run
-- What a suspended run waits on.
SELECT w.id, w.kind, w.status, w.complete_at, w.run_count, w.done_count
FROM run_waits rw JOIN waitpoints w ON w.id = rw.waitpoint_id WHERE rw.run_id = :run_id ORDER BY w.id;

-- name: delete_run_waits
-- Forget what a run waited on.
DELETE FROM run_waits WHERE run_id = :run_id;

-- name: runs_waiting_on
-- Runs suspended on any of these waitpoints.
SELECT DISTINCT run_id FROM run_waits WHERE waitpoint_id IN (:ids);

-- name: token_waiters
-- The runs of an environment suspended on each of some waitpoints, oldest first.
SELECT rw.waitpoint_id, r.id, r.task_id, r.status FROM run_waits rw JOIN runs r ON r.id = rw.run_id
WHERE rw.waitpoint_id IN (:ids) AND r.env_id = :env_id ORDER BY r.id;

-- name: pending_waits_of_run
-- How many of the waitpoints a suspended run waits on are still pending.
SELECT COUNT(*) AS n FROM run_waits rw JOIN waitpoints w ON w.id = rw.waitpoint_id
WHERE rw.run_id = :run_id AND w.status = 'PENDING';

-- name: suspend_run
-- Suspend an executing run: it gives back its slot and its worker.
UPDATE runs SET status = 'WAITING', worker_id = NULL, compute_used = :compute_used, updated_at = :now
WHERE id = :id AND status = 'EXECUTING';

-- name: resume_run
-- Queue a suspended run again; its next lease continues the same attempt.
UPDATE runs SET status = 'QUEUED', resuming = 1, available_at = :now, updated_at = :now
WHERE id = :id AND status = 'WAITING';

-- name: unfinished_children
-- Children of a run that have not ended (to cancel them: on PostgreSQL, locked).
SELECT * FROM runs WHERE parent_id = :parent_id
  AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELED', 'CRASHED', 'SYSTEM_FAILURE', 'TIMED_OUT', 'EXPIRED');

-- name: unfinished_children [postgres]
SELECT * FROM runs WHERE parent_id = :parent_id
  AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELED', 'CRASHED', 'SYSTEM_FAILURE', 'TIMED_OUT', 'EXPIRED')
ORDER BY id FOR UPDATE;

-- name: get_setting
-- A platform setting.
SELECT value FROM settings WHERE name = :name;

-- name: put_setting
-- Store a platform setting unless it exists.
INSERT INTO settings (name, value) VALUES (:name, :value) ON CONFLICT (name) DO NOTHING;
