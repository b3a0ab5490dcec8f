-- Named queries of public access tokens (see queries.sql for the form). The secret signing them
-- is a platform setting (get_setting, put_setting).

-- name: spend_token
-- Mark a one-use token as used; changes no row when it was used already.
INSERT INTO spent_tokens (id, env_id, expires_at, spent_at)
VALUES (:id, :env_id, :expires_at, :now)
ON CONFLICT (id) DO NOTHING;

-- name: forget_spent_tokens
-- Forget used tokens that expired before :before (they are refused for their expiry).
DELETE FROM spent_tokens WHERE expires_at < :before;
