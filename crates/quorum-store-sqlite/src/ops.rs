//! The SQL of the SQLite backend, on plain synchronous connections. Write functions run on the
//! writer thread inside its transaction; read functions run on a reader connection.

use quorum_core::Role;
use quorum_store::{
    BattleSides, BattleVote, ExportRow, Generation, ImportReport, ItemAnswer, ItemBatch, Lease,
    LeaseState, LocalePolicy, Member, ModelSpec, NewProject, NewToken, NewUser, NextRequest, Pool,
    Project, ProjectStats, QualityPolicy, RaterActivity, RaterChange, RaterEvent, RaterRecord,
    RaterState, Response, Result, Review, StandardRun, StoreError, StoredItem, Submission,
    SubmitOutcome, Token, User, Verdict,
};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value;

use crate::database_error;

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn parse_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(Box::new(e)))
}

fn user_from(row: &Row<'_>) -> rusqlite::Result<Result<User>> {
    Ok(Ok(User {
        id: row.get("id")?,
        name: row.get("name")?,
        password_hash: row.get("password_hash")?,
        is_admin: row.get::<_, i64>("is_admin")? != 0,
        created_at: row.get("created_at")?,
        disabled_at: row.get("disabled_at")?,
    }))
}

fn token_from(row: &Row<'_>) -> rusqlite::Result<Result<Token>> {
    Ok(Ok(Token {
        id: row.get("token_id")?,
        user_id: row.get("user_id")?,
        name: row.get("token_name")?,
        created_at: row.get("token_created_at")?,
        expires_at: row.get("expires_at")?,
        last_used_at: row.get("last_used_at")?,
    }))
}

/// A token's columns under the names [`token_from`] reads (users share some of them).
const TOKEN_COLUMNS: &str = "t.id AS token_id, t.user_id, t.name AS token_name, \
    t.created_at AS token_created_at, t.expires_at, t.last_used_at";

fn project_from(row: &Row<'_>) -> rusqlite::Result<Result<Project>> {
    let schema: String = row.get("schema")?;
    let locale_policy: String = row.get("locale_policy")?;
    let (id, name, instructions, overlap, lease_seconds, created_at) = (
        row.get("id")?,
        row.get("name")?,
        row.get("instructions")?,
        row.get("overlap")?,
        row.get("lease_seconds")?,
        row.get("created_at")?,
    );
    let (min_overlap, target_confidence) = (row.get("min_overlap")?, row.get("target_confidence")?);
    let quality: String = row.get("quality")?;
    Ok((|| {
        Ok(Project {
            id,
            name,
            instructions,
            schema: parse_json(&schema)?,
            overlap,
            lease_seconds,
            locale_policy: LocalePolicy::parse(&locale_policy),
            min_overlap,
            target_confidence,
            quality: serde_json::from_str(&quality)
                .map_err(|e| StoreError::Database(Box::new(e)))?,
            created_at,
        })
    })())
}

fn member_from(row: &Row<'_>) -> rusqlite::Result<Result<Member>> {
    let role: String = row.get("role")?;
    let (locales, skills): (String, String) = (row.get("locales")?, row.get("skills")?);
    let (project_id, user_id) = (row.get("project_id")?, row.get("user_id")?);
    let list = |text: &str| {
        serde_json::from_str::<Vec<String>>(text).map_err(|e| StoreError::Database(Box::new(e)))
    };
    Ok((|| {
        Ok(Member {
            project_id,
            user_id,
            role: Role::parse(&role).unwrap_or(Role::Annotator),
            locales: list(&locales)?,
            skills: list(&skills)?,
        })
    })())
}

fn item_from(row: &Row<'_>) -> rusqlite::Result<Result<StoredItem>> {
    let (fields, metadata): (String, String) = (row.get("fields")?, row.get("metadata")?);
    let (suggestions, gold): (Option<String>, Option<String>) =
        (row.get("suggestions")?, row.get("gold")?);
    let (
        id,
        project_id,
        external_id,
        locale,
        category,
        priority,
        responses,
        active_leases,
        created_at,
    ) = (
        row.get("id")?,
        row.get("project_id")?,
        row.get("external_id")?,
        row.get("locale")?,
        row.get("category")?,
        row.get("priority")?,
        row.get("responses")?,
        row.get("active_leases")?,
        row.get("created_at")?,
    );
    Ok((|| {
        Ok(StoredItem {
            id,
            project_id,
            external_id,
            fields: parse_json(&fields)?,
            metadata: parse_json(&metadata)?,
            locale,
            category,
            suggestions: suggestions.as_deref().map(parse_json).transpose()?,
            gold: gold.as_deref().map(parse_json).transpose()?,
            priority,
            responses,
            active_leases,
            created_at,
        })
    })())
}

