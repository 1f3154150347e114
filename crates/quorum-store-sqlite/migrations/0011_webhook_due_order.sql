-- Due deliveries are claimed in (next_attempt_at, id) order: an index in that order finds the
-- next one without sorting the backlog.
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at, id) WHERE state = 'pending';
