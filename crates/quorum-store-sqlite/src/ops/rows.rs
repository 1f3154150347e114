//! Row mappers: one function per record, reading its columns by name.

use super::*;

pub(crate) fn user_from(row: &Row<'_>) -> rusqlite::Result<Result<User>> {
    Ok(Ok(User {
        id: row.get("id")?,
        name: row.get("name")?,
        password_hash: row.get("password_hash")?,
        is_admin: row.get::<_, i64>("is_admin")? != 0,
        created_at: row.get("created_at")?,
        disabled_at: row.get("disabled_at")?,
    }))
}

pub(crate) fn token_from(row: &Row<'_>) -> rusqlite::Result<Result<Token>> {
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
pub(crate) const TOKEN_COLUMNS: &str = "t.id AS token_id, t.user_id, t.name AS token_name, \
    t.created_at AS token_created_at, t.expires_at, t.last_used_at";

pub(crate) fn project_from(row: &Row<'_>) -> rusqlite::Result<Result<Project>> {
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

pub(crate) fn member_from(row: &Row<'_>) -> rusqlite::Result<Result<Member>> {
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

pub(crate) fn item_from(row: &Row<'_>) -> rusqlite::Result<Result<StoredItem>> {
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

pub(crate) fn lease_from(row: &Row<'_>) -> rusqlite::Result<Result<Lease>> {
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

pub(crate) fn response_from(row: &Row<'_>) -> rusqlite::Result<Result<Response>> {
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

pub(crate) fn model_from(row: &Row<'_>) -> rusqlite::Result<Result<ModelSpec>> {
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

pub(crate) fn generation_from(row: &Row<'_>) -> rusqlite::Result<Result<Generation>> {
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

pub(crate) fn vote_from(row: &Row<'_>) -> rusqlite::Result<Result<BattleVote>> {
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

pub(crate) fn rater_state_from(row: &Row<'_>) -> rusqlite::Result<Result<RaterState>> {
    Ok(Ok(RaterState {
        user_id: row.get("user_id")?,
        paused: row.get("paused")?,
        reinstated_at: row.get("reinstated_at")?,
    }))
}

pub(crate) fn standard_run_from(row: &Row<'_>) -> rusqlite::Result<Result<StandardRun>> {
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

pub(crate) fn job_from(row: &Row<'_>) -> rusqlite::Result<Result<Job>> {
    let payload: String = row.get("payload")?;
    let state: String = row.get("state")?;
    let job = Job {
        id: row.get("id")?,
        kind: row.get("kind")?,
        project_id: row.get("project_id")?,
        key: row.get("key")?,
        payload: serde_json::Value::Null,
        state: JobState::parse(&state),
        attempts: row.get("attempts")?,
        runner: row.get("runner")?,
        lease_until: row.get("lease_until")?,
        error: row.get("error")?,
        created_by: row.get("created_by")?,
        created_at: row.get("created_at")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
    };
    Ok(parse_json(&payload).map(|payload| Job { payload, ..job }))
}

pub(crate) fn rater_activity_from(row: &Row<'_>) -> rusqlite::Result<Result<RaterActivity>> {
    Ok(Ok(RaterActivity {
        user_id: row.get("id")?,
        name: row.get("name")?,
        responses: row.get("responses")?,
        skips: row.get("skips")?,
        last_active: row.get("last_active")?,
        role: row.get("role")?,
    }))
}

pub(crate) fn item_answer_from(row: &Row<'_>) -> rusqlite::Result<Result<ItemAnswer>> {
    let (response_id, user_id, answers): (i64, i64, String) =
        (row.get("id")?, row.get("user_id")?, row.get("answers")?);
    Ok(parse_json(&answers).map(|answers| ItemAnswer {
        response_id,
        user_id,
        answers,
    }))
}

pub(crate) fn rater_event_from(row: &Row<'_>) -> rusqlite::Result<Result<RaterEvent>> {
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
}

pub(crate) fn review_from(row: &Row<'_>) -> rusqlite::Result<Result<Review>> {
    let (verdict, answers): (String, Option<String>) = (row.get("verdict")?, row.get("answers")?);
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
            verdict: Verdict::parse(&verdict)
                .ok_or_else(|| StoreError::Database(format!("unknown verdict {verdict}").into()))?,
            answers: answers.as_deref().map(parse_json).transpose()?,
            created_at,
        })
    })())
}

/// A response as the export reads it, by position (a name lookup per column was a tenth of a
/// ten-million-row read): `id, item_id, external_id, user_id, name, answers, time_spent_ms,
/// created_at, gold`.
pub(crate) fn export_row_from(row: &Row<'_>) -> rusqlite::Result<Result<ExportRow>> {
    let (response_id, item_id, external_id, user_id, user_name) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    );
    let (time_spent_ms, created_at, gold) = (row.get(6)?, row.get(7)?, row.get(8)?);
    let answers = row.get_ref(5)?.as_str()?;
    Ok(parse_json(answers).map(|answers| ExportRow {
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
}

pub(crate) fn webhook_from(row: &Row<'_>) -> rusqlite::Result<Result<Webhook>> {
    let events: String = row.get("events")?;
    let webhook = Webhook {
        id: row.get("id")?,
        project_id: row.get("project_id")?,
        url: row.get("url")?,
        events: Vec::new(),
        secret: row.get("secret")?,
        previous_secret: row.get("previous_secret")?,
        previous_until: row.get("previous_until")?,
        created_by: row.get("created_by")?,
        created_at: row.get("created_at")?,
        failing_since: row.get("failing_since")?,
    };
    Ok(parse_json(&events).map(|events| Webhook { events, ..webhook }))
}

pub(crate) fn webhook_event_from(row: &Row<'_>) -> rusqlite::Result<Result<WebhookEvent>> {
    let subject: String = row.get("subject")?;
    let event = WebhookEvent {
        id: row.get("id")?,
        project_id: row.get("project_id")?,
        kind: row.get("kind")?,
        subject: serde_json::Value::Null,
        created_at: row.get("created_at")?,
    };
    Ok(parse_json(&subject).map(|subject| WebhookEvent { subject, ..event }))
}

/// A delivery joined with its event's kind.
pub(crate) fn delivery_from(row: &Row<'_>) -> rusqlite::Result<Result<Delivery>> {
    let state: String = row.get("state")?;
    Ok(Ok(Delivery {
        id: row.get("id")?,
        webhook_id: row.get("webhook_id")?,
        event_id: row.get("event_id")?,
        kind: row.get("kind")?,
        state: DeliveryState::parse(&state),
        attempts: row.get("attempts")?,
        next_attempt_at: row.get("next_attempt_at")?,
        last_status: row.get("last_status")?,
        last_error: row.get("last_error")?,
        last_latency_ms: row.get("last_latency_ms")?,
        created_at: row.get("created_at")?,
        delivered_at: row.get("delivered_at")?,
    }))
}
