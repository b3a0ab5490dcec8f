-- Schedules: cron expressions that trigger a scheduled task. Declarative ones come from the code
-- (`@schedules.task(cron=...)`, kept in step at every load and deploy, one per task); imperative
-- ones are made through the API, per customer (`external_id`), idempotent by
-- `deduplication_key`. `next_at` is the next fire time (epoch seconds, exact to the second).
CREATE TABLE schedules (
    id                TEXT PRIMARY KEY,
    env_id            TEXT NOT NULL REFERENCES environments (id),
    task_id           TEXT NOT NULL,
    kind              TEXT NOT NULL,              -- DECLARATIVE or IMPERATIVE
    cron              TEXT NOT NULL,              -- five fields, shorthands expanded
    timezone          TEXT NOT NULL,
    external_id       TEXT,
    deduplication_key TEXT,
    active            INTEGER NOT NULL DEFAULT 1,
    catch_up          TEXT NOT NULL,              -- latest or none
    overlap           TEXT NOT NULL,              -- allow or skip
    next_at           DOUBLE PRECISION,           -- NULL: never fires again
    last_at           DOUBLE PRECISION,           -- the last time it fired
    last_run_id       TEXT,
    created_at        DOUBLE PRECISION NOT NULL,
    updated_at        DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX schedules_dedup ON schedules (env_id, deduplication_key)
    WHERE deduplication_key IS NOT NULL;
CREATE UNIQUE INDEX schedules_declared ON schedules (env_id, task_id) WHERE kind = 'DECLARATIVE';
CREATE INDEX schedules_due ON schedules (next_at) WHERE active = 1;
CREATE INDEX schedules_list ON schedules (env_id, created_at, id);
CREATE INDEX schedules_by_external ON schedules (env_id, external_id) WHERE external_id IS NOT NULL;

-- One row per (schedule, fire time): the row that makes a fire happen exactly once, however
-- many servers tick, and the history of what each fire did (the run it made, or why none).
CREATE TABLE schedule_fires (
    schedule_id TEXT NOT NULL,
    fire_at     DOUBLE PRECISION NOT NULL,
    env_id      TEXT NOT NULL,
    run_id      TEXT,
    outcome     TEXT NOT NULL,                    -- triggered, skipped or error
    message     TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (schedule_id, fire_at)
);
