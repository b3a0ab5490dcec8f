-- The attempt that journaled a trigger a run waits for: a later attempt (a retry) triggers the
-- children that failed again instead of replaying their failure. NULL for entries made before
-- this column, and for other calls.
ALTER TABLE journal ADD COLUMN attempt INTEGER;
