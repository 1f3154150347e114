-- Model evaluation: registered models, their answers to prompt items, and the battles built
-- from those answers (which model is behind each side of a pairwise item; never shown to
-- raters).
CREATE TABLE models (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    base_url TEXT,
    model_id TEXT,
    api_key_env TEXT,
    parameters TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);

CREATE TABLE generations (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    item_id BIGINT NOT NULL REFERENCES items(id),
    model TEXT NOT NULL,
    output TEXT,
    error TEXT,
    latency_ms BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    attempts BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    UNIQUE (item_id, model)
);
CREATE INDEX generations_by_project ON generations(project_id, model);

CREATE TABLE battles (
    item_id BIGINT PRIMARY KEY REFERENCES items(id),
    project_id BIGINT NOT NULL REFERENCES projects(id),
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    prompt_item_id BIGINT REFERENCES items(id)
);
CREATE INDEX battles_by_project ON battles(project_id);
