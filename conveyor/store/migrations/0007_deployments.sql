-- Deploys: versions of a project's task code in an environment, the version that is current,
-- and the version each run is locked to once it starts.
CREATE TABLE deployments (
    id            TEXT PRIMARY KEY,
    env_id        TEXT NOT NULL REFERENCES environments (id),
    version       TEXT NOT NULL,                  -- YYYYMMDD.N: N counts that day's deploys of the environment
    status        TEXT NOT NULL,                  -- DEPLOYED
    tasks         TEXT NOT NULL,                  -- [TaskDefinition] as JSON: what the version defines
    bundle_sha256 TEXT NOT NULL,
    bundle_size   INTEGER NOT NULL,
    lock_sha256   TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}',     -- the deploying machine's Python, Conveyor, git, as JSON
    created_at    DOUBLE PRECISION NOT NULL,
    promoted_at   DOUBLE PRECISION,
    UNIQUE (env_id, version)
);

-- The bundles themselves, in the database so that every server over it can hand them out.
CREATE TABLE deployment_bundles (
    deployment_id TEXT PRIMARY KEY REFERENCES deployments (id),
    data          BYTEA NOT NULL                  -- the tar.gz (SQLite keeps it as a BLOB)
);

ALTER TABLE environments ADD COLUMN current_version TEXT;  -- NULL: nothing deployed (dev, or not yet)
ALTER TABLE runs ADD COLUMN version TEXT;                  -- set when the run starts in a deployed environment
ALTER TABLE runs ADD COLUMN trigger_options TEXT;          -- a PENDING_VERSION run's options, applied once a version defines its task
ALTER TABLE workers ADD COLUMN deployed INTEGER NOT NULL DEFAULT 0;  -- runs deployed versions, not its own code

CREATE INDEX runs_pending_version ON runs (env_id, task_id) WHERE status = 'PENDING_VERSION';
