-- Accounts, projects, items, leases and responses. Times are Unix milliseconds; JSON is TEXT.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    instructions TEXT NOT NULL DEFAULT '',
    schema TEXT NOT NULL,
    overlap INTEGER NOT NULL CHECK (overlap >= 1),
    lease_seconds INTEGER NOT NULL CHECK (lease_seconds >= 1),
    locale_policy TEXT NOT NULL DEFAULT 'any',
    created_at INTEGER NOT NULL
);

CREATE TABLE members (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    locales TEXT NOT NULL DEFAULT '[]',
    skills TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id, project_id);

CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    external_id TEXT,
    fields TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    locale TEXT,
    -- Lower-cased locale and its primary language, for routing.
    locale_key TEXT,
    language_key TEXT,
    category TEXT,
    suggestions TEXT,
    gold TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    responses INTEGER NOT NULL DEFAULT 0,
    active_leases INTEGER NOT NULL DEFAULT 0,
    -- 1 while responses + active_leases < the project's overlap.
    open INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, external_id)
);
CREATE INDEX items_open ON items(project_id, priority DESC, id) WHERE open = 1;

CREATE TABLE leases (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    item_id INTEGER NOT NULL REFERENCES items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    -- A rater is never given the same item twice.
    UNIQUE (item_id, user_id)
);
CREATE INDEX leases_live ON leases(project_id, state, expires_at);
CREATE INDEX leases_by_user ON leases(user_id, project_id, state);

CREATE TABLE responses (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    item_id INTEGER NOT NULL REFERENCES items(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    lease_id INTEGER NOT NULL UNIQUE REFERENCES leases(id),
    answers TEXT NOT NULL,
    time_spent_ms INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX responses_by_project ON responses(project_id, id);
