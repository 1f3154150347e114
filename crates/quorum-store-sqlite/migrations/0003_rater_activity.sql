-- Per-rater activity (dashboard, rater home) counts a rater's responses in a project.
CREATE INDEX responses_by_user ON responses(user_id, project_id, created_at);
