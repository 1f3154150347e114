-- Webhook subscriptions, the outbox of events (written in the transaction of the change that
-- causes them, only when a subscription wants them) and one delivery per (event, subscription).
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    project_id INTEGER REFERENCES projects(id),
    url TEXT NOT NULL,
    -- The event kinds, as a JSON array of strings.
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_until INTEGER,
    created_by INTEGER REFERENCES users(id),
    created_at INTEGER NOT NULL,
    failing_since INTEGER
);
CREATE INDEX webhooks_by_project ON webhooks(project_id);

CREATE TABLE webhook_events (
    id INTEGER PRIMARY KEY,
    project_id INTEGER REFERENCES projects(id),
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL REFERENCES webhook_events(id),
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    runner TEXT,
    last_status INTEGER,
    last_error TEXT,
    last_latency_ms INTEGER,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook_id, id);
