-- Run metadata changed during a run: the ops of a run's code are numbered in the order the code
-- makes them, and `metadata_seq` is the highest applied, so a replay (which makes them again)
-- applies none twice.
ALTER TABLE runs ADD COLUMN metadata_seq INTEGER NOT NULL DEFAULT 0;

-- Streams a run writes (`streams.pipe`): chunks in order, stored as JSON text; a stream ends
-- with a row whose `done` is 1 (and no chunk).
CREATE TABLE run_streams (
    run_id     TEXT NOT NULL,
    name       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    chunk      TEXT,
    done       INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, name, seq)
);
-- what changed lately, for subscribers to a tag
CREATE INDEX runs_changes ON runs (env_id, updated_at);
