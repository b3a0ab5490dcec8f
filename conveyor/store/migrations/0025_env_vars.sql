-- Environment variables and secrets of an environment (conveyor/engine/envvars.py): each value
-- encrypted with the server's secrets key (Fernet), never stored or shown in clear; `digest`
-- is the start of the value's sha256, so a person can tell two values apart without seeing
-- either. `env_vars_version` counts an environment's changes: a lease hands its attempts the
-- values of the version it read, so a change reaches the attempts that start after it.
CREATE TABLE env_vars (
    env_id     TEXT NOT NULL REFERENCES environments (id),
    name       TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    digest     TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (env_id, name)
);
ALTER TABLE environments ADD COLUMN env_vars_version INTEGER NOT NULL DEFAULT 0;
