-- Fencing: every time a run is handed to a worker (a new attempt, or a suspended attempt
-- continuing) or taken away from one (canceled while executing, taken back from a silent
-- worker), its fence goes up. A worker's results, logs, hook reports and durable calls carry
-- the fence of the attempt they come from, and the engine accepts them only while it is the
-- run's fence: a stale attempt can never change its run.
ALTER TABLE runs ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
-- Which lease of its worker handed the run out (workers.lease_seq at the time).
ALTER TABLE runs ADD COLUMN lease_seq BIGINT NOT NULL DEFAULT 0;
-- Leases a worker was given, counted; a worker says in each heartbeat which it has received,
-- so a run handed out in a lease it received but no longer lists is known to be lost.
ALTER TABLE workers ADD COLUMN lease_seq BIGINT NOT NULL DEFAULT 0;
-- Leases up to this one were revoked when the worker was declared lost: a lease answer that
-- reaches the worker late must not start anything.
ALTER TABLE workers ADD COLUMN revoked_through BIGINT NOT NULL DEFAULT 0;
