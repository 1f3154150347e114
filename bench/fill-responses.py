#!/usr/bin/env python3
"""Fills a stopped Quorum's SQLite database with COUNT more answered items in a project that
`quorum bench` made (one label question, its raters as members), far faster than the rater loop
(whose speed `quorum bench` measures on its own): for exports at ten million responses.

Each new item is answered ANSWERS times (default 1), by the project's annotators in turn, the
way the rater loop leaves it — a lease in state `submitted` per answer, the responses, the
item's counters, open when ANSWERS is below the project's overlap — each answer the item's "true" option 70% of the time and one drawn at random
otherwise, a time spent from 0.3 to 20 s, and timestamps a few milliseconds apart. Usage:

    bench/fill-responses.py DATABASE.sqlite3 PROJECT_ID COUNT [ANSWERS]
"""

import json
import sqlite3
import sys
import time


def main() -> None:
    path, project, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    per_item = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    (schema, overlap) = db.execute(
        "SELECT schema, overlap FROM projects WHERE id = ?", (project,)
    ).fetchone()
    # Below the project's overlap an item stays open: the rater loop can run on the project.
    still_open = int(per_item < overlap)
    question = json.loads(schema)["questions"][0]
    options = question["options"]
    raters = [
        r for (r,) in db.execute(
            "SELECT user_id FROM members WHERE project_id = ? AND role = 'annotator' ORDER BY user_id",
            (project,),
        )
    ]
    if not raters:
        sys.exit("the project has no annotators: make it with `quorum bench --raters N` first")
    db.execute("CREATE TEMP TABLE raters (slot INTEGER PRIMARY KEY, user_id INTEGER)")
    db.executemany("INSERT INTO raters VALUES (?, ?)", list(enumerate(raters)))
    db.execute("CREATE TEMP TABLE options (slot INTEGER PRIMARY KEY, answers TEXT)")
    db.executemany(
        "INSERT INTO options VALUES (?, ?)",
        [(i, json.dumps({question["name"]: o}, separators=(",", ":"))) for i, o in enumerate(options)],
    )
    item_base = db.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0]
    lease_base = db.execute("SELECT COALESCE(MAX(id), 0) FROM leases").fetchone()[0]
    if per_item > len(raters):
        sys.exit(f"{per_item} answers per item need as many annotators; the project has {len(raters)}")
    now = int(time.time() * 1000)
    started = time.time()
    numbers = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})"
    # Answer j of item i is lease and response (i - 1) * per_item + j, by the annotator in slot
    # (i + j) mod raters; it agrees with the item's "true" option 70% of the time.
    answers = f"""{numbers}, a(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM a WHERE j + 1 < {per_item})"""
    with db:
        db.execute(
            f"""{numbers}
            INSERT INTO items (id, project_id, external_id, fields, responses, open, created_at)
            SELECT {item_base} + i, ?, 'fill' || i,
                   '{{"text":"benchmark item number ' || i || '"}}', {per_item}, {still_open}, ? FROM n""",
            (project, now),
        )
        db.execute(
            f"""{answers}
            INSERT INTO leases (id, project_id, item_id, user_id, created_at, expires_at, state)
            SELECT {lease_base} + (i - 1) * {per_item} + j + 1, ?, {item_base} + i,
                   (SELECT user_id FROM raters WHERE slot = (i + j) % {len(raters)}),
                   ? + i * 3, ? + i * 3 + 600000, 'submitted' FROM n, a""",
            (project, now, now),
        )
        db.execute(
            f"""{answers}
            INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, created_at)
            SELECT ?, {item_base} + i, (SELECT user_id FROM raters WHERE slot = (i + j) % {len(raters)}),
                   {lease_base} + (i - 1) * {per_item} + j + 1,
                   (SELECT answers FROM options WHERE slot =
                        CASE WHEN abs(random()) % 10 < 7 THEN i % {len(options)}
                             ELSE abs(random()) % {len(options)} END),
                   300 + abs(random()) % 19700, ? + i * 3 + 1000 + j FROM n, a""",
            (project, now),
        )
    total = db.execute("SELECT COUNT(*) FROM responses WHERE project_id = ?", (project,)).fetchone()[0]
    print(f"added {count} items answered {per_item} times in {time.time() - started:.0f}s; the project has {total} responses")


if __name__ == "__main__":
    main()
