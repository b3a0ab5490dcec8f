-- Durable execution: waitpoints a run can wait on, the journal of each run's durable calls,
-- and which runs are suspended on which waitpoints.

CREATE TABLE waitpoints (
    id               TEXT PRIMARY KEY,
    env_id           TEXT NOT NULL REFERENCES environments (id),
    kind             TEXT NOT NULL,              -- duration | run | batch | token
    status           TEXT NOT NULL,              -- PENDING | COMPLETED | TIMED_OUT
    owner_run_id     TEXT,                       -- the run that created it (NULL for tokens made outside runs)
    complete_at      DOUBLE PRECISION,           -- duration: when it completes (token: its timeout)
    batch_id         TEXT,                       -- batch: the batch it waits for
    run_count        INTEGER NOT NULL DEFAULT 0, -- run, batch: how many runs it waits for
    done_count       INTEGER NOT NULL DEFAULT 0, -- run, batch: how many of them have ended
    idempotency_key  TEXT,                       -- token
    tags             TEXT NOT NULL DEFAULT '[]',
    result           TEXT,                       -- JSON once completed
    created_at       DOUBLE PRECISION NOT NULL,
    completed_at     DOUBLE PRECISION
);
CREATE INDEX waitpoints_due ON waitpoints (status, complete_at) WHERE complete_at IS NOT NULL;
CREATE INDEX waitpoints_by_env ON waitpoints (env_id, kind, id);
CREATE UNIQUE INDEX waitpoints_token_key ON waitpoints (env_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE waitpoint_runs (                    -- the runs a run or batch waitpoint waits for, in order
    waitpoint_id TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    run_id       TEXT NOT NULL,
    PRIMARY KEY (waitpoint_id, idx)
);
CREATE INDEX waitpoint_runs_by_run ON waitpoint_runs (run_id);

CREATE TABLE journal (
    run_id       TEXT NOT NULL,
    key          TEXT NOT NULL,                  -- kind:name#occurrence, e.g. step:charge-card#1
    value        TEXT,                           -- JSON result of a call answered at once
    waitpoint_id TEXT,                           -- or the waitpoint whose result is the answer
    created_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE run_waits (
    run_id       TEXT NOT NULL,
    waitpoint_id TEXT NOT NULL,
    PRIMARY KEY (run_id, waitpoint_id)
);
CREATE INDEX run_waits_by_waitpoint ON run_waits (waitpoint_id);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

ALTER TABLE runs ADD COLUMN resuming INTEGER NOT NULL DEFAULT 0;         -- next lease continues the attempt
ALTER TABLE runs ADD COLUMN compute_used DOUBLE PRECISION NOT NULL DEFAULT 0; -- seconds of the attempt so far
CREATE INDEX runs_by_batch ON runs (batch_id) WHERE batch_id IS NOT NULL;
