//! Row mappers: one function per record, reading its columns by name.

use super::*;

pub(crate) fn user_from(row: &PgRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        is_admin: get(row, "is_admin")?,
        created_at: get(row, "created_at")?,
        disabled_at: get(row, "disabled_at")?,
    })
}

pub(crate) fn token_from(row: &PgRow) -> Result<Token> {
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
pub(crate) const TOKEN_COLUMNS: &str = "t.id AS token_id, t.user_id, t.name AS token_name, \
    t.created_at AS token_created_at, t.expires_at, t.last_used_at";

pub(crate) fn project_from(row: &PgRow) -> Result<Project> {
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

pub(crate) fn member_from(row: &PgRow) -> Result<Member> {
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

pub(crate) fn optional_json(row: &PgRow, column: &str) -> Result<Option<Value>> {
    get::<Option<String>>(row, column)?
        .map(|t| parse_json(&t))
        .transpose()
}

pub(crate) fn item_from(row: &PgRow) -> Result<StoredItem> {
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

pub(crate) fn lease_from(row: &PgRow) -> Result<Lease> {
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

pub(crate) fn response_from(row: &PgRow) -> Result<Response> {
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

pub(crate) fn rater_state_from(row: &PgRow) -> Result<RaterState> {
    Ok(RaterState {
        user_id: get(row, "user_id")?,
        paused: get(row, "paused")?,
        reinstated_at: get(row, "reinstated_at")?,
    })
}

pub(crate) fn standard_run_from(row: &PgRow) -> Result<StandardRun> {
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

pub(crate) fn job_from(row: &PgRow) -> Result<Job> {
    Ok(Job {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        project_id: get(row, "project_id")?,
        key: get(row, "key")?,
        payload: parse_json(&get::<String>(row, "payload")?)?,
        state: JobState::parse(&get::<String>(row, "state")?),
        attempts: get(row, "attempts")?,
        runner: get(row, "runner")?,
        lease_until: get(row, "lease_until")?,
        error: get(row, "error")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
    })
}

pub(crate) fn model_spec_from(row: &PgRow) -> Result<ModelSpec> {
    Ok(ModelSpec {
        name: get(row, "name")?,
        base_url: get(row, "base_url")?,
        model_id: get(row, "model_id")?,
        api_key_env: get(row, "api_key_env")?,
        parameters: parse_json(&get::<String>(row, "parameters")?)?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn generation_from(row: &PgRow) -> Result<Generation> {
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
}

pub(crate) fn battle_vote_from(row: &PgRow) -> Result<BattleVote> {
    let rater_locales = match get::<Option<String>>(row, "locales")? {
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Database(Box::new(e)))?,
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
}

pub(crate) fn rater_activity_from(row: &PgRow) -> Result<RaterActivity> {
    Ok(RaterActivity {
        user_id: get(row, "id")?,
        name: get(row, "name")?,
        responses: get(row, "responses")?,
        skips: get(row, "skips")?,
        last_active: get(row, "last_active")?,
        role: get(row, "role")?,
    })
}

pub(crate) fn item_answer_from(row: &PgRow) -> Result<ItemAnswer> {
    Ok(ItemAnswer {
        response_id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        answers: parse_json(&get::<String>(row, "answers")?)?,
    })
}

pub(crate) fn export_row_from(row: &PgRow) -> Result<ExportRow> {
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
}

pub(crate) fn rater_event_from(row: &PgRow) -> Result<RaterEvent> {
    Ok(RaterEvent {
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        user_id: get(row, "user_id")?,
        change: serde_json::from_str(&get::<String>(row, "change")?)
            .map_err(|e| StoreError::Database(Box::new(e)))?,
        actor_id: get(row, "actor_id")?,
        at: get(row, "at")?,
    })
}

pub(crate) fn review_from(row: &PgRow) -> Result<Review> {
    let verdict: String = get(row, "verdict")?;
    Ok(Review {
        response_id: get(row, "response_id")?,
        project_id: get(row, "project_id")?,
        item_id: get(row, "item_id")?,
        rater_id: get(row, "rater_id")?,
        reviewer_id: get(row, "reviewer_id")?,
        verdict: Verdict::parse(&verdict)
            .ok_or_else(|| StoreError::Database(format!("unknown verdict {verdict}").into()))?,
        answers: optional_json(row, "answers")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn webhook_from(row: &PgRow) -> Result<Webhook> {
    Ok(Webhook {
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        url: get(row, "url")?,
        events: parse_json(&get::<String>(row, "events")?)?,
        secret: get(row, "secret")?,
        previous_secret: get(row, "previous_secret")?,
        previous_until: get(row, "previous_until")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        failing_since: get(row, "failing_since")?,
    })
}

pub(crate) fn webhook_event_from(row: &PgRow) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        id: get(row, "id")?,
        project_id: get(row, "project_id")?,
        kind: get(row, "kind")?,
        subject: parse_json(&get::<String>(row, "subject")?)?,
        created_at: get(row, "created_at")?,
    })
}

/// A delivery joined with its event's kind.
pub(crate) fn delivery_from(row: &PgRow) -> Result<Delivery> {
    Ok(Delivery {
        id: get(row, "id")?,
        webhook_id: get(row, "webhook_id")?,
        event_id: get(row, "event_id")?,
        kind: get(row, "kind")?,
        state: DeliveryState::parse(&get::<String>(row, "state")?),
        attempts: get(row, "attempts")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        last_status: get(row, "last_status")?,
        last_error: get(row, "last_error")?,
        last_latency_ms: get(row, "last_latency_ms")?,
        created_at: get(row, "created_at")?,
        delivered_at: get(row, "delivered_at")?,
    })
}
