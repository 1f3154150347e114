-- Quality control in the loop: a project's rules, gold scores, rater standing with its audit
-- log, qualifications by skill, and reviews.
ALTER TABLE projects ADD COLUMN quality TEXT NOT NULL DEFAULT '{}';
-- Whether the answer matched the gold, when the item had one, scored as it was stored.
ALTER TABLE responses ADD COLUMN gold_correct BOOLEAN;
CREATE INDEX items_gold ON items(project_id, id) WHERE gold IS NOT NULL;

CREATE TABLE rater_states (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    paused TEXT,
    reinstated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE rater_events (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    change TEXT NOT NULL,
    actor_id BIGINT REFERENCES users(id),
    at BIGINT NOT NULL
);
CREATE INDEX rater_events_by_project ON rater_events(project_id, id);

CREATE TABLE qualifications (
    user_id BIGINT NOT NULL REFERENCES users(id),
    skill TEXT NOT NULL,
    passed BOOLEAN NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (user_id, skill)
);

CREATE TABLE reviews (
    response_id BIGINT PRIMARY KEY REFERENCES responses(id),
    project_id BIGINT NOT NULL REFERENCES projects(id),
    item_id BIGINT NOT NULL REFERENCES items(id),
    rater_id BIGINT NOT NULL REFERENCES users(id),
    reviewer_id BIGINT NOT NULL REFERENCES users(id),
    verdict TEXT NOT NULL,
    answers TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX reviews_by_rater ON reviews(project_id, rater_id);
