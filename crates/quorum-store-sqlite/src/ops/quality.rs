//! Quality: the SQL of the quality context and the adapter of the `Quality` port.

use async_trait::async_trait;
use quorum_store::Quality;

use super::rows::*;
use super::*;
use crate::SqliteStore;

#[async_trait]
impl Quality for SqliteStore {
    async fn settle_item(&self, item_id: i64, now: i64) -> Result<()> {
        self.write(move |c| settle_item(c, item_id, now)).await
    }
    async fn item_answers(&self, item_id: i64) -> Result<Vec<ItemAnswer>> {
        self.readers.run(move |c| item_answers(c, item_id)).await
    }
    async fn set_quality(&self, project_id: i64, quality: QualityPolicy) -> Result<()> {
        self.write(move |c| set_quality(c, project_id, &quality))
            .await
    }
    async fn rater_record(&self, project_id: i64, user_id: i64, since: i64) -> Result<RaterRecord> {
        self.readers
            .run(move |c| rater_record(c, project_id, user_id, since))
            .await
    }
    async fn rater_state(&self, project_id: i64, user_id: i64) -> Result<Option<RaterState>> {
        self.readers
            .run(move |c| rater_state(c, project_id, user_id))
            .await
    }
    async fn rater_states(&self, project_id: i64) -> Result<Vec<RaterState>> {
        self.readers.run(move |c| rater_states(c, project_id)).await
    }
    async fn change_rater(
        &self,
        project_id: i64,
        user_id: i64,
        change: RaterChange,
        actor_id: Option<i64>,
        now: i64,
    ) -> Result<bool> {
        self.write(move |c| change_rater(c, project_id, user_id, &change, actor_id, now))
            .await
    }
    async fn rater_events(&self, project_id: i64) -> Result<Vec<RaterEvent>> {
        self.readers.run(move |c| rater_events(c, project_id)).await
    }
    async fn qualification(&self, user_id: i64, skill: &str) -> Result<Option<bool>> {
        let skill = skill.to_string();
        self.readers
            .run(move |c| qualification(c, user_id, &skill))
            .await
    }
    async fn put_reviews(&self, reviews: Vec<Review>) -> Result<()> {
        self.write(move |c| put_reviews(c, &reviews)).await
    }
    async fn reviews(&self, project_id: i64) -> Result<Vec<Review>> {
        self.readers.run(move |c| reviews(c, project_id)).await
    }
}

/// Settles an item: an `item.completed` event when it had not already reached its overlap.
pub fn settle_item(conn: &Connection, item_id: i64, now: i64) -> Result<()> {
    let completes: Option<i64> = scalar(
        conn,
        "SELECT items.project_id FROM items JOIN projects ON projects.id = items.project_id
         WHERE items.id = ?1 AND settled = 0 AND responses < projects.overlap",
        [item_id],
    )?;
    execute(
        conn,
        "UPDATE items SET settled = 1, open = 0 WHERE id = ?1",
        [item_id],
    )?;
    if let Some(project) = completes {
        item_completed(conn, project, item_id, "settled", now)?;
    }
    Ok(())
}

pub fn item_answers(conn: &Connection, item_id: i64) -> Result<Vec<ItemAnswer>> {
    all(
        conn,
        // Through the item's leases (indexed by item), so responses need no index of their own.
        "SELECT r.id, r.user_id, r.answers FROM leases l JOIN responses r ON r.lease_id = l.id
         WHERE l.item_id = ?1 ORDER BY r.id",
        [item_id],
        item_answer_from,
    )
}

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
    if let Some((kind, subject)) = standing_event(user_id, change, actor_id) {
        emit(conn, Some(project_id), kind, &subject, now)?;
    }
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
        rater_event_from,
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
        emit(
            conn,
            Some(r.project_id),
            "review.created",
            &review_event(r),
            r.created_at,
        )?;
    }
    Ok(())
}

pub fn reviews(conn: &Connection, project_id: i64) -> Result<Vec<Review>> {
    all(
        conn,
        "SELECT * FROM reviews WHERE project_id = ?1 ORDER BY response_id",
        [project_id],
        review_from,
    )
}
