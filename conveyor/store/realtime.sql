-- Realtime: run metadata, tags and streams a run's code writes, and what subscribers read
-- (conveyor/engine/metadata.py, durable.py's streams, server/realtime.py).

-- name: run_families
-- The parent and root of runs whose code changes their metadata.
SELECT id, parent_id, root_id FROM runs WHERE id IN (:ids) AND env_id = :env_id;

-- name: lock_runs_by_ids
-- Runs whose metadata a worker's flushes change, children before their parents (ids sort by
-- creation), the order in which every transaction locks a run and its parent; the columns
-- metadata needs, not the payload and output.
SELECT id, env_id, status, worker_id, fence, parent_id, root_id, metadata, tags, metadata_seq
FROM runs WHERE id IN (:ids) AND env_id = :env_id ORDER BY id DESC;

-- name: lock_runs_by_ids [postgres]
SELECT id, env_id, status, worker_id, fence, parent_id, root_id, metadata, tags, metadata_seq
FROM runs WHERE id IN (:ids) AND env_id = :env_id ORDER BY id DESC FOR UPDATE;

-- name: set_run_metadata
-- A run's metadata, changed by its code or a backend.
UPDATE runs SET metadata = :metadata, updated_at = :now WHERE id = :id;

-- name: set_run_tags
-- A run's tags, added to by its code.
UPDATE runs SET tags = :tags, updated_at = :now WHERE id = :id;

-- name: set_metadata_seq
-- The highest metadata op of a run's code applied so far.
UPDATE runs SET metadata_seq = :seq WHERE id = :id;

-- name: stream_state
-- How many chunks a run's stream holds, their size, and whether it ended.
SELECT COUNT(chunk) AS chunks, COALESCE(SUM(LENGTH(chunk)), 0) AS bytes, MAX(done) AS ended
FROM run_streams WHERE run_id = :run_id AND name = :name;

-- name: insert_stream_chunk
-- One chunk of a run's stream.
INSERT INTO run_streams (run_id, name, seq, chunk, done, created_at)
VALUES (:run_id, :name, :seq, :chunk, 0, :now);

-- name: end_stream
-- The end of a run's stream.
INSERT INTO run_streams (run_id, name, seq, chunk, done, created_at)
VALUES (:run_id, :name, :seq, NULL, 1, :now);

-- name: stream_chunks
-- A run's stream from chunk :after + 1 on, in order (the end row last).
SELECT seq, chunk, done FROM run_streams
WHERE run_id = :run_id AND name = :name AND seq > :after ORDER BY seq LIMIT :limit;

-- name: run_streams
-- The streams a run wrote, in the order it began them: chunks stored and whether each ended.
SELECT name, COUNT(chunk) AS chunks, MAX(done) AS ended, MIN(created_at) AS began
FROM run_streams WHERE run_id = :run_id GROUP BY name ORDER BY began, name;

-- name: batch_runs_changed_since
-- Runs of a batch changed after :since, oldest change first.
SELECT * FROM runs WHERE env_id = :env_id AND batch_id = :batch_id AND updated_at > :since
ORDER BY updated_at, id LIMIT :limit;

-- name: tagged_runs_changed_since
-- Runs carrying a tag (:tag is a LIKE pattern of its JSON text) changed after :since.
SELECT * FROM runs WHERE env_id = :env_id AND tags LIKE :tag AND updated_at > :since
ORDER BY updated_at, id LIMIT :limit;

-- name: batch_progress
-- How many runs a batch has, and how many of them have ended.
SELECT COUNT(*) AS total, SUM(CASE WHEN status IN (:finals) THEN 1 ELSE 0 END) AS ended
FROM runs WHERE env_id = :env_id AND batch_id = :batch_id;

-- name: run_stamps
-- When each of several runs last changed.
SELECT id, updated_at FROM runs WHERE id IN (:ids);
