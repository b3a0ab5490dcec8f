-- Debounced runs: the key a DELAYED run gathers triggers under, and the latest it may start
-- (its first trigger + max_delay; NULL: no bound).
ALTER TABLE runs ADD COLUMN debounce_key TEXT;
ALTER TABLE runs ADD COLUMN debounce_deadline DOUBLE PRECISION;
CREATE INDEX runs_debounce ON runs (env_id, task_id, debounce_key) WHERE debounce_key IS NOT NULL;
