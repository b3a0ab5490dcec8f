-- Accounts: organizations own projects, users belong to organizations and act through personal
-- access tokens, and each project has the environments dev, staging, prod and preview-<branch>.
-- Secrets are never stored: tokens and keys are kept as their sha256.

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,                  -- org_...
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,                  -- usr_...
    name       TEXT NOT NULL UNIQUE,
    is_admin   INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE memberships (
    org_id     TEXT NOT NULL REFERENCES organizations (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL,                     -- owner | member
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,                  -- the project ref (proj_...), what environments.project holds
    org_id     TEXT NOT NULL REFERENCES organizations (id),
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (org_id, slug)
);

CREATE TABLE personal_access_tokens (
    token_hash TEXT PRIMARY KEY,                  -- sha256 of the token (cv_pat_...)
    user_id    TEXT NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,                     -- first characters, to recognise a token in listings
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX personal_access_tokens_by_user ON personal_access_tokens (user_id);

ALTER TABLE environments ADD COLUMN branch TEXT;                                -- preview: the branch it serves
ALTER TABLE environments ADD COLUMN key_version INTEGER NOT NULL DEFAULT 0;     -- raised by each key rotation
CREATE INDEX api_keys_by_env ON api_keys (env_id);

-- Environments made before accounts existed (by `conveyor dev`) get a project row each, in a
-- default organization, so every environment belongs to a project.
INSERT INTO organizations (id, slug, name, created_at)
SELECT 'org_default', 'default', 'Default', MIN(created_at) FROM environments HAVING COUNT(*) > 0;

INSERT INTO projects (id, org_id, slug, name, created_at)
SELECT project, 'org_default', project, project, MIN(created_at) FROM environments GROUP BY project;
