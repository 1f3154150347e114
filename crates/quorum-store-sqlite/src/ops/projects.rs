//! Projects: the SQL of the projects context and the adapter of the `Projects` port.

use async_trait::async_trait;
use quorum_store::Projects;

use super::rows::*;
use super::*;
use crate::SqliteStore;

#[async_trait]
impl Projects for SqliteStore {
    async fn create_project(&self, project: NewProject, now: i64) -> Result<Project> {
        self.write(move |c| create_project(c, project, now)).await
    }
    async fn project(&self, id: i64) -> Result<Option<Project>> {
        self.readers.run(move |c| project(c, id)).await
    }
    async fn list_projects(
        &self,
        member: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Project>> {
        self.readers
            .run(move |c| list_projects(c, member, after, limit))
            .await
    }
    async fn upsert_member(&self, member: Member) -> Result<()> {
        self.write(move |c| upsert_member(c, member)).await
    }
    async fn member(&self, project_id: i64, user_id: i64) -> Result<Option<Member>> {
        self.readers
            .run(move |c| member(c, project_id, user_id))
            .await
    }
    async fn import_items(
        &self,
        project_id: i64,
        items: ItemBatch,
        now: i64,
    ) -> Result<ImportReport> {
        self.write(move |c| import_items(c, project_id, items, now))
            .await
    }
    async fn items(&self, project_id: i64, after: i64, limit: i64) -> Result<Vec<StoredItem>> {
        self.readers
            .run(move |c| items(c, project_id, after, limit))
            .await
    }
    async fn item(&self, id: i64) -> Result<Option<StoredItem>> {
        self.readers.run(move |c| item(c, id)).await
    }
    async fn stats(&self, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
        self.readers
            .run(move |c| stats(c, project_id, overlap, now))
            .await
    }
    async fn roster(&self, project_id: i64, responders: Vec<i64>) -> Result<Vec<RaterActivity>> {
        self.readers
            .run(move |c| {
                all(
                    c,
                    "SELECT u.id, u.name, 0 AS responses,
  (SELECT COUNT(*) FROM leases l WHERE l.user_id = u.id AND l.project_id = ?1 AND l.state = 'skipped') AS skips,
  NULL AS last_active,
  (SELECT m.role FROM members m WHERE m.user_id = u.id AND m.project_id = ?1) AS role
FROM users u
WHERE u.id IN (SELECT user_id FROM members WHERE project_id = ?1
               UNION SELECT value FROM json_each(?2))
ORDER BY u.name",
                    params![project_id, json_text(&responders)],
                    rater_activity_from,
                )
            })
            .await
    }
}

pub fn create_project(conn: &Connection, project: NewProject, now: i64) -> Result<Project> {
    let created = one(
        conn,
        "INSERT INTO projects (name, instructions, schema, overlap, lease_seconds, locale_policy,
         min_overlap, target_confidence, quality, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING *",
        params![
            project.name,
            project.instructions,
            json_text(&project.schema),
            project.overlap,
            project.lease_seconds,
            project.locale_policy.as_str(),
            project.min_overlap,
            project.target_confidence,
            json_text(&project.quality),
            now
        ],
        project_from,
    )?
    .ok_or(StoreError::NotFound("project"))?;
    upsert_member(
        conn,
        Member {
            project_id: created.id,
            user_id: project.created_by,
            role: Role::Manager,
            locales: vec![],
            skills: vec![],
        },
    )?;
    Ok(created)
}

pub fn project(conn: &Connection, id: i64) -> Result<Option<Project>> {
    one(
        conn,
        "SELECT * FROM projects WHERE id = ?1",
        [id],
        project_from,
    )
}

pub fn list_projects(
    conn: &Connection,
    member: Option<i64>,
    after: i64,
    limit: i64,
) -> Result<Vec<Project>> {
    match member {
        None => all(
            conn,
            "SELECT * FROM projects WHERE id > ?1 ORDER BY id LIMIT ?2",
            [after, limit],
            project_from,
        ),
        Some(user) => all(
            conn,
            "SELECT p.* FROM projects p JOIN members m ON m.project_id = p.id
             WHERE m.user_id = ?1 AND p.id > ?2 ORDER BY p.id LIMIT ?3",
            [user, after, limit],
            project_from,
        ),
    }
}

pub fn upsert_member(conn: &Connection, member: Member) -> Result<()> {
    execute(
        conn,
        "INSERT INTO members (project_id, user_id, role, locales, skills) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role, locales = excluded.locales,
         skills = excluded.skills",
        params![member.project_id, member.user_id, member.role.as_str(), json_text(&member.locales), json_text(&member.skills)],
    )?;
    Ok(())
}

pub fn member(conn: &Connection, project_id: i64, user_id: i64) -> Result<Option<Member>> {
    one(
        conn,
        "SELECT * FROM members WHERE project_id = ?1 AND user_id = ?2",
        [project_id, user_id],
        member_from,
    )
}

pub fn import_items(
    conn: &Connection,
    project_id: i64,
    items: ItemBatch,
    now: i64,
) -> Result<ImportReport> {
    scalar::<i64>(conn, "SELECT id FROM projects WHERE id = ?1", [project_id])?
        .ok_or(StoreError::NotFound("project"))?;
    let mut report = ImportReport::default();
    for item in items.iter() {
        let (locale_key, language_key) = locale_keys(item.locale);
        let existing: Option<i64> = match item.external_id {
            Some(external) => scalar(
                conn,
                "SELECT id FROM items WHERE project_id = ?1 AND external_id = ?2",
                params![project_id, external],
            )?,
            None => None,
        };
        if let Some(id) = existing {
            execute(
                conn,
                "UPDATE items SET fields = ?1, metadata = ?2, locale = ?3, locale_key = ?4, language_key = ?5,
                 category = ?6, suggestions = ?7, gold = ?8, priority = ?9 WHERE id = ?10",
                params![
                    item.fields,
                    item.metadata,
                    item.locale,
                    locale_key,
                    language_key,
                    item.category,
                    item.suggestions,
                    item.gold,
                    item.priority,
                    id
                ],
            )?;
            report.updated += 1;
        } else {
            execute(
                conn,
                "INSERT INTO items (project_id, external_id, fields, metadata, locale, locale_key, language_key,
                 category, suggestions, gold, priority, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    project_id,
                    item.external_id,
                    item.fields,
                    item.metadata,
                    item.locale,
                    locale_key,
                    language_key,
                    item.category,
                    item.suggestions,
                    item.gold,
                    item.priority,
                    now
                ],
            )?;
            report.created += 1;
        }
    }
    Ok(report)
}

