-- Named queries of schedules (see queries.sql for the form).

-- name: insert_schedule
-- Create a schedule.
INSERT INTO schedules (id, env_id, task_id, kind, cron, timezone, external_id, deduplication_key,
                       active, catch_up, overlap, next_at, created_at, updated_at)
VALUES (:id, :env_id, :task_id, :kind, :cron, :timezone, :external_id, :deduplication_key,
        :active, :catch_up, :overlap, :next_at, :now, :now);

-- name: get_schedule
-- One schedule of an environment.
SELECT * FROM schedules WHERE env_id = :env_id AND id = :id;

-- name: find_schedule_by_dedup
-- The schedule holding a deduplication key in an environment.
SELECT * FROM schedules WHERE env_id = :env_id AND deduplication_key = :key;

-- name: declared_schedules
-- The schedules an environment's code declares (one per scheduled task with a cron).
SELECT * FROM schedules WHERE env_id = :env_id AND kind = 'DECLARATIVE';

-- name: list_schedules
-- A page of an environment's schedules, newest first, with optional filters; :cursor is the id
-- the previous page ended at (NULL: the first page).
SELECT * FROM schedules
WHERE env_id = :env_id
  AND (:task_id IS NULL OR task_id = :task_id)
  AND (:external_id IS NULL OR external_id = :external_id)
  AND (:kind IS NULL OR kind = :kind)
  AND (:active IS NULL OR active = :active)
  AND (:cursor IS NULL OR id < :cursor)
ORDER BY id DESC LIMIT :limit;

-- name: update_schedule
-- Change what a schedule fires and when.
UPDATE schedules SET task_id = :task_id, cron = :cron, timezone = :timezone,
       external_id = :external_id, catch_up = :catch_up, overlap = :overlap, active = :active,
       next_at = :next_at, updated_at = :now
WHERE id = :id;

-- name: delete_schedule
-- Remove a schedule (its fires stay as history of the runs it made).
DELETE FROM schedules WHERE id = :id;

-- name: environments_with_due_schedules
-- Environments with an active schedule due by :horizon; a dev environment only while one of its
-- workers is alive (schedules of dev fire only while `conveyor dev` runs).
SELECT DISTINCT s.env_id FROM schedules s JOIN environments e ON e.id = s.env_id
WHERE s.active = 1 AND s.next_at <= :horizon
  AND (e.kind <> 'dev' OR EXISTS (
        SELECT 1 FROM workers w
        WHERE w.env_id = s.env_id AND w.stopped_at IS NULL AND w.heartbeat_at > :alive_after));

-- name: due_schedules
-- An environment's active schedules to fire now: due by :now, or by :horizon when a run made
-- ahead of its time may wait for it (overlap allowed).
SELECT * FROM schedules
WHERE env_id = :env_id AND active = 1 AND next_at <= :horizon
  AND (overlap = 'allow' OR next_at <= :now)
ORDER BY next_at, id LIMIT :limit;

-- name: next_schedule_times
-- The earliest next fire time of the active schedules, of those that may be fired ahead of
-- time (allow) and of those that may not (skip).
SELECT (SELECT MIN(next_at) FROM schedules WHERE active = 1 AND overlap = 'allow') AS allow_at,
       (SELECT MIN(next_at) FROM schedules WHERE active = 1 AND overlap = 'skip') AS skip_at;

-- name: insert_schedule_fire
-- Claim a (schedule, fire time): 0 rows when it was claimed before, by this server or another.
INSERT INTO schedule_fires (schedule_id, fire_at, env_id, run_id, outcome, message, created_at)
VALUES (:schedule_id, :fire_at, :env_id, :run_id, :outcome, :message, :now)
ON CONFLICT DO NOTHING;

-- name: set_fire_run
-- The run a claimed fire made.
UPDATE schedule_fires SET run_id = :run_id, outcome = 'triggered'
WHERE schedule_id = :schedule_id AND fire_at = :fire_at;

-- name: advance_schedule
-- Move a schedule past a fire time (:last_at and :last_run_id: the time and run, when it made one).
UPDATE schedules SET next_at = :next_at, last_at = COALESCE(:last_at, last_at),
       last_run_id = COALESCE(:last_run_id, last_run_id)
WHERE id = :id;

-- name: fires_claimed_now
-- The fire times an environment's firing claimed in this transaction (its clock reading).
SELECT schedule_id, fire_at FROM schedule_fires
WHERE env_id = :env_id AND created_at = :now AND outcome = 'triggered' AND run_id IS NULL;

-- name: schedule_fires
-- A schedule's latest fires, newest first, with the status of each one's run.
SELECT f.*, r.status AS run_status FROM schedule_fires f LEFT JOIN runs r ON r.id = f.run_id
WHERE f.schedule_id = :schedule_id ORDER BY f.fire_at DESC LIMIT :limit;

-- name: runs_waiting_for_fire_time
-- Runs a schedule made ahead of a fire time that has not come yet.
SELECT f.fire_at, r.* FROM schedule_fires f JOIN runs r ON r.id = f.run_id
WHERE f.schedule_id = :schedule_id AND f.fire_at > :now AND r.status = 'DELAYED';

-- name: delete_schedule_fire
-- Forget a fire whose run was canceled before its time, so the time may fire again.
DELETE FROM schedule_fires WHERE schedule_id = :schedule_id AND fire_at = :fire_at;

-- name: last_fire_with_run
-- The latest fire of a schedule that made a run.
SELECT fire_at, run_id FROM schedule_fires
WHERE schedule_id = :schedule_id AND outcome = 'triggered' AND run_id IS NOT NULL
ORDER BY fire_at DESC LIMIT 1;

-- name: set_schedule_last_fire
-- A schedule's last fire time and run, set again after runs made ahead were canceled.
UPDATE schedules SET last_at = :last_at, last_run_id = :run_id WHERE id = :id;

-- name: forget_old_fires_without_runs
-- Drop a schedule's skipped and failed fires older than :before (history without a run).
DELETE FROM schedule_fires
WHERE schedule_id = :schedule_id AND fire_at < :before AND outcome <> 'triggered';
