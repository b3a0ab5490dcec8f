-- When a journaled call began, for the trace: a step's answer is journaled when it ends, so
-- without this its span would have no length. NULL for calls that answer at once (and for
-- entries journaled before this column existed); the trace then uses created_at.
ALTER TABLE journal ADD COLUMN started_at DOUBLE PRECISION;
