-- The task modules of an environment's worker code that failed to import at its last load
-- (a JSON list of {file, line, error}, NULL when all imported): the dashboard shows them, and
-- a trigger of a task they would have defined says why it is missing.
ALTER TABLE environments ADD COLUMN load_failures TEXT;
