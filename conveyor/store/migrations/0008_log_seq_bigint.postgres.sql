-- A log line's seq starts at the attempt segment's clock in nanoseconds (see sdk/context.py):
-- it needs 64 bits. SQLite's INTEGER already has them; PostgreSQL's is 32 bits.
ALTER TABLE logs ALTER COLUMN seq TYPE BIGINT;
