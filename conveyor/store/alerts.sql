-- Named queries of alerts (see queries.sql for the form; engine/alerts.py).

-- name: insert_alert_channel
-- Add an alert channel to an environment.
INSERT INTO alert_channels (id, env_id, event, kind, target, secret, secret_hint, task_filter,
    queue_filter, backlog, backlog_for, group_window, created_at)
VALUES (:id, :env_id, :event, :kind, :target, :secret, :secret_hint, :task_filter,
    :queue_filter, :backlog, :backlog_for, :group_window, :now);

-- name: list_alert_channels
-- An environment's alert channels, oldest first.
SELECT * FROM alert_channels WHERE env_id = :env_id ORDER BY created_at, id;

-- name: count_alert_channels
-- How many alert channels an environment has.
SELECT COUNT(*) AS n FROM alert_channels WHERE env_id = :env_id;

-- name: get_alert_channel
-- One alert channel of an environment.
SELECT * FROM alert_channels WHERE env_id = :env_id AND id = :id;

-- name: alert_channel_by_id
-- One alert channel by id alone (a delivery being sent).
SELECT * FROM alert_channels WHERE id = :id;

-- name: delete_alert_channel
-- Remove an alert channel; returns it if it existed.
DELETE FROM alert_channels WHERE env_id = :env_id AND id = :id RETURNING *;

-- name: delete_alert_channel_deliveries
-- Remove what a deleted channel was owed.
DELETE FROM alert_deliveries WHERE channel_id = :channel_id;

-- name: delete_alert_channel_conditions
-- Forget what the tick knew of a deleted channel's condition.
DELETE FROM alert_conditions WHERE channel_id = :channel_id;

-- name: alert_channels_of_event
-- The channels of an environment that send one event.
SELECT * FROM alert_channels WHERE env_id = :env_id AND event = :event;

-- name: alert_condition_channels
-- Every channel of a condition event (queue backlog, fleet empty), in every environment.
SELECT * FROM alert_channels WHERE event IN ('queue.backlog', 'worker.fleet_empty')
ORDER BY id;

-- name: gather_run_failure
-- Count a failed run in its channel's open group of its task (made, when none is open, to be
-- sent at :send_at); the group keeps the first five run ids.
INSERT INTO alert_deliveries (id, channel_id, env_id, event, group_key, details, count, run_ids,
    status, attempts, next_at, first_at, last_at, created_at)
VALUES (:id, :channel_id, :env_id, 'run.failed', :group_key, :details, 1, :run_id,
    'gathering', 0, :send_at, :now, :now, :now)
ON CONFLICT (channel_id, group_key) WHERE status = 'gathering' DO UPDATE SET
    count = alert_deliveries.count + 1,
    run_ids = CASE WHEN alert_deliveries.count < 5
        THEN alert_deliveries.run_ids || ',' || excluded.run_ids
        ELSE alert_deliveries.run_ids END,
    last_at = excluded.last_at;

-- name: insert_alert_delivery
-- An alert owed to a channel, to send at :next_at.
INSERT INTO alert_deliveries (id, channel_id, env_id, event, group_key, details, count, run_ids,
    status, attempts, next_at, first_at, last_at, created_at)
VALUES (:id, :channel_id, :env_id, :event, :group_key, :details, :count, '', 'pending', 0,
    :next_at, :now, :now, :now);

-- name: claim_alert_deliveries
-- Take the deliveries that are due (a closed group, a retry whose time came, one a stopped
-- server had claimed) for this sender until :until; they stop gathering.
UPDATE alert_deliveries SET status = 'pending', claim = :claim, claimed_until = :until
WHERE id IN (
    SELECT id FROM alert_deliveries
    WHERE status IN ('gathering', 'pending') AND next_at <= :now
      AND (claimed_until IS NULL OR claimed_until < :now)
    ORDER BY next_at LIMIT :limit
)
RETURNING *;

-- name: claim_alert_deliveries [postgres]
UPDATE alert_deliveries SET status = 'pending', claim = :claim, claimed_until = :until
WHERE id IN (
    SELECT id FROM alert_deliveries
    WHERE status IN ('gathering', 'pending') AND next_at <= :now
      AND (claimed_until IS NULL OR claimed_until < :now)
    ORDER BY next_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: alert_delivered
-- Record that a claimed delivery was sent (only by the sender that still holds its claim).
UPDATE alert_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = :now,
    claim = NULL, claimed_until = NULL, last_error = NULL
WHERE id = :id AND claim = :claim AND status = 'pending';

-- name: alert_attempt_failed
-- Record a failed attempt of a claimed delivery: tried again at :next_at, or given up (:status
-- 'failed').
UPDATE alert_deliveries SET status = :status, attempts = attempts + 1, next_at = :next_at,
    claim = NULL, claimed_until = NULL, last_error = :error
WHERE id = :id AND claim = :claim AND status = 'pending';

-- name: list_alert_deliveries
-- An environment's latest alert deliveries, newest first.
SELECT * FROM alert_deliveries WHERE env_id = :env_id
ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: get_alert_delivery
-- One alert delivery of an environment.
SELECT * FROM alert_deliveries WHERE env_id = :env_id AND id = :id;

-- name: next_alert_delivery_time
-- When the next delivery a sender may claim is due (none claimed, or its claim lapsed).
SELECT MIN(next_at) AS next_at FROM alert_deliveries
WHERE status IN ('gathering', 'pending') AND (claimed_until IS NULL OR claimed_until < :now);

-- name: alert_queue_backlogs
-- The runs waiting in each queue of an environment (queued, ready to start).
SELECT queue, COUNT(*) AS n FROM runs
WHERE env_id = :env_id AND status = 'QUEUED' AND available_at <= :now
GROUP BY queue;

-- name: alert_live_workers
-- How many workers of an environment are alive (not stopped, heartbeating).
SELECT COUNT(*) AS n FROM workers
WHERE env_id = :env_id AND stopped_at IS NULL AND heartbeat_at >= :since;

-- name: alert_conditions_of_channel
-- What the tick knows of a channel's condition, by subject (a queue, or `fleet`).
SELECT subject, state, since FROM alert_conditions WHERE channel_id = :channel_id;

-- name: put_alert_condition
-- Remember a channel's condition for one subject.
INSERT INTO alert_conditions (channel_id, subject, state, since)
VALUES (:channel_id, :subject, :state, :since)
ON CONFLICT (channel_id, subject) DO UPDATE SET state = excluded.state, since = excluded.since;

-- name: clear_alert_condition
-- Forget a channel's condition for one subject (the queue is back under its threshold).
DELETE FROM alert_conditions WHERE channel_id = :channel_id AND subject = :subject;
