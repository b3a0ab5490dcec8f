-- What the server's metrics read when they are scraped (conveyor/engine/gauges.py): the runs
-- that have not ended, the queues and the live workers, across every environment.

-- name: gauge_environments
-- Every environment with its project: the labels of the metrics.
SELECT id, project, slug FROM environments ORDER BY project, slug;

-- name: gauge_runs
-- The runs of an environment that have not ended, counted by task, queue and status.
SELECT task_id, queue, status, COUNT(*) AS n FROM runs
WHERE env_id = :env_id
  AND status IN ('PENDING_VERSION', 'DELAYED', 'QUEUED', 'DEQUEUED', 'EXECUTING', 'WAITING')
GROUP BY task_id, queue, status;

-- name: gauge_queues
-- The queues of an environment with the concurrency limit in force.
SELECT name, COALESCE(override_limit, concurrency_limit) AS concurrency_limit, paused
FROM queues WHERE env_id = :env_id;

-- name: gauge_workers
-- Workers that have not stopped and were not declared lost, by environment.
SELECT env_id, COUNT(*) AS n FROM workers WHERE stopped_at IS NULL GROUP BY env_id;
