-- Named queries of deployments: versions of the task code, the current one, and runs waiting
-- for a version (engine/deployments.py; see queries.sql for the form).

-- name: count_versions_of_day
-- How many versions of an environment carry a date prefix (to number the next one).
SELECT COUNT(*) AS n FROM deployments WHERE env_id = :env_id AND version LIKE :prefix;

-- name: insert_deployment
-- Record a deployed version.
INSERT INTO deployments (id, env_id, version, status, tasks, bundle_sha256, bundle_size, lock_sha256, details, created_at)
VALUES (:id, :env_id, :version, 'DEPLOYED', :tasks, :bundle_sha256, :bundle_size, :lock_sha256, :details, :now);

-- name: insert_deployment_bundle
-- Store a version's bundle.
INSERT INTO deployment_bundles (deployment_id, data) VALUES (:deployment_id, :data);

-- name: get_deployment
-- One version of an environment, with whether it is current.
SELECT d.*, e.slug AS environment, CASE WHEN e.current_version = d.version THEN 1 ELSE 0 END AS is_current
FROM deployments d JOIN environments e ON e.id = d.env_id WHERE d.env_id = :env_id AND d.version = :version;

-- name: list_deployments
-- A page of an environment's versions, newest first.
SELECT d.*, e.slug AS environment, CASE WHEN e.current_version = d.version THEN 1 ELSE 0 END AS is_current
FROM deployments d JOIN environments e ON e.id = d.env_id
WHERE d.env_id = :env_id AND (:cursor IS NULL OR d.created_at < :cursor)
ORDER BY d.created_at DESC, d.version DESC LIMIT :limit;

-- name: get_deployment_bundle
-- A version's bundle.
SELECT b.data, d.version, d.bundle_sha256, d.lock_sha256 FROM deployments d
JOIN deployment_bundles b ON b.deployment_id = d.id WHERE d.env_id = :env_id AND d.version = :version;

-- name: set_current_version
-- Make a version the one new runs start on.
UPDATE environments SET current_version = :version WHERE id = :id;

-- name: mark_promoted
-- When a version last became current.
UPDATE deployments SET promoted_at = :now WHERE env_id = :env_id AND version = :version;

-- name: pending_version_runs
-- An environment's runs waiting for a version that defines their task, among these tasks.
SELECT * FROM runs WHERE env_id = :env_id AND status = 'PENDING_VERSION' AND task_id IN (:task_ids) LIMIT 10000;

-- name: resolve_pending_run
-- A version defines the task of a PENDING_VERSION run: it takes the task's settings and waits in its queue.
UPDATE runs SET status = :status, queue = :queue, max_attempts = :max_attempts, retry = :retry,
       max_duration = :max_duration, machine = :machine, hooks = :hooks, ttl = :ttl, expires_at = :expires_at,
       trigger_options = NULL, updated_at = :now
WHERE id = :id AND status = 'PENDING_VERSION';

-- name: strand_unstarted_runs
-- The current version no longer defines these runs' tasks: runs that have not started wait for one that does.
UPDATE runs SET status = 'PENDING_VERSION', updated_at = :now
WHERE env_id = :env_id AND status IN ('QUEUED', 'DELAYED') AND version IS NULL AND task_id NOT IN (:keep);

-- name: next_due_time
-- When the next delayed run is due and the next duration or token timeout completes.
SELECT (SELECT MIN(available_at) FROM runs WHERE status = 'DELAYED') AS delayed_at,
       (SELECT MIN(complete_at) FROM waitpoints
        WHERE status = 'PENDING' AND complete_at IS NOT NULL) AS wait_at;
