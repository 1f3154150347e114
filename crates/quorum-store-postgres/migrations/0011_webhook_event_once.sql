-- Events that must be recorded once whatever asks twice (a standard's report signed: every
-- request for it signs it again) carry a key; the first one wins.
ALTER TABLE webhook_events ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX webhook_events_once ON webhook_events(once_key) WHERE once_key IS NOT NULL;
