-- Accounts can be disabled; tokens (and web sessions) can expire and record their last use.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
CREATE INDEX api_tokens_by_user ON api_tokens(user_id, id);
