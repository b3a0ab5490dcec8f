-- Named queries of accounts: organizations, users, personal access tokens, projects and
-- environment keys (engine/accounts.py; see queries.sql for the form).

-- name: count_admins
-- How many admin users exist.
SELECT COUNT(*) AS n FROM users WHERE is_admin = 1;

-- name: insert_organization
-- Create an organization unless one has the slug.
INSERT INTO organizations (id, slug, name, created_at) VALUES (:id, :slug, :name, :now)
ON CONFLICT (slug) DO NOTHING;

-- name: find_organization
-- One organization by slug.
SELECT * FROM organizations WHERE slug = :slug;

-- name: insert_user
-- Create a user unless one has the name.
INSERT INTO users (id, name, is_admin, created_at) VALUES (:id, :name, :is_admin, :now)
ON CONFLICT (name) DO NOTHING;

-- name: insert_membership
-- Make a user a member of an organization.
INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (:org_id, :user_id, :role, :now)
ON CONFLICT (org_id, user_id) DO NOTHING;

-- name: organizations_of_user
-- The organizations a user belongs to, with the user's role in each.
SELECT o.id, o.slug, o.name, o.created_at, m.role FROM memberships m JOIN organizations o ON o.id = m.org_id
WHERE m.user_id = :user_id ORDER BY o.slug;

-- name: insert_personal_access_token
-- Store a personal access token's hash.
INSERT INTO personal_access_tokens (token_hash, user_id, name, prefix, created_at)
VALUES (:token_hash, :user_id, :name, :prefix, :now);

-- name: revoke_personal_access_tokens
-- Revoke every live personal access token of a user with this name.
UPDATE personal_access_tokens SET revoked_at = :now WHERE user_id = :user_id AND name = :name AND revoked_at IS NULL;

-- name: user_for_token
-- The user of a live personal access token.
SELECT u.* FROM personal_access_tokens t JOIN users u ON u.id = t.user_id
WHERE t.token_hash = :token_hash AND t.revoked_at IS NULL;

-- name: user_for_session
-- The user of a live dashboard session: the session is open and its token is not revoked.
SELECT u.* FROM dashboard_sessions s
JOIN personal_access_tokens t ON t.token_hash = s.token_hash
JOIN users u ON u.id = t.user_id
WHERE s.id = :id AND s.token_hash = :token_hash AND s.expires_at > :now AND t.revoked_at IS NULL;

-- name: insert_dashboard_session
-- A dashboard session of a personal access token (by its hash), open until it expires.
INSERT INTO dashboard_sessions (id, token_hash, created_at, expires_at)
VALUES (:id, :token_hash, :now, :expires_at);

-- name: delete_dashboard_session
-- Log out of a dashboard session.
DELETE FROM dashboard_sessions WHERE id = :id;

-- name: delete_expired_dashboard_sessions
-- Dashboard sessions past their expiry.
DELETE FROM dashboard_sessions WHERE expires_at <= :now;

-- name: find_admin
-- The first admin user.
SELECT * FROM users WHERE is_admin = 1 ORDER BY created_at, id LIMIT 1;

-- name: insert_project
-- Create a project unless its organization has one with the slug.
INSERT INTO projects (id, org_id, slug, name, created_at) VALUES (:id, :org_id, :slug, :name, :now)
ON CONFLICT (org_id, slug) DO NOTHING;

-- name: adopt_project
-- Give an environment's project a row in an organization if it has none (`conveyor dev`).
INSERT INTO projects (id, org_id, slug, name, created_at) VALUES (:id, :org_id, :id, :id, :now)
ON CONFLICT DO NOTHING;

-- name: projects_of_user
-- Every project of the organizations a user belongs to, oldest first.
SELECT p.*, o.slug AS org_slug FROM projects p
JOIN organizations o ON o.id = p.org_id JOIN memberships m ON m.org_id = p.org_id
WHERE m.user_id = :user_id ORDER BY p.created_at, p.id;

-- name: find_project_of_user
-- A project by ref or slug among those of a user's organizations.
SELECT p.*, o.slug AS org_slug FROM projects p
JOIN organizations o ON o.id = p.org_id JOIN memberships m ON m.org_id = p.org_id
WHERE m.user_id = :user_id AND (p.id = :ref OR p.slug = :ref) ORDER BY p.created_at, p.id;

-- name: insert_project_environment
-- Create an environment of a project unless it has one with the slug.
INSERT INTO environments (id, project, slug, kind, branch, created_at) VALUES (:id, :project, :slug, :kind, :branch, :now)
ON CONFLICT (project, slug) DO NOTHING;

-- name: environments_of_project
-- Every environment of a project.
SELECT * FROM environments WHERE project = :project ORDER BY created_at, slug;

-- name: raise_key_version
-- Move an environment to its next secret key.
UPDATE environments SET key_version = key_version + 1 WHERE id = :id;

-- name: revoke_environment_keys
-- Revoke every live key of an environment.
UPDATE api_keys SET revoked_at = :now WHERE env_id = :env_id AND revoked_at IS NULL;
