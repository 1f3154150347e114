//! Evaluation standards: the list with what each still needs, and the HTML twin of a signed report.

use super::*;

#[derive(Template)]
#[template(path = "standards.html")]
pub(super) struct StandardsPage {
    user: Option<String>,
    csrf: String,
    is_admin: bool,
    standards: Vec<quorum_app::standards::run::StandardOverview>,
}

pub(super) async fn standards<S: Store>(State(state): State<AppState<S>>, who: Page) -> Response {
    match state.app.standards(&who.caller).await {
        Ok(standards) => render(
            &StandardsPage {
                user: Some(who.caller.user.name.clone()),
                csrf: who.csrf.clone(),
                is_admin: who.caller.user.is_admin,
                standards,
            },
            StatusCode::OK,
        ),
        Err(error) => app_error(error, &who),
    }
}

/// The HTML twin of a standard's signed report.
pub(super) async fn standard_report<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(hash): Path<String>,
) -> Response {
    let report = async {
        let standard = state.app.stored_standard(&hash).await?;
        state.app.report_standard(&who.caller, &standard).await
    };
    match report.await {
        Ok(signed) => Html(crate::standard_report_html(&signed)).into_response(),
        Err(error) => app_error(error, &who),
    }
}