fn lease_from(row: &Row<'_>) -> rusqlite::Result<Result<Lease>> {
    let state: String = row.get("state")?;
    Ok(Ok(Lease {
        id: row.get("id")?,
        project_id: row.get("project_id")?,
        item_id: row.get("item_id")?,
        user_id: row.get("user_id")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        state: LeaseState::parse(&state),
    }))
}

fn response_from(row: &Row<'_>) -> rusqlite::Result<Result<Response>> {
    let answers: String = row.get("answers")?;
    let (id, project_id, item_id, user_id, lease_id, time_spent_ms, created_at) = (
        row.get("id")?,
        row.get("project_id")?,
        row.get("item_id")?,
        row.get("user_id")?,
        row.get("lease_id")?,
        row.get("time_spent_ms")?,
        row.get("created_at")?,
    );
    Ok(parse_json(&answers).map(|answers| Response {
        id,
        project_id,
        item_id,
        user_id,
        lease_id,
        answers,
        time_spent_ms,
        created_at,
    }))
}

/// One row (or none) through a mapper.
fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mapper: fn(&Row<'_>) -> rusqlite::Result<Result<T>>,
) -> Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(database_error)?;
    statement
        .query_row(params, mapper)
        .optional()
        .map_err(database_error)?
        .transpose()
}

fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mapper: fn(&Row<'_>) -> rusqlite::Result<Result<T>>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(database_error)?;
    let rows = statement
        .query_map(params, mapper)
        .map_err(database_error)?;
    rows.map(|r| r.map_err(database_error).and_then(|inner| inner))
        .collect()
}

fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(database_error)
}

fn scalar<T: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |row| row.get(0)).optional())
        .map_err(database_error)
}

// ---- users and tokens ----

pub fn create_user(conn: &Connection, user: NewUser) -> Result<User> {
    one(
        conn,
        "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING *",
        params![user.name, user.password_hash, i64::from(user.is_admin), user.created_at],
        user_from,
    )
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a user named `{}` already exists", user.name)),
        other => other,
    })?
    .ok_or(StoreError::NotFound("user"))
}

