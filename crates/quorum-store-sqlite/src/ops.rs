//! The SQL of the SQLite backend. Write functions run on the writer's connection inside its
//! transaction; read functions run on the read pool.

use quorum_core::Role;
use quorum_store::{
    ExportRow, ImportReport, Lease, LeaseState, LocalePolicy, Member, NewItem, NewProject, NewUser,
    NextRequest, Project, ProjectStats, Response, Result, StoreError, StoredItem, Submission,
    SubmitOutcome, User,
};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Row, Sqlite};

use crate::database_error;

type Db = Sqlite;

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn parse_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(Box::new(e)))
}

fn get<'r, T: sqlx::Decode<'r, Db> + sqlx::Type<Db>>(
    row: &'r SqliteRow,
    column: &str,
) -> Result<T> {
    row.try_get(column).map_err(database_error)
}

fn user_from(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        is_admin: get::<i64>(row, "is_admin")? != 0,
        created_at: get(row, "created_at")?,
    })
}

fn project_from(row: &SqliteRow) -> Result<Project> {
    Ok(Project {
        id: get(row, "id")?,
        name: get(row, "name")?,
        instructions: get(row, "instructions")?,
        schema: parse_json(&get::<String>(row, "schema")?)?,
        overlap: get::<i64>(row, "overlap")? as i32,
        lease_seconds: get(row, "lease_seconds")?,
        locale_policy: LocalePolicy::parse(&get::<String>(row, "locale_policy")?),
        created_at: get(row, "created_at")?,
    })
}

fn member_from(row: &SqliteRow) -> Result<Member> {
    let list = |column: &str| -> Result<Vec<String>> {
        serde_json::from_str(&get::<String>(row, column)?)
            .map_err(|e| StoreError::Database(Box::new(e)))
    };
    Ok(Member {
        project_id: get(row, "project_id")?,
        user_id: get(row, "user_id")?,
        role: Role::parse(&get::<String>(row, "role")?).unwrap_or(Role::Annotator),
        locales: list("locales")?,
        skills: list("skills")?,
    })
}

fn optional_json(row: &SqliteRow, column: &str) -> Result<Option<Value>> {
    get::<Option<String>>(row, column)?
        .map(|t| parse_json(&t))
        .transpose()
}

fn item_from(row: &SqliteRow) -> Result<StoredItem> {
    Ok(StoredItem {
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        external_id: get(row, "external_id")?,
        fields: parse_json(&get::<String>(row, "fields")?)?,
        metadata: parse_json(&get::<String>(row, "metadata")?)?,
        locale: get(row, "locale")?,
        category: get(row, "category")?,
        suggestions: optional_json(row, "suggestions")?,
        gold: optional_json(row, "gold")?,
        priority: get::<i64>(row, "priority")? as i32,
        responses: get::<i64>(row, "responses")? as i32,
        active_leases: get::<i64>(row, "active_leases")? as i32,
        created_at: get(row, "created_at")?,
    })
}

fn lease_from(row: &SqliteRow) -> Result<Lease> {
    Ok(Lease {
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        item_id: get(row, "item_id")?,
        user_id: get(row, "user_id")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        state: LeaseState::parse(&get::<String>(row, "state")?),
    })
}

fn response_from(row: &SqliteRow) -> Result<Response> {
    Ok(Response {
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        item_id: get(row, "item_id")?,
        user_id: get(row, "user_id")?,
        lease_id: get(row, "lease_id")?,
        answers: parse_json(&get::<String>(row, "answers")?)?,
        time_spent_ms: get(row, "time_spent_ms")?,
        created_at: get(row, "created_at")?,
    })
}

// ---- users and tokens ----

pub async fn create_user(conn: &mut SqliteConnection, user: NewUser) -> Result<User> {
    let row = sqlx::query(
        "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?) RETURNING *",
    )
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(i64::from(user.is_admin))
    .bind(user.created_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match database_error(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a user named `{}` already exists", user.name)),
        other => other,
    })?;
    user_from(&row)
}

