-- Alerts (conveyor/engine/alerts.py, docs/alerts.md): channels of an environment, the deliveries
-- owed to them, and what the tick remembers of conditions that last (a queue's backlog, the
-- fleet of workers).
--
-- A channel sends one event (`run.failed`, `deploy.succeeded`, `deploy.failed`, `queue.backlog`,
-- `worker.fleet_empty`) to a webhook, a Slack incoming webhook or an email address. `target` is
-- what may be shown (the URL, the address; for Slack a hint of its secret URL); `secret` is
-- encrypted with the server's secrets key (a webhook's signing secret, a Slack URL).
CREATE TABLE alert_channels (
    id           TEXT PRIMARY KEY,
    env_id       TEXT NOT NULL REFERENCES environments (id),
    event        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    target       TEXT NOT NULL,
    secret       TEXT,
    secret_hint  TEXT,
    task_filter  TEXT,
    queue_filter TEXT,
    backlog      INTEGER,
    backlog_for  DOUBLE PRECISION,
    group_window DOUBLE PRECISION NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX alert_channels_by_event ON alert_channels (env_id, event);

-- One alert owed to a channel. `gathering`: a run.failed group still counting failures of its
-- task until `next_at` (at most one per channel and task, the unique index); `pending`: to send
-- at `next_at`, by the server that claims it until `claimed_until`; then `delivered` or `failed`
-- (every attempt failed). `run_ids` holds the first few runs of a group, comma-separated.
CREATE TABLE alert_deliveries (
    id            TEXT PRIMARY KEY,
    channel_id    TEXT NOT NULL,
    env_id        TEXT NOT NULL,
    event         TEXT NOT NULL,
    group_key     TEXT NOT NULL,
    details       TEXT NOT NULL,
    count         INTEGER NOT NULL,
    run_ids       TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       DOUBLE PRECISION NOT NULL,
    claim         TEXT,
    claimed_until DOUBLE PRECISION,
    last_error    TEXT,
    first_at      DOUBLE PRECISION NOT NULL,
    last_at       DOUBLE PRECISION NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    delivered_at  DOUBLE PRECISION
);
CREATE UNIQUE INDEX alert_deliveries_gathering ON alert_deliveries (channel_id, group_key)
    WHERE status = 'gathering';
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at)
    WHERE status IN ('gathering', 'pending');
CREATE INDEX alert_deliveries_by_env ON alert_deliveries (env_id, created_at);
CREATE INDEX alert_deliveries_by_channel ON alert_deliveries (channel_id);

-- What a condition alert knows between ticks: for `queue.backlog` a queue above its threshold
-- since `since` (`above`) and already alerted (`alerted`); for `worker.fleet_empty` whether the
-- environment had workers (`up`) or the empty fleet was alerted (`empty`).
CREATE TABLE alert_conditions (
    channel_id TEXT NOT NULL,
    subject    TEXT NOT NULL,
    state      TEXT NOT NULL,
    since      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel_id, subject)
);
