-- Named queries of usage (see queries.sql for the form; engine/usage.py).

-- name: usage_by_task
-- The compute seconds of an environment's attempts that ended in a period, per task and machine.
SELECT r.task_id, r.machine, SUM(a.compute_seconds) AS compute_seconds, COUNT(*) AS attempts,
       COUNT(DISTINCT a.run_id) AS runs
FROM attempts a JOIN runs r ON r.id = a.run_id
WHERE r.env_id = :env_id AND a.completed_at >= :since AND a.completed_at < :until
GROUP BY r.task_id, r.machine
ORDER BY compute_seconds DESC, r.task_id, r.machine;

-- name: usage_runs
-- How many runs had attempts end in a period (a run counts once, however many tasks it spans).
SELECT COUNT(DISTINCT a.run_id) AS runs
FROM attempts a JOIN runs r ON r.id = a.run_id
WHERE r.env_id = :env_id AND a.completed_at >= :since AND a.completed_at < :until;
