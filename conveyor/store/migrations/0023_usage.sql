-- Usage: the compute seconds of each attempt (the time it held a slot: from each start or resume
-- to its end or suspension, waits excluded), and of each run over its attempts. segment_started_at
-- is when the attempt last started or resumed. attempts_completed_at serves the usage of a period.
ALTER TABLE runs ADD COLUMN segment_started_at DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN compute_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN compute_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX attempts_completed_at ON attempts (completed_at);
