-- Dashboard sessions, kept on the server so that logging out ends a session for good: the
-- signed cookie names its row, and a cookie whose row is gone (logged out, expired, its token
-- revoked) is no session at all, even if a copy of it was kept.
CREATE TABLE dashboard_sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX dashboard_sessions_by_token ON dashboard_sessions (token_hash);
