-- Indexes that keep hot queries independent of history: counting executing runs per queue
-- (every lease), listing runs by status, and finding queued runs past their ttl (every tick).
CREATE INDEX runs_env_status_queue ON runs (env_id, status, queue, concurrency_key);
CREATE INDEX runs_env_status_id ON runs (env_id, status, id);
CREATE INDEX runs_expiry ON runs (expires_at) WHERE status = 'QUEUED' AND expires_at IS NOT NULL;
