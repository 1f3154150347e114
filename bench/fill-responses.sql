-- The PostgreSQL twin of bench/fill-responses.py: adds COUNT answered items to a project that
-- `quorum bench` made (one label question, its raters as members), each answered PER_ITEM
-- times by the project's annotators in turn — a lease in state `submitted` per answer, the
-- responses, the item's counters, open when PER_ITEM is below the project's overlap — each answer the item's "true" option 70% of the time and
-- one drawn at random otherwise, a time spent from 0.3 to 20 s. Through plain SQL in one
-- transaction, so the triggers (tally queue, item counts) run as they do for the server. Usage:
--
--   psql -v project=1 -v count=9998000 -v per_item=3 -f bench/fill-responses.sql DATABASE_URL
\set ON_ERROR_STOP on
\timing on
BEGIN;
SET LOCAL synchronous_commit = off;
CREATE TEMP TABLE raters AS
    SELECT (row_number() OVER (ORDER BY user_id) - 1)::int AS slot, user_id
    FROM members WHERE project_id = :project AND role = 'annotator';
CREATE TEMP TABLE options AS
    SELECT (o.n - 1)::int AS slot, json_build_object(q.question->>'name', o.value)::text AS answers
    FROM projects p,
         LATERAL (SELECT p.schema::json->'questions'->0 AS question) q,
         LATERAL json_array_elements_text(q.question->'options') WITH ORDINALITY o(value, n)
    WHERE p.id = :project;
SELECT count(*) AS raters FROM raters \gset
SELECT count(*) AS options FROM options \gset
SELECT COALESCE(max(id), 0) AS item_base FROM items \gset
SELECT COALESCE(max(id), 0) AS lease_base FROM leases \gset
SELECT (extract(epoch FROM now()) * 1000)::bigint AS now \gset
-- Below the project's overlap an item stays open: the rater loop can run on the project.
SELECT CASE WHEN :per_item < overlap THEN 'true' ELSE 'false' END AS still_open
FROM projects WHERE id = :project \gset
INSERT INTO items (id, project_id, external_id, fields, responses, open, created_at)
SELECT :item_base + i, :project, 'fill' || i,
       '{"text":"benchmark item number ' || i || '"}', :per_item, :still_open, :now
FROM generate_series(1, :count) i;
INSERT INTO leases (id, project_id, item_id, user_id, created_at, expires_at, state)
SELECT :lease_base + (i - 1) * :per_item + j + 1, :project, :item_base + i, r.user_id,
       :now + i * 3, :now + i * 3 + 600000, 'submitted'
FROM generate_series(1, :count) i CROSS JOIN generate_series(0, :per_item - 1) j
JOIN raters r ON r.slot = (i + j) % :raters;
INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, created_at)
SELECT :project, a.item_id, a.user_id, a.id, o.answers, a.time_spent_ms, a.created_at
FROM (
    -- OFFSET 0 keeps the draws here: one option per answer, not one test per option.
    SELECT l.item_id, l.user_id, l.id, 300 + (random() * 19700)::int AS time_spent_ms,
           l.created_at + 1000 + (l.id - :lease_base) % :per_item AS created_at,
           CASE WHEN random() < 0.7 THEN ((l.item_id - :item_base) % :options)::int
                ELSE floor(random() * :options)::int END AS slot
    FROM leases l WHERE l.id > :lease_base OFFSET 0
) a
JOIN options o ON o.slot = a.slot;
SELECT setval(pg_get_serial_sequence('items', 'id'), (SELECT max(id) FROM items));
SELECT setval(pg_get_serial_sequence('leases', 'id'), (SELECT max(id) FROM leases));
COMMIT;
SELECT count(*) AS responses FROM responses WHERE project_id = :project;
