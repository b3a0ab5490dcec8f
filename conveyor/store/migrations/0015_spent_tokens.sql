-- One-use trigger tokens that were used: one row per token (its `jti`), written in the
-- transaction that made the token's run, so a token triggers once however many servers share the
-- database. A row is kept until its token expires, when the token could not be used anyway.
CREATE TABLE spent_tokens (
    id          TEXT PRIMARY KEY,
    env_id      TEXT NOT NULL REFERENCES environments (id),
    expires_at  DOUBLE PRECISION NOT NULL,
    spent_at    DOUBLE PRECISION NOT NULL
);
CREATE INDEX spent_tokens_expiry ON spent_tokens (expires_at);
