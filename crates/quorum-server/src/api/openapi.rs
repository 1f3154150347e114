//! The OpenAPI document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types. `openapi.json` at the crate's root is this document as
//! served; a test fails when the two differ (`QUORUM_BLESS=1` rewrites the file).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, evaluation, jobs, projects, quality, standards, webhooks, work};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Quorum API",
        version = "1",
        description = "Projects, items, exact assignment, responses, quality, evaluation and \
            standards. Every request carries `Authorization: Bearer <token>` (or the web \
            session's cookie, and then `X-CSRF-Token` on every request that changes \
            anything); errors are `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
    paths(
        super::healthz,
        super::metrics,
        super::openapi,
        accounts::me,
        accounts::change_password,
        accounts::create_user,
        accounts::list_users,
        accounts::create_token,
        accounts::list_tokens,
        accounts::revoke_token,
        accounts::disable_user,
        accounts::enable_user,
        projects::create_project,
        projects::list_projects,
        projects::get_project,
        projects::add_member,
        projects::import_items,
        projects::stats,
        projects::export,
        projects::card,
        work::next,
        work::submit,
        work::skip,
        quality::consensus,
        quality::agreement,
        quality::rater_reliability,
        quality::set_quality,
        quality::rater_events,
        quality::change_standing,
        quality::review_queue,
        quality::submit_review,
        evaluation::import_generations,
        evaluation::build_battles,
        evaluation::leaderboard,
        evaluation::register_model,
        evaluation::list_models,
        evaluation::start_run,
        evaluation::run_progress,
        evaluation::start_judge,
        evaluation::judge_reports,
        jobs::list_jobs,
        jobs::get_job,
        jobs::project_jobs,
        standards::run_standard,
        standards::list_standards,
        standards::standard_report,
        webhooks::create_project_webhook,
        webhooks::project_webhooks,
        webhooks::create_instance_webhook,
        webhooks::instance_webhooks,
        webhooks::get_webhook,
        webhooks::delete_webhook,
        webhooks::rotate_secret,
        webhooks::deliveries,
        webhooks::redeliver,
    ),
    components(
        responses(crate::wire::ErrorBody),
        schemas(quorum_app::webhooks::EventPayload),
    ),
    tags(
        (name = "operations", description = "Health, metrics and this document"),
        (name = "accounts", description = "Users, tokens and sessions, passwords"),
        (name = "projects", description = "Projects, members, counts"),
        (name = "items", description = "Item imports"),
        (name = "work", description = "The rater loop: lease, answer, skip"),
        (name = "export", description = "Responses, preference pairs, conversations, consensus"),
        (name = "quality", description = "Consensus, agreement, rater standing, rules, reviews"),
        (name = "evaluation", description = "Models, generations, battles, runs, judges, leaderboards"),
        (name = "jobs", description = "Background work on every server's job runner"),
        (name = "standards", description = "Versioned evaluation standards and their signed reports"),
        (name = "webhooks", description = "Events posted to your endpoints, signed, at least once; the body of every delivery is `EventPayload`"),
    )
)]
struct ApiDoc;

/// The bearer token scheme every operation but the operational ones names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API token (`quorum token create`, `POST /api/v1/users/{id}/tokens`)",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document, as `openapi.json` holds it.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
