-- Incremental aggregates of a project's answers (rater activity, agreement): the dashboard and
-- the agreement report read one kept tally instead of every response. Every stored response
-- is queued here by a trigger, in the transaction that stores it, so no way of writing a
-- response can be missed (response ids are not committed in id order, so a queue rather than
-- a high-water mark); the tally runner folds queued responses into `tallies` and deletes them
-- from the queue in one transaction.
CREATE TABLE tally_queue (
    response_id BIGINT PRIMARY KEY,
    project_id BIGINT NOT NULL,
    item_id BIGINT NOT NULL
);
CREATE INDEX tally_queue_by_item ON tally_queue(project_id, item_id);
ALTER TABLE tally_queue SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);

CREATE FUNCTION queue_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tally_queue (response_id, project_id, item_id)
    VALUES (NEW.id, NEW.project_id, NEW.item_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER responses_tallied AFTER INSERT ON responses
FOR EACH ROW EXECUTE FUNCTION queue_tally();

-- One tally per project: `version` grows with every fold, so two folds never both apply.
CREATE TABLE tallies (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id),
    version BIGINT NOT NULL,
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Responses stored before this migration are tallied like new ones.
INSERT INTO tally_queue (response_id, project_id, item_id)
SELECT id, project_id, item_id FROM responses;

-- A project's items by (responses, settled), kept by triggers in the transaction of every
-- change, so its progress (complete, in progress, untouched at any overlap) is read from a
-- few rows rather than by counting every item. Each connection adds to rows of its own
-- `shard`, so concurrent answers do not queue on one row; readers sum the shards.
CREATE TABLE item_counts (
    project_id BIGINT NOT NULL,
    responses INTEGER NOT NULL,
    settled BOOLEAN NOT NULL,
    shard SMALLINT NOT NULL,
    items BIGINT NOT NULL,
    PRIMARY KEY (project_id, responses, settled, shard)
);

CREATE FUNCTION count_item(project BIGINT, answered INTEGER, closed BOOLEAN, delta BIGINT)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO item_counts (project_id, responses, settled, shard, items)
    VALUES (project, answered, closed, pg_backend_pid() % 16, delta)
    ON CONFLICT (project_id, responses, settled, shard)
    DO UPDATE SET items = item_counts.items + excluded.items;
$$;

-- Imports insert thousands of rows per statement: one grouped upsert per statement.
CREATE FUNCTION count_inserted_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO item_counts (project_id, responses, settled, shard, items)
    SELECT project_id, responses, settled, pg_backend_pid() % 16, COUNT(*)
    FROM inserted GROUP BY project_id, responses, settled
    ON CONFLICT (project_id, responses, settled, shard)
    DO UPDATE SET items = item_counts.items + excluded.items;
    RETURN NULL;
END;
$$;
CREATE TRIGGER items_counted_on_insert AFTER INSERT ON items
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_items();

-- An answer or a settling changes one item: a row trigger, and only when the counts move (a
-- lease taken or given back changes neither column).
CREATE FUNCTION count_changed_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM count_item(OLD.project_id, OLD.responses, OLD.settled, -1);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        PERFORM count_item(NEW.project_id, NEW.responses, NEW.settled, 1);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER items_counted_on_update AFTER UPDATE OF responses, settled ON items
FOR EACH ROW WHEN (OLD.responses <> NEW.responses OR OLD.settled <> NEW.settled)
EXECUTE FUNCTION count_changed_item();
CREATE TRIGGER items_counted_on_delete AFTER DELETE ON items
FOR EACH ROW EXECUTE FUNCTION count_changed_item();

INSERT INTO item_counts (project_id, responses, settled, shard, items)
SELECT project_id, responses, settled, 0, COUNT(*) FROM items GROUP BY project_id, responses, settled;
