//! Projects: the SQL of the projects context and the adapter of the `Projects` port.

use async_trait::async_trait;
use quorum_store::Projects;

use super::rows::*;
use super::*;
use crate::PgStore;

#[async_trait]
impl Projects for PgStore {
    async fn create_project(&self, project: NewProject, now: i64) -> Result<Project> {
        transaction!(self.pool, |conn| create_project(conn, project.clone(), now)
            .await)
    }
    async fn project(&self, id: i64) -> Result<Option<Project>> {
        project(&self.pool, id).await
    }
    async fn list_projects(
        &self,
        member: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Project>> {
        list_projects(&self.pool, member, after, limit).await
    }
    async fn upsert_member(&self, member: Member) -> Result<()> {
        transaction!(self.pool, |conn| upsert_member(conn, member.clone()).await)
    }
    async fn member(&self, project_id: i64, user_id: i64) -> Result<Option<Member>> {
        member(&self.pool, project_id, user_id).await
    }
    async fn import_items(
        &self,
        project_id: i64,
        items: ItemBatch,
        now: i64,
    ) -> Result<ImportReport> {
        // Imports touch only their own new rows: no retry, so the items are never copied.
        let mut tx = self.pool.begin().await.map_err(database_error)?;
        let report = import_items(&mut tx, project_id, items, now).await?;
        tx.commit().await.map_err(database_error)?;
        // A large import changes the table's shape at once; refresh the planner's statistics
        // now rather than when autovacuum gets round to it, so `next` keeps its index plans.
        if report.created + report.updated >= 1000 {
            sqlx::query("ANALYZE items")
                .execute(&self.pool)
                .await
                .map_err(database_error)?;
        }
        Ok(report)
    }
    async fn items(&self, project_id: i64, after: i64, limit: i64) -> Result<Vec<StoredItem>> {
        items(&self.pool, project_id, after, limit).await
    }
    async fn item(&self, id: i64) -> Result<Option<StoredItem>> {
        item(&self.pool, id).await
    }
    async fn stats(&self, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
        stats(&self.pool, project_id, overlap, now).await
    }
    async fn roster(&self, project_id: i64, responders: Vec<i64>) -> Result<Vec<RaterActivity>> {
        let rows = sqlx::query(
            "SELECT u.id, u.name, 0::BIGINT AS responses,
  (SELECT COUNT(*) FROM leases l WHERE l.user_id = u.id AND l.project_id = $1 AND l.state = 'skipped') AS skips,
  NULL::BIGINT AS last_active,
  (SELECT m.role FROM members m WHERE m.user_id = u.id AND m.project_id = $1) AS role
FROM users u
WHERE u.id IN (SELECT user_id FROM members WHERE project_id = $1
               UNION SELECT unnest($2::BIGINT[]))
ORDER BY u.name",
        )
        .bind(project_id)
        .bind(&responders)
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)?;
        rows.iter().map(rater_activity_from).collect()
    }
}

pub async fn create_project(
    conn: &mut PgConnection,
    project: NewProject,
    now: i64,
) -> Result<Project> {
    let row = sqlx::query(
        "INSERT INTO projects (name, instructions, schema, overlap, lease_seconds, locale_policy,
         min_overlap, target_confidence, quality, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *",
    )
    .bind(&project.name)
    .bind(&project.instructions)
    .bind(json_text(&project.schema))
    .bind(project.overlap)
    .bind(project.lease_seconds)
    .bind(project.locale_policy.as_str())
    .bind(project.min_overlap)
    .bind(project.target_confidence)
    .bind(json_text(&project.quality))
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map_err(database_error)?;
    let created = project_from(&row)?;
    upsert_member(
        conn,
        Member {
            project_id: created.id,
            user_id: project.created_by,
            role: Role::Manager,
            locales: vec![],
            skills: vec![],
        },
    )
    .await?;
    Ok(created)
}

