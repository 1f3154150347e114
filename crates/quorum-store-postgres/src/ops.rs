//! The SQL of the PostgreSQL backend. Write functions run inside one transaction each (see
//! `lib.rs`); read functions run on the pool.

use quorum_core::Role;
use quorum_store::{
    BattleSides, BattleVote, ExportRow, Generation, ImportReport, ItemAnswer, ItemBatch, ItemRef,
    Lease, LeaseState, LocalePolicy, Member, ModelSpec, NewProject, NewToken, NewUser, NextRequest,
    Pool, Project, ProjectStats, QualityPolicy, RaterActivity, RaterChange, RaterEvent,
    RaterRecord, RaterState, Response, Result, Review, StandardRun, StoreError, StoredItem,
    Submission, SubmitOutcome, Token, User, Verdict,
};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, Row};

use crate::database_error;

type Db = Postgres;

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn parse_json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(Box::new(e)))
}

fn get<'r, T: sqlx::Decode<'r, Db> + sqlx::Type<Db>>(row: &'r PgRow, column: &str) -> Result<T> {
    row.try_get(column).map_err(database_error)
}

fn user_from(row: &PgRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        is_admin: get(row, "is_admin")?,
        created_at: get(row, "created_at")?,
        disabled_at: get(row, "disabled_at")?,
    })
}

fn token_from(row: &PgRow) -> Result<Token> {
    Ok(Token {
        id: get(row, "token_id")?,
        user_id: get(row, "user_id")?,
        name: get(row, "token_name")?,
        created_at: get(row, "token_created_at")?,
        expires_at: get(row, "expires_at")?,
        last_used_at: get(row, "last_used_at")?,
    })
}

/// A token's columns under the names [`token_from`] reads (users share some of them).
const TOKEN_COLUMNS: &str = "t.id AS token_id, t.user_id, t.name AS token_name, \
    t.created_at AS token_created_at, t.expires_at, t.last_used_at";

fn project_from(row: &PgRow) -> Result<Project> {
    Ok(Project {
        id: get(row, "id")?,
        name: get(row, "name")?,
        instructions: get(row, "instructions")?,
        schema: parse_json(&get::<String>(row, "schema")?)?,
        overlap: get(row, "overlap")?,
        lease_seconds: get(row, "lease_seconds")?,
        locale_policy: LocalePolicy::parse(&get::<String>(row, "locale_policy")?),
        min_overlap: get(row, "min_overlap")?,
        target_confidence: get(row, "target_confidence")?,
        quality: serde_json::from_str(&get::<String>(row, "quality")?)
            .map_err(|e| StoreError::Database(Box::new(e)))?,
        created_at: get(row, "created_at")?,
    })
}

fn member_from(row: &PgRow) -> Result<Member> {
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

fn optional_json(row: &PgRow, column: &str) -> Result<Option<Value>> {
    get::<Option<String>>(row, column)?
        .map(|t| parse_json(&t))
        .transpose()
}

fn item_from(row: &PgRow) -> Result<StoredItem> {
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
        priority: get(row, "priority")?,
        responses: get(row, "responses")?,
        active_leases: get(row, "active_leases")?,
        created_at: get(row, "created_at")?,
    })
}

