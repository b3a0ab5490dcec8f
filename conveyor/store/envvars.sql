-- Named queries of environment variables (see queries.sql for the form; engine/envvars.py).

-- name: list_env_vars
-- An environment's variables by name, with their encrypted values.
SELECT name, ciphertext, digest, created_at, updated_at FROM env_vars
WHERE env_id = :env_id ORDER BY name;

-- name: count_env_vars
-- How many variables an environment has.
SELECT COUNT(*) AS n FROM env_vars WHERE env_id = :env_id;

-- name: upsert_env_var
-- Set a variable's encrypted value (its creation time stays that of its first value).
INSERT INTO env_vars (env_id, name, ciphertext, digest, created_at, updated_at)
VALUES (:env_id, :name, :ciphertext, :digest, :now, :now)
ON CONFLICT (env_id, name) DO UPDATE SET ciphertext = excluded.ciphertext,
    digest = excluded.digest, updated_at = excluded.updated_at;

-- name: delete_env_var
-- Remove a variable; returns it (its name and hash) if it existed.
DELETE FROM env_vars WHERE env_id = :env_id AND name = :name
RETURNING name, digest, created_at, updated_at;

-- name: bump_env_vars_version
-- Count a change of an environment's variables (workers' next attempts take the new values).
UPDATE environments SET env_vars_version = env_vars_version + 1 WHERE id = :env_id
RETURNING env_vars_version;

-- name: env_vars_version
-- The count of changes of an environment's variables.
SELECT env_vars_version FROM environments WHERE id = :env_id;
