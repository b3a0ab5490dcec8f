-- Rate limits: at most rate_limit starts of a queue in any window of rate_period seconds (per
-- concurrency key when runs have one). NULL: no rate limit.
ALTER TABLE queues ADD COLUMN rate_limit INTEGER;
ALTER TABLE queues ADD COLUMN rate_period DOUBLE PRECISION;
-- Weights of concurrency keys (a JSON object, key -> weight; keys not named weigh 1).
ALTER TABLE queues ADD COLUMN weights TEXT;
-- The queue's virtual clock for weighted round-robin across concurrency keys: the turn of the
-- latest start. A key that had no runs takes its turns from here, not from where it left off.
ALTER TABLE queues ADD COLUMN vclock DOUBLE PRECISION NOT NULL DEFAULT 0;

-- The starts of rate-limited queues within their window (older rows are pruned as leases go):
-- counted in the transaction that starts runs, so a limit holds across workers and servers.
-- bucket: the concurrency key, '' for runs without one.
CREATE TABLE queue_starts (
    env_id     TEXT NOT NULL,
    queue      TEXT NOT NULL,
    bucket     TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX queue_starts_window ON queue_starts (env_id, queue, bucket, started_at);

-- Each concurrency key's place in its queue's round-robin: the turn of its latest start. Only
-- keys ahead of the queue's clock need a row (a key at or behind it is simply "at the clock").
CREATE TABLE queue_key_turns (
    env_id TEXT NOT NULL,
    queue  TEXT NOT NULL,
    bucket TEXT NOT NULL,
    turn   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (env_id, queue, bucket)
);

-- Startable runs of one concurrency key in score order, and the keys of a queue that have any
-- (only queued runs with a key are in it: runs without one never pay for it).
CREATE INDEX runs_keyed_dequeue ON runs (env_id, queue, concurrency_key, score, available_at)
    WHERE status = 'QUEUED' AND concurrency_key IS NOT NULL;
