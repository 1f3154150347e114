//! Quality: the SQL of the quality context and the adapter of the `Quality` port.

use async_trait::async_trait;
use quorum_store::Quality;

use super::rows::*;
use super::*;
use crate::PgStore;

#[async_trait]
impl Quality for PgStore {
    async fn settle_item(&self, item_id: i64, now: i64) -> Result<()> {
        transaction!(self.pool, |conn| settle_item(conn, item_id, now).await)
    }
    async fn item_answers(&self, item_id: i64) -> Result<Vec<ItemAnswer>> {
        item_answers(&self.pool, item_id).await
    }
    async fn set_quality(&self, project_id: i64, quality: QualityPolicy) -> Result<()> {
        transaction!(self.pool, |conn| set_quality(conn, project_id, &quality)
            .await)
    }
    async fn rater_record(&self, project_id: i64, user_id: i64, since: i64) -> Result<RaterRecord> {
        rater_record(&self.pool, project_id, user_id, since).await
    }
    async fn rater_state(&self, project_id: i64, user_id: i64) -> Result<Option<RaterState>> {
        Ok(rater_states(&self.pool, project_id, Some(user_id))
            .await?
            .pop())
    }
    async fn rater_states(&self, project_id: i64) -> Result<Vec<RaterState>> {
        rater_states(&self.pool, project_id, None).await
    }
    async fn change_rater(
        &self,
        project_id: i64,
        user_id: i64,
        change: RaterChange,
        actor_id: Option<i64>,
        now: i64,
    ) -> Result<bool> {
        transaction!(self.pool, |conn| change_rater(
            conn, project_id, user_id, &change, actor_id, now
        )
        .await)
    }
    async fn rater_events(&self, project_id: i64) -> Result<Vec<RaterEvent>> {
        rater_events(&self.pool, project_id).await
    }
    async fn qualification(&self, user_id: i64, skill: &str) -> Result<Option<bool>> {
        qualification(&self.pool, user_id, skill).await
    }
    async fn put_reviews(&self, reviews: Vec<Review>) -> Result<()> {
        transaction!(self.pool, |conn| put_reviews(conn, &reviews).await)
    }
    async fn reviews(&self, project_id: i64) -> Result<Vec<Review>> {
        reviews(&self.pool, project_id).await
    }
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
    rows.iter().map(item_answer_from).collect()
}

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
    if let Some((kind, subject)) = standing_event(user_id, change, actor_id) {
        emit(conn, Some(project_id), kind, &subject, now).await?;
    }
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
        .map(rater_event_from)
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
        emit(
            conn,
            Some(r.project_id),
            "review.created",
            &review_event(r),
            r.created_at,
        )
        .await?;
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
        .map(review_from)
        .collect()
}

/// Settles an item: an `item.completed` event when it had not already reached its overlap.
pub async fn settle_item(conn: &mut PgConnection, item_id: i64, now: i64) -> Result<()> {
    let completes: Option<i64> = sqlx::query_scalar(
        "SELECT items.project_id FROM items JOIN projects ON projects.id = items.project_id
         WHERE items.id = $1 AND NOT settled AND responses < projects.overlap FOR UPDATE OF items",
    )
    .bind(item_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(database_error)?;
    sqlx::query("UPDATE items SET settled = TRUE, open = FALSE WHERE id = $1")
        .bind(item_id)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    if let Some(project) = completes {
        item_completed(conn, project, item_id, "settled", now).await?;
    }
    Ok(())
}