pub async fn user_where<T>(pool: &SqlitePool, sql: &'static str, value: T) -> Result<Option<User>>
where
    T: 'static + Send + sqlx::Encode<'static, Db> + sqlx::Type<Db>,
{
    let row = sqlx::query(sql)
        .bind(value)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(user_from).transpose()
}

pub async fn list_users(pool: &SqlitePool) -> Result<Vec<User>> {
    let rows = sqlx::query("SELECT * FROM users ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(database_error)?;
    rows.iter().map(user_from).collect()
}

pub async fn create_token(
    conn: &mut SqliteConnection,
    user_id: i64,
    name: &str,
    hash: &str,
    now: i64,
) -> Result<i64> {
    let row = sqlx::query("INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id")
        .bind(user_id)
        .bind(name)
        .bind(hash)
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error)?;
    get(&row, "id")
}

// ---- projects and members ----

pub async fn create_project(
    conn: &mut SqliteConnection,
    project: NewProject,
    now: i64,
) -> Result<Project> {
    let row = sqlx::query(
        "INSERT INTO projects (name, instructions, schema, overlap, lease_seconds, locale_policy, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
    )
    .bind(&project.name)
    .bind(&project.instructions)
    .bind(json_text(&project.schema))
    .bind(i64::from(project.overlap))
    .bind(project.lease_seconds)
    .bind(project.locale_policy.as_str())
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

pub async fn project(pool: &SqlitePool, id: i64) -> Result<Option<Project>> {
    let row = sqlx::query("SELECT * FROM projects WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(project_from).transpose()
}

pub async fn list_projects(
    pool: &SqlitePool,
    member: Option<i64>,
    after: i64,
    limit: i64,
) -> Result<Vec<Project>> {
    let rows = match member {
        None => {
            sqlx::query("SELECT * FROM projects WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        }
        Some(user) => {
            sqlx::query(
                "SELECT p.* FROM projects p JOIN members m ON m.project_id = p.id
                 WHERE m.user_id = ? AND p.id > ? ORDER BY p.id LIMIT ?",
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

pub async fn upsert_member(conn: &mut SqliteConnection, member: Member) -> Result<()> {
    sqlx::query(
        "INSERT INTO members (project_id, user_id, role, locales, skills) VALUES (?, ?, ?, ?, ?)
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

pub async fn member(pool: &SqlitePool, project_id: i64, user_id: i64) -> Result<Option<Member>> {
    let row = sqlx::query("SELECT * FROM members WHERE project_id = ? AND user_id = ?")
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(member_from).transpose()
}

// ---- items ----

fn locale_keys(locale: Option<&str>) -> (Option<String>, Option<String>) {
    let key = locale.map(str::to_ascii_lowercase);
    let language = key
        .as_ref()
        .and_then(|k| k.split('-').next())
        .map(str::to_string);
    (key, language)
}

pub async fn import_items(
    conn: &mut SqliteConnection,
    project_id: i64,
    items: Vec<NewItem>,
    now: i64,
) -> Result<ImportReport> {
    let overlap: i64 = sqlx::query_scalar("SELECT overlap FROM projects WHERE id = ?")
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database_error)?
        .ok_or(StoreError::NotFound("project"))?;
    let _ = overlap;
    let mut report = ImportReport::default();
    for item in items {
        let (locale_key, language_key) = locale_keys(item.locale.as_deref());
        let existing: Option<i64> = match &item.external_id {
            Some(external) => {
                sqlx::query_scalar("SELECT id FROM items WHERE project_id = ? AND external_id = ?")
                    .bind(project_id)
                    .bind(external)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(database_error)?
            }
            None => None,
        };
        let (fields, metadata, suggestions, gold) =
            (&item.fields, &item.metadata, &item.suggestions, &item.gold);
        if let Some(id) = existing {
            sqlx::query(
                "UPDATE items SET fields = ?, metadata = ?, locale = ?, locale_key = ?, language_key = ?, category = ?,
                 suggestions = ?, gold = ?, priority = ? WHERE id = ?",
            )
            .bind(fields)
            .bind(metadata)
            .bind(&item.locale)
            .bind(locale_key)
            .bind(language_key)
            .bind(&item.category)
            .bind(suggestions)
            .bind(gold)
            .bind(i64::from(item.priority))
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(database_error)?;
            report.updated += 1;
        } else {
            sqlx::query(
                "INSERT INTO items (project_id, external_id, fields, metadata, locale, locale_key, language_key, category,
                 suggestions, gold, priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(project_id)
            .bind(&item.external_id)
            .bind(fields)
            .bind(metadata)
            .bind(&item.locale)
            .bind(locale_key)
            .bind(language_key)
            .bind(&item.category)
            .bind(suggestions)
            .bind(gold)
            .bind(i64::from(item.priority))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(database_error)?;
            report.created += 1;
        }
    }
    Ok(report)
}

pub async fn item(pool: &SqlitePool, id: i64) -> Result<Option<StoredItem>> {
    let row = sqlx::query("SELECT * FROM items WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(item_from).transpose()
}

async fn item_in(conn: &mut SqliteConnection, id: i64) -> Result<StoredItem> {
    let row = sqlx::query("SELECT * FROM items WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error)?;
    item_from(&row)
}

/// Adds `delta_responses` and `delta_active` to an item's counters and recomputes `open`.
async fn count(
    conn: &mut SqliteConnection,
    item_id: i64,
    overlap: i32,
    delta_responses: i64,
    delta_active: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE items SET responses = responses + ?1, active_leases = active_leases + ?2,
         open = (responses + ?1 + active_leases + ?2 < ?3) WHERE id = ?4",
    )
    .bind(delta_responses)
    .bind(delta_active)
    .bind(i64::from(overlap))
    .bind(item_id)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

/// Marks one live lease expired (if it still is) and frees its slot.
async fn expire(conn: &mut SqliteConnection, lease_id: i64, overlap: i32) -> Result<()> {
    let item: Option<i64> = sqlx::query_scalar(
        "UPDATE leases SET state = 'expired' WHERE id = ? AND state = 'active' RETURNING item_id",
    )
    .bind(lease_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error)?;
    if let Some(item) = item {
        count(conn, item, overlap, 0, -1).await?;
    }
    Ok(())
}

pub async fn next_lease(
    conn: &mut SqliteConnection,
    request: NextRequest,
) -> Result<Option<(Lease, StoredItem)>> {
    let NextRequest {
        project_id,
        user_id,
        overlap,
        lease_seconds,
        ref locales,
        now,
    } = request;
    if let Some(row) = sqlx::query(
        "SELECT * FROM leases WHERE user_id = ? AND project_id = ? AND state = 'active' AND expires_at > ? LIMIT 1",
    )
    .bind(user_id)
    .bind(project_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error)?
    {
        let lease = lease_from(&row)?;
        let item = item_in(conn, lease.item_id).await?;
        return Ok(Some((lease, item)));
    }
    let stale: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM leases WHERE project_id = ? AND state = 'active' AND expires_at <= ?",
    )
    .bind(project_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(database_error)?;
    for lease_id in stale {
        expire(conn, lease_id, overlap).await?;
    }
    let mut sql = String::from(
        "SELECT id FROM items i WHERE i.project_id = ? AND i.open = 1
         AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = i.id AND l.user_id = ?)",
    );
    let mut keys = Vec::new();
    let mut languages = Vec::new();
    if let Some(locales) = locales {
        for locale in locales {
            let key = locale.to_ascii_lowercase();
            if key.contains('-') {
                keys.push(key);
            } else {
                languages.push(key);
            }
        }
        sql.push_str(" AND (i.locale_key IS NULL");
        if !keys.is_empty() {
            sql.push_str(&format!(
                " OR i.locale_key IN ({})",
                vec!["?"; keys.len()].join(", ")
            ));
        }
        if !languages.is_empty() {
            sql.push_str(&format!(
                " OR i.language_key IN ({})",
                vec!["?"; languages.len()].join(", ")
            ));
        }
        sql.push(')');
    }
    sql.push_str(" ORDER BY i.priority DESC, i.id ASC LIMIT 1");
    let mut query = sqlx::query_scalar::<_, i64>(&sql)
        .bind(project_id)
        .bind(user_id);
    for key in keys.iter().chain(&languages) {
        query = query.bind(key);
    }
    let Some(item_id) = query
        .fetch_optional(&mut *conn)
        .await
        .map_err(database_error)?
    else {
        return Ok(None);
    };
    let row = sqlx::query(
        "INSERT INTO leases (project_id, item_id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
    )
    .bind(project_id)
    .bind(item_id)
    .bind(user_id)
    .bind(now)
    .bind(now + lease_seconds * 1000)
    .fetch_one(&mut *conn)
    .await
    .map_err(database_error)?;
    count(conn, item_id, overlap, 0, 1).await?;
    let item = item_in(conn, item_id).await?;
    Ok(Some((lease_from(&row)?, item)))
}

pub async fn lease(pool: &SqlitePool, id: i64) -> Result<Option<Lease>> {
    let row = sqlx::query("SELECT * FROM leases WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(lease_from).transpose()
}

async fn own_lease(conn: &mut SqliteConnection, lease_id: i64, user_id: i64) -> Result<Lease> {
    let row = sqlx::query("SELECT * FROM leases WHERE id = ?")
        .bind(lease_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(database_error)?;
    match row.as_ref().map(lease_from).transpose()? {
        Some(lease) if lease.user_id == user_id => Ok(lease),
        // Someone else's lease is reported exactly like a missing one.
        _ => Err(StoreError::NotFound("lease")),
    }
}

pub async fn submit(conn: &mut SqliteConnection, s: Submission) -> Result<SubmitOutcome> {
    if let Some(key) = &s.idempotency_key {
        let row = sqlx::query("SELECT * FROM responses WHERE user_id = ? AND idempotency_key = ?")
            .bind(s.user_id)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(database_error)?;
        if let Some(row) = row {
            return Ok(SubmitOutcome::Replayed(response_from(&row)?));
        }
    }
    let mut lease = own_lease(conn, s.lease_id, s.user_id).await?;
    if lease.state == LeaseState::Active && lease.expires_at <= s.now {
        expire(conn, lease.id, s.overlap).await?;
        lease.state = LeaseState::Expired;
    }
    match lease.state {
        LeaseState::Submitted => {
            return Err(StoreError::Conflict(
                "this lease has already been answered".into(),
            ));
        }
        LeaseState::Skipped => return Err(StoreError::Conflict("this lease was skipped".into())),
        LeaseState::Active => count(conn, lease.item_id, s.overlap, 1, -1).await?,
        LeaseState::Expired => {
            let taken: i64 =
                sqlx::query_scalar("SELECT responses + active_leases FROM items WHERE id = ?")
                    .bind(lease.item_id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(database_error)?;
            if taken >= i64::from(s.overlap) {
                return Err(StoreError::LeaseExpired);
            }
            count(conn, lease.item_id, s.overlap, 1, 0).await?;
        }
    }
    sqlx::query("UPDATE leases SET state = 'submitted' WHERE id = ?")
        .bind(lease.id)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    let row = sqlx::query(
        "INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, idempotency_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
    )
    .bind(lease.project_id)
    .bind(lease.item_id)
    .bind(s.user_id)
    .bind(lease.id)
    .bind(json_text(&s.answers))
    .bind(s.time_spent_ms)
    .bind(&s.idempotency_key)
    .bind(s.now)
    .fetch_one(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(SubmitOutcome::Created(response_from(&row)?))
}

pub async fn skip(
    conn: &mut SqliteConnection,
    lease_id: i64,
    user_id: i64,
    now: i64,
) -> Result<()> {
    let lease = own_lease(conn, lease_id, user_id).await?;
    if lease.state != LeaseState::Active {
        return Err(StoreError::Conflict(format!(
            "this lease is {}, not active",
            lease.state.as_str()
        )));
    }
    let overlap: i64 = sqlx::query_scalar("SELECT overlap FROM projects WHERE id = ?")
        .bind(lease.project_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error)?;
    let _ = now;
    sqlx::query("UPDATE leases SET state = 'skipped' WHERE id = ?")
        .bind(lease.id)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    count(conn, lease.item_id, overlap as i32, 0, -1).await
}

// ---- reports ----

pub async fn export_responses(
    pool: &SqlitePool,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>> {
    let rows = sqlx::query(
        "SELECT r.id, r.item_id, i.external_id, u.name, r.answers, r.time_spent_ms, r.created_at
         FROM responses r JOIN items i ON i.id = r.item_id JOIN users u ON u.id = r.user_id
         WHERE r.project_id = ? AND r.id > ? ORDER BY r.id LIMIT ?",
    )
    .bind(project_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(database_error)?;
    rows.iter()
        .map(|row| {
            Ok(ExportRow {
                response_id: get(row, "id")?,
                item_id: get(row, "item_id")?,
                external_id: get(row, "external_id")?,
                user_name: get(row, "name")?,
                answers: parse_json(&get::<String>(row, "answers")?)?,
                time_spent_ms: get(row, "time_spent_ms")?,
                created_at: get(row, "created_at")?,
            })
        })
        .collect()
}

pub async fn stats(
    pool: &SqlitePool,
    project_id: i64,
    overlap: i32,
    now: i64,
) -> Result<ProjectStats> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS items,
                COALESCE(SUM(responses >= ?1), 0) AS complete,
                COALESCE(SUM(responses > 0 AND responses < ?1), 0) AS in_progress,
                COALESCE(SUM(responses = 0), 0) AS untouched,
                COALESCE(SUM(responses), 0) AS responses
         FROM items WHERE project_id = ?2",
    )
    .bind(i64::from(overlap))
    .bind(project_id)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM leases WHERE project_id = ? AND state = 'active' AND expires_at > ?",
    )
    .bind(project_id)
    .bind(now)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    let raters: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT user_id) FROM responses WHERE project_id = ?")
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
