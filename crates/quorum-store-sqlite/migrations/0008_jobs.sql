-- Background work (model runs, LLM judges), claimed for a lease of time (the single writer
-- serialises claims) and claimed again when its runner's lease runs out (after a restart).
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id INTEGER REFERENCES projects(id),
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    runner TEXT,
    lease_until INTEGER,
    error TEXT,
    created_by INTEGER REFERENCES users(id),
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
-- One live job per key: a second start of the same work is refused on every server.
CREATE UNIQUE INDEX jobs_live_key ON jobs(key) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_claimable ON jobs(id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_project ON jobs(project_id, id);