pub async fn project(pool: &PgPool, id: i64) -> Result<Option<Project>> {
    let row = sqlx::query("SELECT * FROM projects WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(project_from).transpose()
}

pub async fn list_projects(
    pool: &PgPool,
    member: Option<i64>,
    after: i64,
    limit: i64,
) -> Result<Vec<Project>> {
    let rows = match member {
        None => {
            sqlx::query("SELECT * FROM projects WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
        Some(user) => {
            sqlx::query(
                "SELECT p.* FROM projects p JOIN members m ON m.project_id = p.id
                 WHERE m.user_id = $1 AND p.id > $2 ORDER BY p.id LIMIT $3",
            )
            .bind(user)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
    .map_err(database_error)?;
    rows.iter().map(project_from).collect()
}

pub async fn upsert_member(conn: &mut PgConnection, member: Member) -> Result<()> {
    sqlx::query(
        "INSERT INTO members (project_id, user_id, role, locales, skills) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role, locales = excluded.locales, skills = excluded.skills",
    )
    .bind(member.project_id)
    .bind(member.user_id)
    .bind(member.role.as_str())
    .bind(json_text(&member.locales))
    .bind(json_text(&member.skills))
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

pub async fn member(pool: &PgPool, project_id: i64, user_id: i64) -> Result<Option<Member>> {
    let row = sqlx::query("SELECT * FROM members WHERE project_id = $1 AND user_id = $2")
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(member_from).transpose()
}

pub async fn import_items(
    conn: &mut PgConnection,
    project_id: i64,
    items: ItemBatch,
    now: i64,
) -> Result<ImportReport> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database_error)?;
    exists.ok_or(StoreError::NotFound("project"))?;
    let mut report = ImportReport::default();
    let mut items = items.iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<ItemRef<'_>> = items.by_ref().take(IMPORT_CHUNK).collect();
        let mut columns: [Vec<Option<String>>; 9] = Default::default();
        let mut priorities = Vec::with_capacity(chunk.len());
        for item in chunk {
            let (locale_key, language_key) = locale_keys(item.locale);
            let own = |text: Option<&str>| text.map(str::to_string);
            for (column, value) in columns.iter_mut().zip([
                own(item.external_id),
                Some(item.fields.to_string()),
                Some(item.metadata.to_string()),
                own(item.locale),
                locale_key,
                language_key,
                own(item.category),
                own(item.suggestions),
                own(item.gold),
            ]) {
                column.push(value);
            }
            priorities.push(item.priority);
        }
        // One statement per chunk; `xmax = 0` tells a fresh insert from an update.
        let [
            external,
            fields,
            metadata,
            locale,
            locale_key,
            language_key,
            category,
            suggestions,
            gold,
        ] = columns;
        let inserted: Vec<bool> = sqlx::query_scalar(
            "INSERT INTO items (project_id, external_id, fields, metadata, locale, locale_key, language_key, category,
                                suggestions, gold, priority, created_at)
             SELECT $1, u.* , $12 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                             $8::text[], $9::text[], $10::text[], $11::int4[]) AS u
             ON CONFLICT (project_id, external_id) DO UPDATE SET fields = EXCLUDED.fields, metadata = EXCLUDED.metadata,
                locale = EXCLUDED.locale, locale_key = EXCLUDED.locale_key, language_key = EXCLUDED.language_key,
                category = EXCLUDED.category, suggestions = EXCLUDED.suggestions, gold = EXCLUDED.gold,
                priority = EXCLUDED.priority
             RETURNING (xmax = 0)",
        )
        .bind(project_id)
        .bind(external)
        .bind(fields)
        .bind(metadata)
        .bind(locale)
        .bind(locale_key)
        .bind(language_key)
        .bind(category)
        .bind(suggestions)
        .bind(gold)
        .bind(priorities)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .map_err(database_error)?;
        for fresh in inserted {
            if fresh {
                report.created += 1
            } else {
                report.updated += 1
            }
        }
    }
    Ok(report)
}

pub async fn item(pool: &PgPool, id: i64) -> Result<Option<StoredItem>> {
    let row = sqlx::query("SELECT * FROM items WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(item_from).transpose()
}

pub async fn items(
    pool: &PgPool,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredItem>> {
    let rows =
        sqlx::query("SELECT * FROM items WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(project_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(database_error)?;
    rows.iter().map(item_from).collect()
}

pub async fn stats(pool: &PgPool, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
    let row = sqlx::query(
        // From the kept counts (see the `item_counts` migration), not from every item.
        "SELECT COALESCE(SUM(items), 0)::BIGINT AS items,
                COALESCE(SUM(items) FILTER (WHERE settled OR responses >= $1), 0)::BIGINT AS complete,
                COALESCE(SUM(items) FILTER (WHERE NOT settled AND responses > 0 AND responses < $1), 0)::BIGINT AS in_progress,
                COALESCE(SUM(items) FILTER (WHERE responses = 0), 0)::BIGINT AS untouched,
                COALESCE(SUM(items * responses), 0)::BIGINT AS responses
         FROM item_counts WHERE project_id = $2",
    )
    .bind(overlap)
    .bind(project_id)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM leases WHERE project_id = $1 AND state = 'active' AND expires_at > $2",
    )
    .bind(project_id)
    .bind(now)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    let raters: i64 = sqlx::query_scalar(
        // One probe of the (user, project) index per user, not a walk of every response.
        "SELECT COUNT(*) FROM users u
             WHERE EXISTS (SELECT 1 FROM responses r WHERE r.user_id = u.id AND r.project_id = $1)",
    )
    .bind(project_id)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    Ok(ProjectStats {
        items: get(&row, "items")?,
        items_complete: get(&row, "complete")?,
        items_in_progress: get(&row, "in_progress")?,
        items_untouched: get(&row, "untouched")?,
        responses: get(&row, "responses")?,
        active_leases: active,
        raters,
    })
}
