-- Evaluation standards: which projects ran which standard (by its hash), and the instance's
-- own settings (its report-signing key).
CREATE TABLE standard_runs (
    id BIGSERIAL PRIMARY KEY,
    hash TEXT NOT NULL,
    prompts_project_id BIGINT NOT NULL REFERENCES projects(id),
    battles_project_id BIGINT NOT NULL REFERENCES projects(id),
    models TEXT NOT NULL,
    -- The standard holds its items out: their text is never exported.
    private BOOLEAN NOT NULL DEFAULT FALSE,
    -- The standard itself (its spec and items, as JSON), so it can be reported from here.
    standard TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX standard_runs_by_hash ON standard_runs(hash, id);

CREATE TABLE instance_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
