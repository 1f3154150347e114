-- Dynamic overlap: an item stops taking answers once its consensus is confident enough after
-- `min_overlap` answers (it is then `settled`), and otherwise up to `overlap` answers.
ALTER TABLE projects ADD COLUMN min_overlap INTEGER;
ALTER TABLE projects ADD COLUMN target_confidence REAL;
ALTER TABLE items ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