pub fn item(conn: &Connection, id: i64) -> Result<Option<StoredItem>> {
    one(conn, "SELECT * FROM items WHERE id = ?1", [id], item_from)
}

pub fn items(
    conn: &Connection,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredItem>> {
    all(
        conn,
        "SELECT * FROM items WHERE project_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        [project_id, after, limit],
        item_from,
    )
}

pub fn stats(conn: &Connection, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
    let counts = conn
        .prepare_cached(
            // From the kept counts (see the `item_counts` migration), not from every item.
            "SELECT COALESCE(SUM(items), 0),
                    COALESCE(SUM(items * (settled = 1 OR responses >= ?1)), 0),
                    COALESCE(SUM(items * (settled = 0 AND responses > 0 AND responses < ?1)), 0),
                    COALESCE(SUM(items * (responses = 0)), 0), COALESCE(SUM(items * responses), 0)
             FROM item_counts WHERE project_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![overlap, project_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
        })
        .map_err(database_error)?;
    let active: i64 = scalar(
        conn,
        "SELECT COUNT(*) FROM leases WHERE project_id = ?1 AND state = 'active' AND expires_at > ?2",
        [project_id, now],
    )?
    .unwrap_or(0);
    let raters: i64 = scalar(
        conn,
        // One probe of the (user, project) index per user, not a walk of every response.
        "SELECT COUNT(*) FROM users u
         WHERE EXISTS (SELECT 1 FROM responses r WHERE r.user_id = u.id AND r.project_id = ?1)",
        [project_id],
    )?
    .unwrap_or(0);
    Ok(ProjectStats {
        items: counts.0,
        items_complete: counts.1,
        items_in_progress: counts.2,
        items_untouched: counts.3,
        responses: counts.4,
        active_leases: active,
        raters,
    })
}
