-- Accounts, projects, items, leases and responses. Times are Unix milliseconds; JSON is TEXT
-- (parsed by the application, as on SQLite).
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    instructions TEXT NOT NULL DEFAULT '',
    schema TEXT NOT NULL,
    overlap INTEGER NOT NULL CHECK (overlap >= 1),
    lease_seconds BIGINT NOT NULL CHECK (lease_seconds >= 1),
    locale_policy TEXT NOT NULL DEFAULT 'any',
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    locales TEXT NOT NULL DEFAULT '[]',
    skills TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id, project_id);

CREATE TABLE items (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    external_id TEXT,
    fields TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    locale TEXT,
    locale_key TEXT,
    language_key TEXT,
    category TEXT,
    suggestions TEXT,
    gold TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    responses INTEGER NOT NULL DEFAULT 0,
    active_leases INTEGER NOT NULL DEFAULT 0,
    open BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, external_id)
);
CREATE INDEX items_open ON items(project_id, priority DESC, id) WHERE open;

CREATE TABLE leases (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    item_id BIGINT NOT NULL REFERENCES items(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    UNIQUE (item_id, user_id)
);
CREATE INDEX leases_live ON leases(project_id, state, expires_at);
CREATE INDEX leases_by_user ON leases(user_id, project_id, state);

CREATE TABLE responses (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    item_id BIGINT NOT NULL REFERENCES items(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    lease_id BIGINT NOT NULL UNIQUE REFERENCES leases(id),
    answers TEXT NOT NULL,
    time_spent_ms BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX responses_by_project ON responses(project_id, id);
