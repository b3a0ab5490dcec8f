-- The fire times a firing has claimed and not yet given their run: read back in the same
-- transaction (conveyor/engine/schedules.py), so the index holds only those few rows.
CREATE INDEX schedule_fires_claims ON schedule_fires (env_id, created_at)
    WHERE run_id IS NULL AND outcome = 'triggered';
