-- When a token's idempotency key stops holding (its idempotency_key_ttl); NULL: never.
ALTER TABLE waitpoints ADD COLUMN idempotency_expires_at DOUBLE PRECISION;
