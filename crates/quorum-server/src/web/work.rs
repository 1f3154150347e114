//! The rater's workspace and the reviewer's queue: shells the scripts fill from the API, with an image policy per project.

use super::*;

#[derive(Template)]
#[template(path = "work.html")]
pub(super) struct WorkPage {
    user: Option<String>,
    csrf: String,
    project_id: i64,
    name: String,
    instructions: String,
    schema_json: String,
}

pub(super) async fn work<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
) -> Response {
    match state.app.project(&who.caller, id).await {
        Ok((project, _)) => {
            let images = image_policy(&project.schema);
            let mut page = render(
                &WorkPage {
                    user: Some(who.caller.user.name.clone()),
                    csrf: who.csrf.clone(),
                    project_id: project.id,
                    name: project.name,
                    instructions: project.instructions,
                    schema_json: script_json(&project.schema),
                },
                StatusCode::OK,
            );
            page.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, images);
            page
        }
        Err(error) => app_error(error, &who),
    }
}

/// The Content-Security-Policy of a page showing a project's items: images only from the
/// hosts its image fields list, when they all list some.
pub(super) fn image_policy(schema: &quorum_core::schema::Schema) -> HeaderValue {
    let hosts = schema.image_hosts();
    HeaderValue::from_str(&crate::headers::policy_for_images(hosts.as_deref()))
        .unwrap_or_else(|_| HeaderValue::from_static(crate::headers::DEFAULT_POLICY))
}

#[derive(Template)]
#[template(path = "review.html")]
pub(super) struct ReviewPage {
    user: Option<String>,
    csrf: String,
    project_id: i64,
    name: String,
}

pub(super) async fn review<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
) -> Response {
    match state.app.project(&who.caller, id).await {
        Ok((_, role)) if !role.can_review() => app_error(
            AppError::Forbidden("only reviewers and managers review".into()),
            &who,
        ),
        Ok((project, _)) => {
            let images = image_policy(&project.schema);
            let mut page = render(
                &ReviewPage {
                    user: Some(who.caller.user.name.clone()),
                    csrf: who.csrf.clone(),
                    project_id: project.id,
                    name: project.name,
                },
                StatusCode::OK,
            );
            page.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, images);
            page
        }
        Err(error) => app_error(error, &who),
    }
}
