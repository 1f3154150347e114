-- Items, leases and responses change on every rater action. Completed items leave dead
-- entries at the head of the open-items index until VACUUM removes them, and `next` has to
-- step over every one of them: with PostgreSQL's default thresholds (20% of the table) that
-- made a sustained run slow down as it went. Vacuum and analyse these tables far more often,
-- and leave room on item pages so counter updates can stay on the same page (HOT updates).
ALTER TABLE items SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE leases SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE responses SET (autovacuum_analyze_scale_factor = 0.02);