pub fn user_where(
    conn: &Connection,
    sql: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<User>> {
    one(conn, sql, [value], user_from)
}

pub fn list_users(conn: &Connection) -> Result<Vec<User>> {
    all(conn, "SELECT * FROM users ORDER BY id", [], user_from)
}

pub fn create_token(conn: &Connection, token: &NewToken) -> Result<i64> {
    scalar(
        conn,
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![token.user_id, token.name, token.hash, token.created_at, token.expires_at],
    )?
    .ok_or(StoreError::NotFound("token"))
}

pub fn user_by_token_hash(
    conn: &Connection,
    hash: &str,
    now: i64,
) -> Result<Option<(User, Token)>> {
    let sql = format!(
        "SELECT u.*, {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)
           AND u.disabled_at IS NULL"
    );
    one(conn, &sql, params![hash, now], |row| {
        Ok(match (user_from(row)?, token_from(row)?) {
            (Ok(user), Ok(token)) => Ok((user, token)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        })
    })
}

pub fn touch_token(conn: &Connection, id: i64, now: i64, expires_at: Option<i64>) -> Result<()> {
    execute(
        conn,
        "UPDATE api_tokens SET last_used_at = ?2, expires_at = ?3 WHERE id = ?1",
        params![id, now, expires_at],
    )?;
    Ok(())
}

pub fn tokens(conn: &Connection, user_id: i64) -> Result<Vec<Token>> {
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = ?1 ORDER BY t.id");
    all(conn, &sql, [user_id], token_from)
}

pub fn revoke_token(conn: &Connection, user_id: i64, id: i64) -> Result<bool> {
    Ok(execute(
        conn,
        "DELETE FROM api_tokens WHERE user_id = ?1 AND id = ?2",
        params![user_id, id],
    )? > 0)
}

pub fn revoke_tokens(conn: &Connection, user_id: i64, named: Option<&str>) -> Result<u64> {
    Ok(execute(
        conn,
        "DELETE FROM api_tokens WHERE user_id = ?1 AND (?2 IS NULL OR name = ?2)",
        params![user_id, named],
    )? as u64)
}

pub fn set_user_disabled(
    conn: &Connection,
    user_id: i64,
    disabled_at: Option<i64>,
) -> Result<bool> {
    let changed = execute(
        conn,
        "UPDATE users SET disabled_at = ?2 WHERE id = ?1",
        params![user_id, disabled_at],
    )?;
    if changed > 0 && disabled_at.is_some() {
        revoke_tokens(conn, user_id, None)?;
    }
    Ok(changed > 0)
}

pub fn set_password(conn: &Connection, user_id: i64, hash: &str) -> Result<bool> {
    Ok(execute(
        conn,
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![user_id, hash],
    )? > 0)
}

pub fn delete_token(conn: &Connection, hash: &str) -> Result<()> {
    execute(conn, "DELETE FROM api_tokens WHERE token_hash = ?1", [hash])?;
    Ok(())
}

// ---- projects and members ----

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

// ---- items ----

fn locale_keys(locale: Option<&str>) -> (Option<String>, Option<String>) {
    locale.map(quorum_core::locale_keys).unzip()
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

pub fn settle_item(conn: &Connection, item_id: i64) -> Result<()> {
    execute(
        conn,
        "UPDATE items SET settled = 1, open = 0 WHERE id = ?1",
        [item_id],
    )?;
    Ok(())
}

pub fn item_answers(conn: &Connection, item_id: i64) -> Result<Vec<ItemAnswer>> {
    all(
        conn,
        // Through the item's leases (indexed by item), so responses need no index of their own.
        "SELECT r.id, r.user_id, r.answers FROM leases l JOIN responses r ON r.lease_id = l.id
         WHERE l.item_id = ?1 ORDER BY r.id",
        [item_id],
        |row| {
            let (response_id, user_id, answers): (i64, i64, String) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            Ok(parse_json(&answers).map(|answers| ItemAnswer {
                response_id,
                user_id,
                answers,
            }))
        },
    )
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

/// Adds `delta_responses` and `delta_active` to an item's counters and recomputes `open`.
fn count(
    conn: &Connection,
    item_id: i64,
    overlap: i32,
    delta_responses: i64,
    delta_active: i64,
) -> Result<()> {
    execute(
        conn,
        "UPDATE items SET responses = responses + ?1, active_leases = active_leases + ?2,
         open = (settled = 0 AND responses + ?1 + active_leases + ?2 < ?3) WHERE id = ?4",
        params![delta_responses, delta_active, overlap, item_id],
    )?;
    Ok(())
}

/// Marks one live lease expired (if it still is) and frees its slot.
fn expire(conn: &Connection, lease_id: i64, overlap: i32) -> Result<()> {
    let item: Option<i64> = scalar(
        conn,
        "UPDATE leases SET state = 'expired' WHERE id = ?1 AND state = 'active' RETURNING item_id",
        [lease_id],
    )?;
    if let Some(item) = item {
        count(conn, item, overlap, 0, -1)?;
    }
    Ok(())
}

pub fn next_lease(conn: &Connection, request: NextRequest) -> Result<Option<(Lease, StoredItem)>> {
    let NextRequest {
        project_id,
        user_id,
        overlap,
        lease_seconds,
        ref locales,
        pool,
        now,
    } = request;
    if let Some(lease) = one(
        conn,
        "SELECT * FROM leases WHERE user_id = ?1 AND project_id = ?2 AND state = 'active' AND expires_at > ?3 LIMIT 1",
        [user_id, project_id, now],
        lease_from,
    )? {
        let item = item(conn, lease.item_id)?.ok_or(StoreError::NotFound("item"))?;
        return Ok(Some((lease, item)));
    }
    let stale: Vec<i64> = {
        let mut statement = conn
            .prepare_cached("SELECT id FROM leases WHERE project_id = ?1 AND state = 'active' AND expires_at <= ?2")
            .map_err(database_error)?;
        let rows = statement
            .query_map([project_id, now], |row| row.get(0))
            .map_err(database_error)?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(database_error)?
    };
    for lease_id in stale {
        expire(conn, lease_id, overlap)?;
    }
    let mut sql = String::from(match pool {
        Pool::Any => "SELECT id FROM items i WHERE i.project_id = ?1 AND i.open = 1",
        Pool::Regular => {
            "SELECT id FROM items i WHERE i.project_id = ?1 AND i.open = 1 AND i.gold IS NULL"
        }
        Pool::Gold => "SELECT id FROM items i WHERE i.project_id = ?1 AND i.gold IS NOT NULL",
    });
    sql.push_str(
        " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = i.id AND l.user_id = ?2)",
    );
    let mut values: Vec<rusqlite::types::Value> = vec![project_id.into(), user_id.into()];
    if let Some(filter) = locales {
        sql.push_str(" AND (i.locale_key IS NULL");
        for (column, list) in [
            ("locale_key", &filter.tags),
            ("language_key", &filter.languages),
        ] {
            if !list.is_empty() {
                let start = values.len() + 1;
                let marks: Vec<String> = (start..start + list.len())
                    .map(|n| format!("?{n}"))
                    .collect();
                sql.push_str(&format!(" OR i.{column} IN ({})", marks.join(", ")));
                values.extend(list.iter().cloned().map(rusqlite::types::Value::from));
            }
        }
        sql.push(')');
    }
    sql.push_str(if pool == Pool::Gold {
        " ORDER BY random() LIMIT 1"
    } else {
        " ORDER BY i.priority DESC, i.id ASC LIMIT 1"
    });
    let Some(item_id) = scalar::<i64>(conn, &sql, params_from_iter(values))? else {
        return Ok(None);
    };
    let lease = one(
        conn,
        "INSERT INTO leases (project_id, item_id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING *",
        [project_id, item_id, user_id, now, now + lease_seconds * 1000],
        lease_from,
    )?
    .ok_or(StoreError::NotFound("lease"))?;
    count(conn, item_id, overlap, 0, 1)?;
    let item = item(conn, item_id)?.ok_or(StoreError::NotFound("item"))?;
    Ok(Some((lease, item)))
}

pub fn lease(conn: &Connection, id: i64) -> Result<Option<Lease>> {
    one(conn, "SELECT * FROM leases WHERE id = ?1", [id], lease_from)
}

fn own_lease(conn: &Connection, lease_id: i64, user_id: i64) -> Result<Lease> {
    match lease(conn, lease_id)? {
        Some(lease) if lease.user_id == user_id => Ok(lease),
        // Someone else's lease is reported exactly like a missing one.
        _ => Err(StoreError::NotFound("lease")),
    }
}

pub fn submit(conn: &Connection, s: Submission) -> Result<SubmitOutcome> {
    let mut lease = own_lease(conn, s.lease_id, s.user_id)?;
    // A live lease has no response yet, so only an answered one can be a retry to replay.
    if lease.state != LeaseState::Active
        && let Some(key) = &s.idempotency_key
        && let Some(response) = one(
            conn,
            "SELECT * FROM responses WHERE user_id = ?1 AND idempotency_key = ?2",
            params![s.user_id, key],
            response_from,
        )?
    {
        return Ok(SubmitOutcome::Replayed(response));
    }
    if lease.state == LeaseState::Active && lease.expires_at <= s.now {
        expire(conn, lease.id, s.overlap)?;
        lease.state = LeaseState::Expired;
    }
    match lease.state {
        LeaseState::Submitted => {
            return Err(StoreError::Conflict(
                "this lease has already been answered".into(),
            ));
        }
        LeaseState::Skipped => return Err(StoreError::Conflict("this lease was skipped".into())),
        LeaseState::Active => count(conn, lease.item_id, s.overlap, 1, -1)?,
        LeaseState::Expired => {
            let (taken, gold): (i64, bool) = one(
                conn,
                "SELECT responses + active_leases, gold IS NOT NULL FROM items WHERE id = ?1",
                [lease.item_id],
                |row| Ok(Ok((row.get(0)?, row.get(1)?))),
            )?
            .unwrap_or((0, false));
            if taken >= i64::from(s.overlap) && !(gold && s.gold_pool) {
                return Err(StoreError::LeaseExpired);
            }
            count(conn, lease.item_id, s.overlap, 1, 0)?;
        }
    }
    execute(
        conn,
        "UPDATE leases SET state = 'submitted' WHERE id = ?1",
        [lease.id],
    )?;
    let response = one(
        conn,
        "INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, idempotency_key, gold_correct, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING *",
        params![lease.project_id, lease.item_id, s.user_id, lease.id, json_text(&s.answers), s.time_spent_ms, s.idempotency_key, s.gold_correct, s.now],
        response_from,
    )?
    .ok_or(StoreError::NotFound("response"))?;
    Ok(SubmitOutcome::Created(response))
}

pub fn skip(conn: &Connection, lease_id: i64, user_id: i64) -> Result<()> {
    let lease = own_lease(conn, lease_id, user_id)?;
    if lease.state != LeaseState::Active {
        return Err(StoreError::Conflict(format!(
            "this lease is {}, not active",
            lease.state.as_str()
        )));
    }
    let overlap: i32 = scalar(
        conn,
        "SELECT overlap FROM projects WHERE id = ?1",
        [lease.project_id],
    )?
    .ok_or(StoreError::NotFound("project"))?;
    execute(
        conn,
        "UPDATE leases SET state = 'skipped' WHERE id = ?1",
        [lease.id],
    )?;
    count(conn, lease.item_id, overlap, 0, -1)
}

// ---- reports ----

pub fn export_responses(
    conn: &Connection,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>> {
    all(
        conn,
        "SELECT r.id, r.item_id, i.external_id, r.user_id, u.name, r.answers, r.time_spent_ms, r.created_at,
                i.gold IS NOT NULL AS gold
         FROM responses r JOIN items i ON i.id = r.item_id JOIN users u ON u.id = r.user_id
         WHERE r.project_id = ?1 AND r.id > ?2 ORDER BY r.id LIMIT ?3",
        [project_id, after, limit],
        |row| {
            let answers: String = row.get("answers")?;
            let (response_id, item_id, external_id, user_id, user_name, time_spent_ms, created_at) = (
                row.get("id")?,
                row.get("item_id")?,
                row.get("external_id")?,
                row.get("user_id")?,
                row.get("name")?,
                row.get("time_spent_ms")?,
                row.get("created_at")?,
            );
            let gold = row.get("gold")?;
            Ok(parse_json(&answers).map(|answers| ExportRow {
                response_id,
                item_id,
                external_id,
                user_id,
                user_name,
                answers,
                time_spent_ms,
                created_at,
                gold,
            }))
        },
    )
}

pub fn rater_activity(
    conn: &Connection,
    project_id: i64,
    since: i64,
) -> Result<Vec<RaterActivity>> {
    all(
        conn,
        "SELECT u.id, u.name,
  (SELECT COUNT(*) FROM responses r WHERE r.user_id = u.id AND r.project_id = ?1) AS responses,
  (SELECT COUNT(*) FROM responses r WHERE r.user_id = u.id AND r.project_id = ?1 AND r.created_at >= ?2) AS responses_since,
  (SELECT COUNT(*) FROM leases l WHERE l.user_id = u.id AND l.project_id = ?1 AND l.state = 'skipped') AS skips,
  (SELECT MAX(r.created_at) FROM responses r WHERE r.user_id = u.id AND r.project_id = ?1) AS last_active,
  (SELECT m.role FROM members m WHERE m.user_id = u.id AND m.project_id = ?1) AS role
FROM users u
WHERE u.id IN (SELECT user_id FROM members WHERE project_id = ?1
               UNION SELECT user_id FROM responses WHERE project_id = ?1)
ORDER BY u.name",
        [project_id, since],
        |row| {
            Ok(Ok(RaterActivity {
                user_id: row.get("id")?,
                name: row.get("name")?,
                responses: row.get("responses")?,
                responses_since: row.get("responses_since")?,
                skips: row.get("skips")?,
                last_active: row.get("last_active")?,
                role: row.get("role")?,
            }))
        },
    )
}

pub fn stats(conn: &Connection, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
    let counts = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(settled = 1 OR responses >= ?1), 0),
                    COALESCE(SUM(settled = 0 AND responses > 0 AND responses < ?1), 0),
                    COALESCE(SUM(responses = 0), 0), COALESCE(SUM(responses), 0)
             FROM items WHERE project_id = ?2",
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
        "SELECT COUNT(DISTINCT user_id) FROM responses WHERE project_id = ?1",
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

// ---- model evaluation ----

pub fn upsert_model(conn: &Connection, model: ModelSpec) -> Result<()> {
    execute(
        conn,
        "INSERT INTO models (name, base_url, model_id, api_key_env, parameters, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url, model_id = excluded.model_id,
         api_key_env = excluded.api_key_env, parameters = excluded.parameters",
        params![
            model.name,
            model.base_url,
            model.model_id,
            model.api_key_env,
            json_text(&model.parameters),
            model.created_at
        ],
    )?;
    Ok(())
}

fn model_from(row: &Row<'_>) -> rusqlite::Result<Result<ModelSpec>> {
    let parameters: String = row.get("parameters")?;
    let (name, base_url, model_id, api_key_env, created_at) = (
        row.get("name")?,
        row.get("base_url")?,
        row.get("model_id")?,
        row.get("api_key_env")?,
        row.get("created_at")?,
    );
    Ok(parse_json(&parameters).map(|parameters| ModelSpec {
        name,
        base_url,
        model_id,
        api_key_env,
        parameters,
        created_at,
    }))
}

pub fn models(conn: &Connection) -> Result<Vec<ModelSpec>> {
    all(conn, "SELECT * FROM models ORDER BY name", [], model_from)
}

pub fn put_generations(conn: &Connection, generations: Vec<Generation>) -> Result<()> {
    for g in generations {
        execute(
        conn,
        "INSERT INTO generations (project_id, item_id, model, output, error, latency_ms, prompt_tokens,
         completion_tokens, attempts, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (item_id, model) DO UPDATE SET output = excluded.output, error = excluded.error,
         latency_ms = excluded.latency_ms, prompt_tokens = excluded.prompt_tokens,
         completion_tokens = excluded.completion_tokens, attempts = excluded.attempts,
         created_at = excluded.created_at",
        params![
            g.project_id,
            g.item_id,
            g.model,
            g.output,
            g.error,
            g.latency_ms,
            g.prompt_tokens,
            g.completion_tokens,
            g.attempts,
            g.created_at
        ],
    )?;
    }
    Ok(())
}

fn generation_from(row: &Row<'_>) -> rusqlite::Result<Result<Generation>> {
    Ok(Ok(Generation {
        project_id: row.get("project_id")?,
        item_id: row.get("item_id")?,
        model: row.get("model")?,
        output: row.get("output")?,
        error: row.get("error")?,
        latency_ms: row.get("latency_ms")?,
        prompt_tokens: row.get("prompt_tokens")?,
        completion_tokens: row.get("completion_tokens")?,
        attempts: row.get("attempts")?,
        created_at: row.get("created_at")?,
    }))
}

pub fn generations(conn: &Connection, project_id: i64) -> Result<Vec<Generation>> {
    all(
        conn,
        "SELECT * FROM generations WHERE project_id = ?1 ORDER BY item_id, model",
        [project_id],
        generation_from,
    )
}

pub fn import_battles(
    conn: &Connection,
    project_id: i64,
    items: ItemBatch,
    sides: Vec<BattleSides>,
    now: i64,
) -> Result<ImportReport> {
    if sides.len() != items.len() {
        return Err(StoreError::Conflict(format!(
            "{} items but {} battle sides",
            items.len(),
            sides.len()
        )));
    }
    let external: Vec<Option<String>> = items
        .iter()
        .map(|i| i.external_id.map(str::to_string))
        .collect();
    let report = import_items(conn, project_id, items, now)?;
    for (external, side) in external.into_iter().zip(sides) {
        let external = external
            .ok_or_else(|| StoreError::Conflict("a battle item needs an external id".into()))?;
        let item_id: i64 = scalar(
            conn,
            "SELECT id FROM items WHERE project_id = ?1 AND external_id = ?2",
            params![project_id, external],
        )?
        .ok_or(StoreError::NotFound("item"))?;
        execute(
            conn,
            "INSERT INTO battles (item_id, project_id, model_a, model_b, prompt_item_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (item_id) DO UPDATE SET model_a = excluded.model_a, model_b = excluded.model_b,
             prompt_item_id = excluded.prompt_item_id",
            params![item_id, project_id, side.model_a, side.model_b, side.prompt_item_id],
        )?;
    }
    Ok(report)
}

fn vote_from(row: &Row<'_>) -> rusqlite::Result<Result<BattleVote>> {
    let answers: String = row.get("answers")?;
    let locales: Option<String> = row.get("locales")?;
    let (response_id, item_id, model_a, model_b, user_name, category, item_locale) = (
        row.get("id")?,
        row.get("item_id")?,
        row.get("model_a")?,
        row.get("model_b")?,
        row.get("name")?,
        row.get("category")?,
        row.get("locale")?,
    );
    Ok((|| {
        let rater_locales = match locales {
            Some(text) => serde_json::from_str::<Vec<String>>(&text)
                .map_err(|e| StoreError::Database(Box::new(e)))?,
            None => Vec::new(),
        };
        Ok(BattleVote {
            response_id,
            item_id,
            model_a,
            model_b,
            user_name,
            answers: parse_json(&answers)?,
            category,
            item_locale,
            rater_locales,
        })
    })())
}

pub fn battle_votes(
    conn: &Connection,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<BattleVote>> {
    all(
        conn,
        "SELECT r.id, r.item_id, b.model_a, b.model_b, u.name, r.answers, i.category, i.locale, m.locales
         FROM responses r JOIN battles b ON b.item_id = r.item_id JOIN items i ON i.id = r.item_id
         JOIN users u ON u.id = r.user_id
         LEFT JOIN members m ON m.project_id = r.project_id AND m.user_id = r.user_id
         WHERE r.project_id = ?1 AND r.id > ?2 ORDER BY r.id LIMIT ?3",
        [project_id, after, limit],
        vote_from,
    )
}

// ---- quality control ----

pub fn set_quality(conn: &Connection, project_id: i64, quality: &QualityPolicy) -> Result<()> {
    match execute(
        conn,
        "UPDATE projects SET quality = ?1 WHERE id = ?2",
        params![json_text(quality), project_id],
    )? {
        0 => Err(StoreError::NotFound("project")),
        _ => Ok(()),
    }
}

pub fn rater_record(
    conn: &Connection,
    project_id: i64,
    user_id: i64,
    since: i64,
) -> Result<RaterRecord> {
    let (responses, gold_answered, gold_correct): (i64, i64, i64) = one(
        conn,
        "SELECT COUNT(*), COUNT(gold_correct), COALESCE(SUM(gold_correct), 0) FROM responses
         WHERE user_id = ?1 AND project_id = ?2 AND created_at >= ?3",
        [user_id, project_id, since],
        |row| Ok(Ok((row.get(0)?, row.get(1)?, row.get(2)?))),
    )?
    .unwrap_or_default();
    let skips: i64 = scalar(
        conn,
        "SELECT COUNT(*) FROM leases WHERE user_id = ?1 AND project_id = ?2 AND state = 'skipped'
         AND created_at >= ?3",
        [user_id, project_id, since],
    )?
    .unwrap_or(0);
    let (accepted, rejected): (i64, i64) = one(
        conn,
        "SELECT COALESCE(SUM(verdict = 'accept'), 0), COALESCE(SUM(verdict <> 'accept'), 0)
         FROM reviews WHERE project_id = ?1 AND rater_id = ?2 AND created_at >= ?3",
        [project_id, user_id, since],
        |row| Ok(Ok((row.get(0)?, row.get(1)?))),
    )?
    .unwrap_or_default();
    let recent_times_ms = all(
        conn,
        "SELECT time_spent_ms FROM responses WHERE user_id = ?1 AND project_id = ?2
         AND created_at >= ?3 ORDER BY created_at DESC LIMIT 25",
        [user_id, project_id, since],
        |row| Ok(Ok(row.get(0)?)),
    )?;
    Ok(RaterRecord {
        responses,
        skips,
        gold_answered,
        gold_correct,
        accepted,
        rejected,
        recent_times_ms,
    })
}

fn rater_state_from(row: &Row<'_>) -> rusqlite::Result<Result<RaterState>> {
    Ok(Ok(RaterState {
        user_id: row.get("user_id")?,
        paused: row.get("paused")?,
        reinstated_at: row.get("reinstated_at")?,
    }))
}

pub fn rater_state(conn: &Connection, project_id: i64, user_id: i64) -> Result<Option<RaterState>> {
    one(
        conn,
        "SELECT * FROM rater_states WHERE project_id = ?1 AND user_id = ?2",
        [project_id, user_id],
        rater_state_from,
    )
}

pub fn rater_states(conn: &Connection, project_id: i64) -> Result<Vec<RaterState>> {
    all(
        conn,
        "SELECT * FROM rater_states WHERE project_id = ?1 ORDER BY user_id",
        [project_id],
        rater_state_from,
    )
}

pub fn change_rater(
    conn: &Connection,
    project_id: i64,
    user_id: i64,
    change: &RaterChange,
    actor_id: Option<i64>,
    now: i64,
) -> Result<bool> {
    let changed = match change {
        RaterChange::Paused { reason } => execute(
            conn,
            "INSERT INTO rater_states (project_id, user_id, paused) VALUES (?1, ?2, ?3)
             ON CONFLICT (project_id, user_id) DO UPDATE SET paused = excluded.paused
             WHERE rater_states.paused IS NULL",
            params![project_id, user_id, reason],
        )?,
        RaterChange::Reinstated { .. } => execute(
            conn,
            "UPDATE rater_states SET paused = NULL, reinstated_at = ?3
             WHERE project_id = ?1 AND user_id = ?2 AND paused IS NOT NULL",
            params![project_id, user_id, now],
        )?,
        RaterChange::Qualified { skill, .. } | RaterChange::NotQualified { skill, .. } => execute(
            conn,
            "INSERT INTO qualifications (user_id, skill, passed, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, skill) DO UPDATE SET passed = excluded.passed, at = excluded.at",
            params![
                user_id,
                skill,
                matches!(change, RaterChange::Qualified { .. }),
                now
            ],
        )?,
    };
    if changed == 0 {
        return Ok(false);
    }
    execute(
        conn,
        "INSERT INTO rater_events (project_id, user_id, change, actor_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![project_id, user_id, json_text(change), actor_id, now],
    )?;
    // A decision under a shared skill affects every project naming it: each logs it.
    if let Some(shared) = change.shared_skill() {
        execute(
            conn,
            "INSERT INTO rater_events (project_id, user_id, change, actor_id, at)
             SELECT id, ?2, ?3, ?4, ?5 FROM projects
             WHERE id != ?1 AND json_extract(quality, '$.qualification.skill') = ?6",
            params![
                project_id,
                user_id,
                json_text(change),
                actor_id,
                now,
                shared
            ],
        )?;
    }
    Ok(true)
}

pub fn rater_events(conn: &Connection, project_id: i64) -> Result<Vec<RaterEvent>> {
    all(
        conn,
        "SELECT * FROM rater_events WHERE project_id = ?1 ORDER BY id",
        [project_id],
        |row| {
            let change: String = row.get("change")?;
            let (id, project_id, user_id, actor_id, at) = (
                row.get("id")?,
                row.get("project_id")?,
                row.get("user_id")?,
                row.get("actor_id")?,
                row.get("at")?,
            );
            Ok(serde_json::from_str(&change)
                .map_err(|e| StoreError::Database(Box::new(e)))
                .map(|change| RaterEvent {
                    id,
                    project_id,
                    user_id,
                    change,
                    actor_id,
                    at,
                }))
        },
    )
}

pub fn qualification(conn: &Connection, user_id: i64, skill: &str) -> Result<Option<bool>> {
    scalar(
        conn,
        "SELECT passed FROM qualifications WHERE user_id = ?1 AND skill = ?2",
        params![user_id, skill],
    )
}

pub fn put_reviews(conn: &Connection, reviews: &[Review]) -> Result<()> {
    for r in reviews {
        execute(
            conn,
            "INSERT INTO reviews (response_id, project_id, item_id, rater_id, reviewer_id, verdict, answers, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (response_id) DO UPDATE SET reviewer_id = excluded.reviewer_id,
             verdict = excluded.verdict, answers = excluded.answers, created_at = excluded.created_at",
            params![
                r.response_id,
                r.project_id,
                r.item_id,
                r.rater_id,
                r.reviewer_id,
                r.verdict.as_str(),
                r.answers.as_ref().map(json_text),
                r.created_at
            ],
        )?;
    }
    Ok(())
}

pub fn reviews(conn: &Connection, project_id: i64) -> Result<Vec<Review>> {
    all(
        conn,
        "SELECT * FROM reviews WHERE project_id = ?1 ORDER BY response_id",
        [project_id],
        |row| {
            let (verdict, answers): (String, Option<String>) =
                (row.get("verdict")?, row.get("answers")?);
            let (response_id, project_id, item_id, rater_id, reviewer_id, created_at) = (
                row.get("response_id")?,
                row.get("project_id")?,
                row.get("item_id")?,
                row.get("rater_id")?,
                row.get("reviewer_id")?,
                row.get("created_at")?,
            );
            Ok((|| {
                Ok(Review {
                    response_id,
                    project_id,
                    item_id,
                    rater_id,
                    reviewer_id,
                    verdict: Verdict::parse(&verdict).ok_or_else(|| {
                        StoreError::Database(format!("unknown verdict {verdict}").into())
                    })?,
                    answers: answers.as_deref().map(parse_json).transpose()?,
                    created_at,
                })
            })())
        },
    )
}

// ---- standards ----

pub fn put_standard_run(conn: &Connection, run: &StandardRun) -> Result<()> {
    execute(
        conn,
        "INSERT INTO standard_runs (hash, prompts_project_id, battles_project_id, models, private, standard, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run.hash,
            run.prompts_project_id,
            run.battles_project_id,
            json_text(&run.models),
            run.private,
            json_text(&run.standard),
            run.created_at
        ],
    )?;
    Ok(())
}

fn standard_run_from(row: &Row<'_>) -> rusqlite::Result<Result<StandardRun>> {
    let (models, standard): (String, String) = (row.get("models")?, row.get("standard")?);
    let (hash, prompts_project_id, battles_project_id, private, created_at) = (
        row.get("hash")?,
        row.get("prompts_project_id")?,
        row.get("battles_project_id")?,
        row.get("private")?,
        row.get("created_at")?,
    );
    Ok((|| {
        Ok(StandardRun {
            hash,
            prompts_project_id,
            battles_project_id,
            models: serde_json::from_str(&models).map_err(|e| StoreError::Database(Box::new(e)))?,
            private,
            standard: parse_json(&standard)?,
            created_at,
        })
    })())
}

pub fn all_standard_runs(conn: &Connection) -> Result<Vec<StandardRun>> {
    all(
        conn,
        "SELECT * FROM standard_runs ORDER BY id DESC",
        [],
        standard_run_from,
    )
}

pub fn standard_runs(conn: &Connection, hash: &str) -> Result<Vec<StandardRun>> {
    all(
        conn,
        "SELECT * FROM standard_runs WHERE hash = ?1 ORDER BY id",
        [hash],
        standard_run_from,
    )
}

pub fn standard_run_of(conn: &Connection, project_id: i64) -> Result<Option<StandardRun>> {
    one(
        conn,
        "SELECT * FROM standard_runs WHERE prompts_project_id = ?1 OR battles_project_id = ?1
         ORDER BY id DESC LIMIT 1",
        [project_id],
        standard_run_from,
    )
}

pub fn instance_setting(conn: &Connection, name: &str, value: &str) -> Result<String> {
    execute(
        conn,
        "INSERT INTO instance_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        [name, value],
    )?;
    scalar(
        conn,
        "SELECT value FROM instance_settings WHERE name = ?1",
        [name],
    )?
    .ok_or(StoreError::NotFound("setting"))
}