fn lease_from(row: &PgRow) -> Result<Lease> {
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

fn response_from(row: &PgRow) -> Result<Response> {
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

pub async fn create_user(conn: &mut PgConnection, user: NewUser) -> Result<User> {
    let row = sqlx::query(
        "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING *",
    )
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(user.is_admin)
    .bind(user.created_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match database_error(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a user named `{}` already exists", user.name)),
        other => other,
    })?;
    user_from(&row)
}

pub async fn user_where<T>(pool: &PgPool, sql: &'static str, value: T) -> Result<Option<User>>
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

pub async fn list_users(pool: &PgPool) -> Result<Vec<User>> {
    let rows = sqlx::query("SELECT * FROM users ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(database_error)?;
    rows.iter().map(user_from).collect()
}

pub async fn create_token(pool: &PgPool, token: &NewToken) -> Result<i64> {
    let row = sqlx::query("INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(token.user_id)
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(pool)
        .await
        .map_err(database_error)?;
    get(&row, "id")
}

pub async fn user_by_token_hash(
    pool: &PgPool,
    hash: &str,
    now: i64,
) -> Result<Option<(User, Token)>> {
    let sql = format!(
        "SELECT u.*, {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)
           AND u.disabled_at IS NULL"
    );
    let row = sqlx::query(&sql)
        .bind(hash)
        .bind(now)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.map(|row| Ok((user_from(&row)?, token_from(&row)?)))
        .transpose()
}

pub async fn tokens(pool: &PgPool, user_id: i64) -> Result<Vec<Token>> {
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.id");
    let rows = sqlx::query(&sql)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(database_error)?;
    rows.iter().map(token_from).collect()
}

pub async fn revoke_tokens(
    conn: &mut PgConnection,
    user_id: i64,
    named: Option<&str>,
) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM api_tokens WHERE user_id = $1 AND ($2::TEXT IS NULL OR name = $2)",
    )
    .bind(user_id)
    .bind(named)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(done.rows_affected())
}

pub async fn set_user_disabled(
    conn: &mut PgConnection,
    user_id: i64,
    disabled_at: Option<i64>,
) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET disabled_at = $2 WHERE id = $1")
        .bind(user_id)
        .bind(disabled_at)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    if done.rows_affected() > 0 && disabled_at.is_some() {
        revoke_tokens(conn, user_id, None).await?;
    }
    Ok(done.rows_affected() > 0)
}

// ---- projects and members ----

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

// ---- items ----

fn locale_keys(locale: Option<&str>) -> (Option<String>, Option<String>) {
    locale.map(quorum_core::locale_keys).unzip()
}

/// Rows sent per `INSERT … SELECT FROM UNNEST(…)` statement.
const IMPORT_CHUNK: usize = 5000;

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

pub async fn item_answers(pool: &PgPool, item_id: i64) -> Result<Vec<ItemAnswer>> {
    // Through the item's leases (indexed by item), so responses need no index of their own.
    let rows = sqlx::query(
        "SELECT r.id, r.user_id, r.answers FROM leases l JOIN responses r ON r.lease_id = l.id
         WHERE l.item_id = $1 ORDER BY r.id",
    )
    .bind(item_id)
    .fetch_all(pool)
    .await
    .map_err(database_error)?;
    rows.iter()
        .map(|row| {
            Ok(ItemAnswer {
                response_id: get(row, "id")?,
                user_id: get(row, "user_id")?,
                answers: parse_json(&get::<String>(row, "answers")?)?,
            })
        })
        .collect()
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

/// Adds `delta_responses` and `delta_active` to an item's counters and recomputes `open`.
async fn count(
    conn: &mut PgConnection,
    item_id: i64,
    overlap: i32,
    delta_responses: i64,
    delta_active: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE items SET responses = responses + $1, active_leases = active_leases + $2,
         open = (NOT settled AND responses + $1 + active_leases + $2 < $3) WHERE id = $4",
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
async fn expire(conn: &mut PgConnection, lease_id: i64, overlap: i32) -> Result<()> {
    let item: Option<i64> = sqlx::query_scalar(
        "UPDATE leases SET state = 'expired' WHERE id = $1 AND state = 'active' RETURNING item_id",
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

/// Two autocommitted statements, no explicit transaction: each is atomic on its own, and
/// together they take two round trips instead of four.
pub async fn next_lease(
    pool: &PgPool,
    request: NextRequest,
) -> Result<Option<(Lease, StoredItem)>> {
    let NextRequest {
        project_id,
        user_id,
        overlap,
        lease_seconds,
        ref locales,
        pool: which,
        now,
    } = request;
    // In one round trip: make this transaction's commit asynchronous, expire the project's
    // stale leases (freeing their slots), and look for the rater's own live lease, which is
    // returned again if there is one. The one-row `config` relation on the outside makes sure
    // `set_config` runs whether or not a lease is found.
    //
    // The commit need not wait for its WAL flush because a lease is not an answer: if the
    // server crashes first, the item simply returns to the pool, and the next durable commit
    // (an answer) flushes it anyway, in order.
    let row = sqlx::query(
        "WITH expired AS (
             UPDATE leases SET state = 'expired'
             WHERE project_id = $1 AND state = 'active' AND expires_at <= $3 RETURNING item_id),
         freed AS (SELECT item_id, COUNT(*)::INT AS n FROM expired GROUP BY item_id),
         released AS (
             UPDATE items SET active_leases = active_leases - freed.n,
                              open = (NOT settled AND responses + active_leases - freed.n < $4)
             FROM freed WHERE items.id = freed.item_id)
         SELECT live.* FROM (SELECT set_config('synchronous_commit', 'off', true)) AS config
         LEFT JOIN LATERAL (
             SELECT * FROM leases
             WHERE user_id = $2 AND project_id = $1 AND state = 'active' AND expires_at > $3 LIMIT 1
         ) AS live ON TRUE",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(now)
    .bind(overlap)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    if get::<Option<i64>>(&row, "id")?.is_some() {
        let lease = lease_from(&row)?;
        let item = item(pool, lease.item_id)
            .await?
            .ok_or(StoreError::NotFound("item"))?;
        return Ok(Some((lease, item)));
    }
    // Choose, lease and count in one statement. Rows another transaction is assigning are
    // skipped, not waited for: concurrent raters each take a different open item, and the open
    // flag is re-checked after the lock.
    let mut sql = String::from(match which {
        Pool::Any => "WITH candidate AS (SELECT id FROM items i WHERE i.project_id = $1 AND i.open",
        Pool::Regular => {
            "WITH candidate AS (SELECT id FROM items i WHERE i.project_id = $1 AND i.open AND i.gold IS NULL"
        }
        Pool::Gold => {
            "WITH candidate AS (SELECT id FROM items i WHERE i.project_id = $1 AND i.gold IS NOT NULL"
        }
    });
    sql.push_str(
        " AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.item_id = i.id AND l.user_id = $2)",
    );
    if locales.is_some() {
        // Arrays keep the statement text the same whatever the number of locales.
        sql.push_str(
            " AND (i.locale_key IS NULL OR i.locale_key = ANY($6) OR i.language_key = ANY($7))",
        );
    }
    sql.push_str(if which == Pool::Gold {
        " ORDER BY random()"
    } else {
        " ORDER BY i.priority DESC, i.id ASC"
    });
    sql.push_str(
        " LIMIT 1 FOR UPDATE SKIP LOCKED),
         lease AS (
             INSERT INTO leases (project_id, item_id, user_id, created_at, expires_at)
             SELECT $1, id, $2, $3, $4 FROM candidate RETURNING *),
         item AS (
             UPDATE items SET active_leases = active_leases + 1, open = (NOT settled AND responses + active_leases + 1 < $5)
             WHERE id = (SELECT item_id FROM lease) RETURNING *)
         SELECT chosen.* FROM (SELECT set_config('synchronous_commit', 'off', true)) AS config
         LEFT JOIN LATERAL (
             SELECT item.*, lease.id AS lease_id, lease.created_at AS lease_created_at, lease.expires_at
             FROM lease JOIN item ON item.id = lease.item_id
         ) AS chosen ON TRUE",
    );
    let mut query = sqlx::query(&sql)
        .bind(project_id)
        .bind(user_id)
        .bind(now)
        .bind(now + lease_seconds * 1000)
        .bind(overlap);
    if let Some(filter) = locales {
        query = query.bind(&filter.tags).bind(&filter.languages);
    }
    let row = query.fetch_one(pool).await.map_err(database_error)?;
    if get::<Option<i64>>(&row, "lease_id")?.is_none() {
        return Ok(None);
    }
    let item = item_from(&row)?;
    let lease = Lease {
        id: get(&row, "lease_id")?,
        project_id,
        item_id: item.id,
        user_id,
        created_at: get(&row, "lease_created_at")?,
        expires_at: get(&row, "expires_at")?,
        state: LeaseState::Active,
    };
    Ok(Some((lease, item)))
}

pub async fn lease(pool: &PgPool, id: i64) -> Result<Option<Lease>> {
    let row = sqlx::query("SELECT * FROM leases WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(lease_from).transpose()
}

async fn own_lease(conn: &mut PgConnection, lease_id: i64, user_id: i64) -> Result<Lease> {
    let row = sqlx::query("SELECT * FROM leases WHERE id = $1 FOR UPDATE")
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

/// The common case of a submission in one autocommitted statement: the caller's lease is live,
/// so mark it answered, count the response and store it. Returns `None` when the lease is not
/// the caller's live lease (already answered, skipped, expired, someone else's or missing):
/// [`submit`] then sorts out which, replays, or refuses.
pub async fn submit_live_lease(pool: &PgPool, s: &Submission) -> Result<Option<Response>> {
    let row = sqlx::query(
        "WITH answered AS (
             UPDATE leases SET state = 'submitted'
             WHERE id = $2 AND user_id = $1 AND state = 'active' AND expires_at > $6
             RETURNING project_id, item_id),
         counted AS (
             UPDATE items SET responses = responses + 1, active_leases = active_leases - 1,
                              open = (NOT settled AND responses + active_leases < $7)
             WHERE id = (SELECT item_id FROM answered))
         INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, idempotency_key, created_at, gold_correct)
         SELECT project_id, item_id, $1, $2, $3, $4, $5, $6, $8
         FROM answered, (SELECT set_config('synchronous_commit', 'on', true)) AS durable
         RETURNING *",
    )
    .bind(s.user_id)
    .bind(s.lease_id)
    .bind(json_text(&s.answers))
    .bind(s.time_spent_ms)
    .bind(&s.idempotency_key)
    .bind(s.now)
    .bind(s.overlap)
    .bind(s.gold_correct)
    .fetch_optional(pool)
    .await
    .map_err(database_error)?;
    row.as_ref().map(response_from).transpose()
}

pub async fn submit(conn: &mut PgConnection, s: Submission) -> Result<SubmitOutcome> {
    // An answer is acknowledged only once it is flushed, whatever the server's default.
    sqlx::query("SELECT set_config('synchronous_commit', 'on', true)")
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    // Lock the lease first: a concurrent retry with the same idempotency key then waits here
    // and afterwards finds the first attempt's response instead of a conflict.
    let mut lease = own_lease(conn, s.lease_id, s.user_id).await?;
    // A live lease has no response yet, so only an answered one can be a retry to replay.
    if lease.state != LeaseState::Active
        && let Some(key) = &s.idempotency_key
    {
        let row =
            sqlx::query("SELECT * FROM responses WHERE user_id = $1 AND idempotency_key = $2")
                .bind(s.user_id)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(database_error)?;
        if let Some(row) = row {
            return Ok(SubmitOutcome::Replayed(response_from(&row)?));
        }
    }
    if lease.state == LeaseState::Active && lease.expires_at <= s.now {
        expire(conn, lease.id, s.overlap).await?;
        lease.state = LeaseState::Expired;
    }
    let (responses, active) = match lease.state {
        LeaseState::Submitted => {
            return Err(StoreError::Conflict(
                "this lease has already been answered".into(),
            ));
        }
        LeaseState::Skipped => return Err(StoreError::Conflict("this lease was skipped".into())),
        LeaseState::Active => (1, -1),
        LeaseState::Expired => {
            let (taken, gold): (i64, bool) = sqlx::query_as(
                "SELECT (responses + active_leases)::BIGINT, gold IS NOT NULL FROM items WHERE id = $1 FOR UPDATE",
            )
            .bind(lease.item_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(database_error)?;
            if taken >= i64::from(s.overlap) && !(gold && s.gold_pool) {
                return Err(StoreError::LeaseExpired);
            }
            (1, 0)
        }
    };
    // Counters, lease state and the response in one round trip.
    let row = sqlx::query(
        "WITH counted AS (
             UPDATE items SET responses = responses + $9, active_leases = active_leases + $10,
                              open = (NOT settled AND responses + $9 + active_leases + $10 < $11)
             WHERE id = $2),
         answered AS (UPDATE leases SET state = 'submitted' WHERE id = $4)
         INSERT INTO responses (project_id, item_id, user_id, lease_id, answers, time_spent_ms, idempotency_key, created_at, gold_correct)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $12) RETURNING *",
    )
    .bind(lease.project_id)
    .bind(lease.item_id)
    .bind(s.user_id)
    .bind(lease.id)
    .bind(json_text(&s.answers))
    .bind(s.time_spent_ms)
    .bind(&s.idempotency_key)
    .bind(s.now)
    .bind(responses)
    .bind(active)
    .bind(s.overlap)
    .bind(s.gold_correct)
    .fetch_one(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(SubmitOutcome::Created(response_from(&row)?))
}

pub async fn skip(conn: &mut PgConnection, lease_id: i64, user_id: i64) -> Result<()> {
    let lease = own_lease(conn, lease_id, user_id).await?;
    if lease.state != LeaseState::Active {
        return Err(StoreError::Conflict(format!(
            "this lease is {}, not active",
            lease.state.as_str()
        )));
    }
    let overlap: i32 = sqlx::query_scalar("SELECT overlap FROM projects WHERE id = $1")
        .bind(lease.project_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(database_error)?;
    sqlx::query("UPDATE leases SET state = 'skipped' WHERE id = $1")
        .bind(lease.id)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    count(conn, lease.item_id, overlap, 0, -1).await
}

// ---- reports ----

pub async fn rater_activity(
    pool: &PgPool,
    project_id: i64,
    since: i64,
) -> Result<Vec<RaterActivity>> {
    let rows = sqlx::query(
        "SELECT u.id, u.name,
  (SELECT COUNT(*) FROM responses r WHERE r.user_id = u.id AND r.project_id = $1) AS responses,
  (SELECT COUNT(*) FROM responses r WHERE r.user_id = u.id AND r.project_id = $1 AND r.created_at >= $2) AS responses_since,
  (SELECT COUNT(*) FROM leases l WHERE l.user_id = u.id AND l.project_id = $1 AND l.state = 'skipped') AS skips,
  (SELECT MAX(r.created_at) FROM responses r WHERE r.user_id = u.id AND r.project_id = $1) AS last_active,
  (SELECT m.role FROM members m WHERE m.user_id = u.id AND m.project_id = $1) AS role
FROM users u
WHERE u.id IN (SELECT user_id FROM members WHERE project_id = $1
               UNION SELECT user_id FROM responses WHERE project_id = $1)
ORDER BY u.name",
    )
    .bind(project_id)
    .bind(since)
    .fetch_all(pool)
    .await
    .map_err(database_error)?;
    rows.iter()
        .map(|row| {
            Ok(RaterActivity {
                user_id: get(row, "id")?,
                name: get(row, "name")?,
                responses: get(row, "responses")?,
                responses_since: get(row, "responses_since")?,
                skips: get(row, "skips")?,
                last_active: get(row, "last_active")?,
                role: get(row, "role")?,
            })
        })
        .collect()
}

pub async fn export_responses(
    pool: &PgPool,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<ExportRow>> {
    // A page must be read straight off the (project_id, id) index and stop at its limit. On a
    // young table the planner's statistics lag behind, and it fetched every remaining row and
    // sorted them, page after page (quadratic in the export). Sorting and bitmap scans are
    // therefore off for this one read-only transaction. Per-row key lookups for the item and
    // the user keep a page to its own rows.
    let mut tx = pool.begin().await.map_err(database_error)?;
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *tx)
        .await
        .map_err(database_error)?;
    sqlx::query("SET LOCAL enable_bitmapscan = off")
        .execute(&mut *tx)
        .await
        .map_err(database_error)?;
    let rows = sqlx::query(
        "SELECT r.id, r.item_id, (SELECT external_id FROM items WHERE id = r.item_id) AS external_id,
                r.user_id, (SELECT name FROM users WHERE id = r.user_id) AS name, r.answers, r.time_spent_ms, r.created_at,
                (SELECT gold IS NOT NULL FROM items WHERE id = r.item_id) AS gold
         FROM responses r WHERE r.project_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
    )
    .bind(project_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(database_error)?;
    tx.commit().await.map_err(database_error)?;
    rows.iter()
        .map(|row| {
            Ok(ExportRow {
                response_id: get(row, "id")?,
                item_id: get(row, "item_id")?,
                external_id: get(row, "external_id")?,
                user_id: get(row, "user_id")?,
                user_name: get(row, "name")?,
                answers: parse_json(&get::<String>(row, "answers")?)?,
                time_spent_ms: get(row, "time_spent_ms")?,
                created_at: get(row, "created_at")?,
                gold: get(row, "gold")?,
            })
        })
        .collect()
}

pub async fn stats(pool: &PgPool, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS items,
                COUNT(*) FILTER (WHERE settled OR responses >= $1) AS complete,
                COUNT(*) FILTER (WHERE NOT settled AND responses > 0 AND responses < $1) AS in_progress,
                COUNT(*) FILTER (WHERE responses = 0) AS untouched,
                COALESCE(SUM(responses), 0)::BIGINT AS responses
         FROM items WHERE project_id = $2",
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
    let raters: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT user_id) FROM responses WHERE project_id = $1")
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

// ---- model evaluation ----

pub async fn upsert_model(conn: &mut PgConnection, model: ModelSpec) -> Result<()> {
    sqlx::query(
        "INSERT INTO models (name, base_url, model_id, api_key_env, parameters, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url, model_id = excluded.model_id,
         api_key_env = excluded.api_key_env, parameters = excluded.parameters",
    )
    .bind(&model.name)
    .bind(&model.base_url)
    .bind(&model.model_id)
    .bind(&model.api_key_env)
    .bind(json_text(&model.parameters))
    .bind(model.created_at)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

pub async fn models(pool: &PgPool) -> Result<Vec<ModelSpec>> {
    let rows = sqlx::query("SELECT * FROM models ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(database_error)?;
    rows.iter()
        .map(|row| {
            Ok(ModelSpec {
                name: get(row, "name")?,
                base_url: get(row, "base_url")?,
                model_id: get(row, "model_id")?,
                api_key_env: get(row, "api_key_env")?,
                parameters: parse_json(&get::<String>(row, "parameters")?)?,
                created_at: get(row, "created_at")?,
            })
        })
        .collect()
}

pub async fn put_generations(conn: &mut PgConnection, generations: &[Generation]) -> Result<()> {
    for g in generations {
        sqlx::query(
        "INSERT INTO generations (project_id, item_id, model, output, error, latency_ms, prompt_tokens,
         completion_tokens, attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (item_id, model) DO UPDATE SET output = excluded.output, error = excluded.error,
         latency_ms = excluded.latency_ms, prompt_tokens = excluded.prompt_tokens,
         completion_tokens = excluded.completion_tokens, attempts = excluded.attempts,
         created_at = excluded.created_at",
    )
    .bind(g.project_id)
    .bind(g.item_id)
    .bind(&g.model)
    .bind(&g.output)
    .bind(&g.error)
    .bind(g.latency_ms)
    .bind(g.prompt_tokens)
    .bind(g.completion_tokens)
    .bind(g.attempts)
    .bind(g.created_at)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    }
    Ok(())
}

pub async fn generations(pool: &PgPool, project_id: i64) -> Result<Vec<Generation>> {
    let rows =
        sqlx::query("SELECT * FROM generations WHERE project_id = $1 ORDER BY item_id, model")
            .bind(project_id)
            .fetch_all(pool)
            .await
            .map_err(database_error)?;
    rows.iter()
        .map(|row| {
            Ok(Generation {
                project_id: get(row, "project_id")?,
                item_id: get(row, "item_id")?,
                model: get(row, "model")?,
                output: get(row, "output")?,
                error: get(row, "error")?,
                latency_ms: get(row, "latency_ms")?,
                prompt_tokens: get(row, "prompt_tokens")?,
                completion_tokens: get(row, "completion_tokens")?,
                attempts: get(row, "attempts")?,
                created_at: get(row, "created_at")?,
            })
        })
        .collect()
}

pub async fn import_battles(
    conn: &mut PgConnection,
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
    let mut external = Vec::with_capacity(items.len());
    for item in items.iter() {
        external.push(
            item.external_id
                .map(str::to_string)
                .ok_or_else(|| StoreError::Conflict("a battle item needs an external id".into()))?,
        );
    }
    let report = import_items(conn, project_id, items, now).await?;
    let (model_a, model_b, prompt): (Vec<String>, Vec<String>, Vec<Option<i64>>) = sides
        .into_iter()
        .map(|s| (s.model_a, s.model_b, s.prompt_item_id))
        .fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut a, mut b, mut p), (x, y, z)| {
                a.push(x);
                b.push(y);
                p.push(z);
                (a, b, p)
            },
        );
    sqlx::query(
        "INSERT INTO battles (item_id, project_id, model_a, model_b, prompt_item_id)
         SELECT i.id, $1, s.model_a, s.model_b, s.prompt_item_id
         FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[])
              AS s(external_id, model_a, model_b, prompt_item_id)
         JOIN items i ON i.project_id = $1 AND i.external_id = s.external_id
         ON CONFLICT (item_id) DO UPDATE SET model_a = excluded.model_a, model_b = excluded.model_b,
         prompt_item_id = excluded.prompt_item_id",
    )
    .bind(project_id)
    .bind(&external)
    .bind(&model_a)
    .bind(&model_b)
    .bind(&prompt)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(report)
}

pub async fn battle_votes(
    pool: &PgPool,
    project_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<BattleVote>> {
    let rows = sqlx::query(
        "SELECT r.id, r.item_id, b.model_a, b.model_b, u.name, r.answers, i.category, i.locale, m.locales
         FROM responses r JOIN battles b ON b.item_id = r.item_id JOIN items i ON i.id = r.item_id
         JOIN users u ON u.id = r.user_id
         LEFT JOIN members m ON m.project_id = r.project_id AND m.user_id = r.user_id
         WHERE r.project_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
    )
    .bind(project_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(database_error)?;
    rows.iter()
        .map(|row| {
            let rater_locales = match get::<Option<String>>(row, "locales")? {
                Some(text) => {
                    serde_json::from_str(&text).map_err(|e| StoreError::Database(Box::new(e)))?
                }
                None => Vec::new(),
            };
            Ok(BattleVote {
                response_id: get(row, "id")?,
                item_id: get(row, "item_id")?,
                model_a: get(row, "model_a")?,
                model_b: get(row, "model_b")?,
                user_name: get(row, "name")?,
                answers: parse_json(&get::<String>(row, "answers")?)?,
                category: get(row, "category")?,
                item_locale: get(row, "locale")?,
                rater_locales,
            })
        })
        .collect()
}

// ---- quality control ----

pub async fn set_quality(
    conn: &mut PgConnection,
    project_id: i64,
    quality: &QualityPolicy,
) -> Result<()> {
    let done = sqlx::query("UPDATE projects SET quality = $1 WHERE id = $2")
        .bind(json_text(quality))
        .bind(project_id)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    match done.rows_affected() {
        0 => Err(StoreError::NotFound("project")),
        _ => Ok(()),
    }
}

pub async fn rater_record(
    pool: &PgPool,
    project_id: i64,
    user_id: i64,
    since: i64,
) -> Result<RaterRecord> {
    let row = sqlx::query(
        "SELECT r.responses, r.gold_answered, r.gold_correct, l.skips, v.accepted, v.rejected,
                ARRAY(SELECT time_spent_ms FROM responses
                      WHERE user_id = $1 AND project_id = $2 AND created_at >= $3
                      ORDER BY created_at DESC LIMIT 25) AS recent
         FROM (SELECT COUNT(*) AS responses, COUNT(gold_correct) AS gold_answered,
                      COUNT(*) FILTER (WHERE gold_correct) AS gold_correct
               FROM responses WHERE user_id = $1 AND project_id = $2 AND created_at >= $3) r,
              (SELECT COUNT(*) AS skips FROM leases
               WHERE user_id = $1 AND project_id = $2 AND state = 'skipped' AND created_at >= $3) l,
              (SELECT COUNT(*) FILTER (WHERE verdict = 'accept') AS accepted,
                      COUNT(*) FILTER (WHERE verdict <> 'accept') AS rejected
               FROM reviews WHERE project_id = $2 AND rater_id = $1 AND created_at >= $3) v",
    )
    .bind(user_id)
    .bind(project_id)
    .bind(since)
    .fetch_one(pool)
    .await
    .map_err(database_error)?;
    Ok(RaterRecord {
        responses: get(&row, "responses")?,
        skips: get(&row, "skips")?,
        gold_answered: get(&row, "gold_answered")?,
        gold_correct: get(&row, "gold_correct")?,
        accepted: get(&row, "accepted")?,
        rejected: get(&row, "rejected")?,
        recent_times_ms: get(&row, "recent")?,
    })
}

fn rater_state_from(row: &PgRow) -> Result<RaterState> {
    Ok(RaterState {
        user_id: get(row, "user_id")?,
        paused: get(row, "paused")?,
        reinstated_at: get(row, "reinstated_at")?,
    })
}

pub async fn rater_states(
    pool: &PgPool,
    project_id: i64,
    user_id: Option<i64>,
) -> Result<Vec<RaterState>> {
    sqlx::query(
        "SELECT * FROM rater_states WHERE project_id = $1 AND ($2::BIGINT IS NULL OR user_id = $2)
         ORDER BY user_id",
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_all(pool)
    .await
    .map_err(database_error)?
    .iter()
    .map(rater_state_from)
    .collect()
}

pub async fn change_rater(
    conn: &mut PgConnection,
    project_id: i64,
    user_id: i64,
    change: &RaterChange,
    actor_id: Option<i64>,
    now: i64,
) -> Result<bool> {
    let query = match change {
        RaterChange::Paused { reason } => sqlx::query(
            "INSERT INTO rater_states (project_id, user_id, paused) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, user_id) DO UPDATE SET paused = excluded.paused
             WHERE rater_states.paused IS NULL",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(reason),
        RaterChange::Reinstated { .. } => sqlx::query(
            "UPDATE rater_states SET paused = NULL, reinstated_at = $3
             WHERE project_id = $1 AND user_id = $2 AND paused IS NOT NULL",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(now),
        RaterChange::Qualified { skill, .. } | RaterChange::NotQualified { skill, .. } => {
            sqlx::query(
                "INSERT INTO qualifications (user_id, skill, passed, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, skill) DO UPDATE SET passed = excluded.passed, at = excluded.at",
            )
            .bind(user_id)
            .bind(skill)
            .bind(matches!(change, RaterChange::Qualified { .. }))
            .bind(now)
        }
    };
    let done = query.execute(&mut *conn).await.map_err(database_error)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO rater_events (project_id, user_id, change, actor_id, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(json_text(change))
    .bind(actor_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    // A decision under a shared skill affects every project naming it: each logs it.
    if let Some(shared) = change.shared_skill() {
        sqlx::query(
            "INSERT INTO rater_events (project_id, user_id, change, actor_id, at)
             SELECT id, $2, $3, $4, $5 FROM projects
             WHERE id != $1 AND quality::jsonb #>> '{qualification,skill}' = $6",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(json_text(change))
        .bind(actor_id)
        .bind(now)
        .bind(shared)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    }
    Ok(true)
}

pub async fn rater_events(pool: &PgPool, project_id: i64) -> Result<Vec<RaterEvent>> {
    sqlx::query("SELECT * FROM rater_events WHERE project_id = $1 ORDER BY id")
        .bind(project_id)
        .fetch_all(pool)
        .await
        .map_err(database_error)?
        .iter()
        .map(|row| {
            Ok(RaterEvent {
                id: get(row, "id")?,
                project_id: get(row, "project_id")?,
                user_id: get(row, "user_id")?,
                change: serde_json::from_str(&get::<String>(row, "change")?)
                    .map_err(|e| StoreError::Database(Box::new(e)))?,
                actor_id: get(row, "actor_id")?,
                at: get(row, "at")?,
            })
        })
        .collect()
}

pub async fn qualification(pool: &PgPool, user_id: i64, skill: &str) -> Result<Option<bool>> {
    sqlx::query_scalar("SELECT passed FROM qualifications WHERE user_id = $1 AND skill = $2")
        .bind(user_id)
        .bind(skill)
        .fetch_optional(pool)
        .await
        .map_err(database_error)
}

pub async fn put_reviews(conn: &mut PgConnection, reviews: &[Review]) -> Result<()> {
    for r in reviews {
        sqlx::query(
            "INSERT INTO reviews (response_id, project_id, item_id, rater_id, reviewer_id, verdict, answers, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (response_id) DO UPDATE SET reviewer_id = excluded.reviewer_id,
             verdict = excluded.verdict, answers = excluded.answers, created_at = excluded.created_at",
        )
        .bind(r.response_id)
        .bind(r.project_id)
        .bind(r.item_id)
        .bind(r.rater_id)
        .bind(r.reviewer_id)
        .bind(r.verdict.as_str())
        .bind(r.answers.as_ref().map(json_text))
        .bind(r.created_at)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    }
    Ok(())
}

pub async fn reviews(pool: &PgPool, project_id: i64) -> Result<Vec<Review>> {
    sqlx::query("SELECT * FROM reviews WHERE project_id = $1 ORDER BY response_id")
        .bind(project_id)
        .fetch_all(pool)
        .await
        .map_err(database_error)?
        .iter()
        .map(|row| {
            let verdict: String = get(row, "verdict")?;
            Ok(Review {
                response_id: get(row, "response_id")?,
                project_id: get(row, "project_id")?,
                item_id: get(row, "item_id")?,
                rater_id: get(row, "rater_id")?,
                reviewer_id: get(row, "reviewer_id")?,
                verdict: Verdict::parse(&verdict).ok_or_else(|| {
                    StoreError::Database(format!("unknown verdict {verdict}").into())
                })?,
                answers: optional_json(row, "answers")?,
                created_at: get(row, "created_at")?,
            })
        })
        .collect()
}

// ---- standards ----

pub async fn put_standard_run(conn: &mut PgConnection, run: &StandardRun) -> Result<()> {
    sqlx::query(
        "INSERT INTO standard_runs (hash, prompts_project_id, battles_project_id, models, private, standard, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&run.hash)
    .bind(run.prompts_project_id)
    .bind(run.battles_project_id)
    .bind(json_text(&run.models))
    .bind(run.private)
    .bind(json_text(&run.standard))
    .bind(run.created_at)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(())
}

fn standard_run_from(row: &PgRow) -> Result<StandardRun> {
    Ok(StandardRun {
        hash: get(row, "hash")?,
        prompts_project_id: get(row, "prompts_project_id")?,
        battles_project_id: get(row, "battles_project_id")?,
        models: serde_json::from_str(&get::<String>(row, "models")?)
            .map_err(|e| StoreError::Database(Box::new(e)))?,
        private: get(row, "private")?,
        standard: parse_json(&get::<String>(row, "standard")?)?,
        created_at: get(row, "created_at")?,
    })
}

pub async fn all_standard_runs(pool: &PgPool) -> Result<Vec<StandardRun>> {
    sqlx::query("SELECT * FROM standard_runs ORDER BY id DESC")
        .fetch_all(pool)
        .await
        .map_err(database_error)?
        .iter()
        .map(standard_run_from)
        .collect()
}

pub async fn standard_runs(pool: &PgPool, hash: &str) -> Result<Vec<StandardRun>> {
    sqlx::query("SELECT * FROM standard_runs WHERE hash = $1 ORDER BY id")
        .bind(hash)
        .fetch_all(pool)
        .await
        .map_err(database_error)?
        .iter()
        .map(standard_run_from)
        .collect()
}

pub async fn standard_run_of(pool: &PgPool, project_id: i64) -> Result<Option<StandardRun>> {
    sqlx::query(
        "SELECT * FROM standard_runs WHERE prompts_project_id = $1 OR battles_project_id = $1
         ORDER BY id DESC LIMIT 1",
    )
    .bind(project_id)
    .fetch_optional(pool)
    .await
    .map_err(database_error)?
    .as_ref()
    .map(standard_run_from)
    .transpose()
}

pub async fn instance_setting(pool: &PgPool, name: &str, value: &str) -> Result<String> {
    sqlx::query_scalar(
        "WITH inserted AS (
             INSERT INTO instance_settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING RETURNING value)
         SELECT value FROM inserted UNION ALL
         SELECT value FROM instance_settings WHERE name = $1 LIMIT 1",
    )
    .bind(name)
    .bind(value)
    .fetch_one(pool)
    .await
    .map_err(database_error)
}
