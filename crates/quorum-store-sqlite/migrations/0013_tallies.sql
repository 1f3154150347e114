-- Incremental aggregates of a project's answers (rater activity, agreement): the dashboard and
-- the agreement report read one kept tally instead of every response. Every stored response
-- is queued here by a trigger, in the transaction that stores it, so no way of writing a
-- response can be missed; the tally runner folds queued responses into `tallies` and deletes
-- them from the queue in one transaction.
CREATE TABLE tally_queue (
    response_id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL,
    item_id INTEGER NOT NULL
);
CREATE INDEX tally_queue_by_item ON tally_queue(project_id, item_id);

CREATE TRIGGER responses_tallied AFTER INSERT ON responses
BEGIN
    INSERT INTO tally_queue (response_id, project_id, item_id)
    VALUES (NEW.id, NEW.project_id, NEW.item_id);
END;

-- One tally per project: `version` grows with every fold, so two folds never both apply.
CREATE TABLE tallies (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id),
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Responses stored before this migration are tallied like new ones.
INSERT INTO tally_queue (response_id, project_id, item_id)
SELECT id, project_id, item_id FROM responses;

-- A project's items by (responses, settled), kept by triggers in the transaction of every
-- change, so its progress (complete, in progress, untouched at any overlap) is read from a
-- few rows rather than by counting every item.
CREATE TABLE item_counts (
    project_id INTEGER NOT NULL,
    responses INTEGER NOT NULL,
    settled INTEGER NOT NULL,
    items INTEGER NOT NULL,
    PRIMARY KEY (project_id, responses, settled)
) WITHOUT ROWID;

CREATE TRIGGER items_counted_on_insert AFTER INSERT ON items
BEGIN
    INSERT INTO item_counts (project_id, responses, settled, items)
    VALUES (NEW.project_id, NEW.responses, NEW.settled, 1)
    ON CONFLICT (project_id, responses, settled) DO UPDATE SET items = items + 1;
END;

CREATE TRIGGER items_counted_on_update AFTER UPDATE OF responses, settled ON items
WHEN OLD.responses <> NEW.responses OR OLD.settled <> NEW.settled
BEGIN
    UPDATE item_counts SET items = items - 1
    WHERE project_id = OLD.project_id AND responses = OLD.responses AND settled = OLD.settled;
    INSERT INTO item_counts (project_id, responses, settled, items)
    VALUES (NEW.project_id, NEW.responses, NEW.settled, 1)
    ON CONFLICT (project_id, responses, settled) DO UPDATE SET items = items + 1;
END;

CREATE TRIGGER items_counted_on_delete AFTER DELETE ON items
BEGIN
    UPDATE item_counts SET items = items - 1
    WHERE project_id = OLD.project_id AND responses = OLD.responses AND settled = OLD.settled;
END;

INSERT INTO item_counts (project_id, responses, settled, items)
SELECT project_id, responses, settled, COUNT(*) FROM items GROUP BY project_id, responses, settled;
