-- Background work any server may run (model runs, LLM judges): claimed for a lease of time
-- with FOR UPDATE SKIP LOCKED, claimed again when its runner's lease runs out.
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id BIGINT REFERENCES projects(id),
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    runner TEXT,
    lease_until BIGINT,
    error TEXT,
    created_by BIGINT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
-- One live job per key: a second start of the same work is refused on every server.
CREATE UNIQUE INDEX jobs_live_key ON jobs(key) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_claimable ON jobs(id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_project ON jobs(project_id, id);
