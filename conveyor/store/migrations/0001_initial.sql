-- Conveyor schema, version 1. Portable SQL: the same text runs on SQLite and PostgreSQL.
-- Times are epoch seconds (DOUBLE PRECISION); JSON values are TEXT.

CREATE TABLE environments (
    id                TEXT PRIMARY KEY,
    project           TEXT NOT NULL,
    slug              TEXT NOT NULL,              -- dev, staging, prod, or preview-<branch>
    kind              TEXT NOT NULL,              -- dev | staging | prod | preview
    concurrency_limit INTEGER,                    -- cap on EXECUTING runs in the environment
    created_at        DOUBLE PRECISION NOT NULL,
    UNIQUE (project, slug)
);

CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,                  -- sha256 of the secret key (the key itself is never stored)
    env_id     TEXT NOT NULL REFERENCES environments (id),
    prefix     TEXT NOT NULL,                     -- first characters, to recognise a key in listings
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);

CREATE TABLE tasks (
    env_id     TEXT NOT NULL REFERENCES environments (id),
    task_id    TEXT NOT NULL,
    queue      TEXT NOT NULL,
    definition TEXT NOT NULL,                     -- TaskDefinition as JSON
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (env_id, task_id)
);

CREATE TABLE queues (
    env_id            TEXT NOT NULL REFERENCES environments (id),
    name              TEXT NOT NULL,
    concurrency_limit INTEGER,                    -- NULL: only the environment's limit applies
    paused            INTEGER NOT NULL DEFAULT 0,
    created_at        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (env_id, name)
);

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    env_id       TEXT NOT NULL REFERENCES environments (id),
    name         TEXT NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    stopped_at   DOUBLE PRECISION
);

CREATE TABLE batches (
    id         TEXT PRIMARY KEY,
    env_id     TEXT NOT NULL REFERENCES environments (id),
    task_id    TEXT,
    run_count  INTEGER NOT NULL,
    parent_id  TEXT,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE runs (
    id                     TEXT PRIMARY KEY,      -- time-ordered: sorting by id sorts by creation
    env_id                 TEXT NOT NULL REFERENCES environments (id),
    task_id                TEXT NOT NULL,
    status                 TEXT NOT NULL,
    payload                TEXT NOT NULL,
    output                 TEXT,
    error                  TEXT,
    queue                  TEXT NOT NULL,
    concurrency_key        TEXT,
    priority               DOUBLE PRECISION NOT NULL DEFAULT 0,
    score                  DOUBLE PRECISION NOT NULL,   -- queue order: available_at - priority
    available_at           DOUBLE PRECISION NOT NULL,   -- earliest start (delay, retry backoff)
    ttl                    DOUBLE PRECISION,            -- seconds it may stay queued
    expires_at             DOUBLE PRECISION,            -- queued-at + ttl, set when queued
    tags                   TEXT NOT NULL DEFAULT '[]',
    metadata               TEXT NOT NULL DEFAULT '{}',
    idempotency_key        TEXT,
    idempotency_expires_at DOUBLE PRECISION,
    max_attempts           INTEGER NOT NULL,
    retry                  TEXT NOT NULL,               -- RetryPolicy as JSON
    max_duration           DOUBLE PRECISION,
    machine                TEXT NOT NULL,
    hooks                  TEXT NOT NULL DEFAULT '',    -- hooks the task defines, comma separated
    attempt_count          INTEGER NOT NULL DEFAULT 0,
    worker_id              TEXT,                        -- worker holding the current attempt
    attempt_started_at     DOUBLE PRECISION,
    hook                   TEXT,                        -- lifecycle hook still to run
    hook_lease_until       DOUBLE PRECISION,
    parent_id              TEXT,
    root_id                TEXT,
    batch_id               TEXT,
    replayed_from          TEXT,
    created_at             DOUBLE PRECISION NOT NULL,
    started_at             DOUBLE PRECISION,
    completed_at           DOUBLE PRECISION,
    updated_at             DOUBLE PRECISION NOT NULL
);

CREATE INDEX runs_dequeue ON runs (env_id, queue, status, score);
CREATE INDEX runs_by_status ON runs (status, available_at);
CREATE INDEX runs_list ON runs (env_id, id);
CREATE INDEX runs_by_task ON runs (env_id, task_id, id);
CREATE UNIQUE INDEX runs_idempotency ON runs (env_id, task_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_worker ON runs (worker_id) WHERE worker_id IS NOT NULL;
CREATE INDEX runs_pending_hook ON runs (env_id, hook_lease_until) WHERE hook IS NOT NULL;
CREATE INDEX runs_by_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE attempts (
    run_id       TEXT NOT NULL,
    number       INTEGER NOT NULL,
    status       TEXT NOT NULL,                  -- COMPLETED | FAILED | CRASHED | TIMED_OUT | CANCELED | SYSTEM_FAILURE
    worker_id    TEXT,
    started_at   DOUBLE PRECISION NOT NULL,
    completed_at DOUBLE PRECISION NOT NULL,
    error        TEXT,
    PRIMARY KEY (run_id, number)
);

CREATE TABLE logs (
    run_id     TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    level      TEXT NOT NULL,
    message    TEXT NOT NULL,
    attributes TEXT,
    PRIMARY KEY (run_id, attempt, seq)
);
