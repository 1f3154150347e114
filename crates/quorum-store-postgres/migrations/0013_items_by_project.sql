-- Reading a project's items in id order, a page at a time (exports, consensus, reports), by an
-- index rather than a walk of the primary key past every other project's items.
CREATE INDEX items_by_project ON items(project_id, id);
