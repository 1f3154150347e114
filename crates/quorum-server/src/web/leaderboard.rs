//! A battle project's boards with interval plots, per slice, and where slices disagree.

use super::*;

pub(super) struct BoardRow {
    rank: String,
    model: String,
    rating: String,
    interval: String,
    battles: u64,
    online: String,
    provisional: bool,
}

pub(super) struct BoardView {
    title: String,
    battles: usize,
    plot: String,
    rows: Vec<BoardRow>,
}

pub(super) struct DivergenceLine {
    title: String,
    a: String,
    b: String,
    spearman: String,
    models: usize,
    summary: String,
    plot: String,
}

#[derive(Template)]
#[template(path = "leaderboard.html")]
pub(super) struct LeaderboardPage {
    user: Option<String>,
    /// How stale the figures are, when read from a replica.
    replica: Option<String>,
    csrf: String,
    name: String,
    rounds: usize,
    slice_by: String,
    slice_options: Vec<(&'static str, &'static str)>,
    message: Option<String>,
    boards: Vec<BoardView>,
    divergences: Vec<DivergenceLine>,
}

#[derive(Deserialize)]
pub(super) struct LeaderboardQuery {
    #[serde(default)]
    slice_by: String,
}

/// A battle project's leaderboard: the board, a board per slice, and where slices diverge.
pub(super) async fn leaderboard<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
    axum::extract::Query(query): axum::extract::Query<LeaderboardQuery>,
) -> Response {
    use quorum_app::evaluation::SliceBy;
    let (project, _) = match state.app.project(&who.caller, id).await {
        Ok(found) => found,
        Err(error) => return app_error(error, &who),
    };
    let slice_by = match query.slice_by.as_str() {
        "rater_locale" => Some(SliceBy::RaterLocale),
        "category" => Some(SliceBy::Category),
        "language" => Some(SliceBy::Language),
        _ => None,
    };
    let rounds = 1000;
    let options = quorum_app::evaluation::arena::ReportOptions {
        bootstrap: rounds,
        seed: 0,
        anchor: None,
        min_battles: 0,
        threads: quorum_app::analysis_threads(),
    };
    let caller = who.caller.clone();
    let app = state.app.analytics();
    let replica = replica_note(&app);
    let boards = async move {
        app.project_leaderboard(&caller, id, slice_by, options)
            .await
    };
    let (report, message) = match state.app.analysis(boards).await {
        Ok(report) => (Some(report), None),
        Err(AppError::Invalid { message, .. }) => (None, Some(message)),
        Err(error) => return app_error(error, &who),
    };
    let fmt = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
    let boards = report
        .iter()
        .flat_map(|r| r.boards.iter())
        .map(|b| BoardView {
            title: b.slice.clone().unwrap_or_else(|| "All raters".to_string()),
            battles: b.battles,
            plot: crate::svg::intervals(
                &b.models
                    .iter()
                    .map(|m| (m.model.clone(), m.rating, m.lower, m.upper))
                    .collect::<Vec<_>>(),
                false,
            ),
            rows: b
                .models
                .iter()
                .map(|m| BoardRow {
                    rank: m.rank.map_or_else(|| "–".into(), |r| r.to_string()),
                    model: m.model.clone(),
                    rating: format!("{:.1}", m.rating),
                    interval: format!("{} – {}", fmt(m.lower), fmt(m.upper)),
                    battles: m.battles,
                    online: format!("{:.1}", m.online_elo),
                    provisional: m.provisional,
                })
                .collect(),
        })
        .collect();
    let divergences = report
        .iter()
        .flat_map(|r| r.divergence.iter())
        .map(|d| {
            let significant: Vec<String> = d
                .differences
                .iter()
                .filter(|x| x.significant)
                .map(|x| {
                    let higher = if x.difference > 0.0 { &d.a } else { &d.b };
                    format!(
                        "{} ({:+.0} Elo, higher with {higher})",
                        x.model, x.difference
                    )
                })
                .collect();
            DivergenceLine {
                title: format!("{} vs {}", d.a, d.b),
                a: d.a.clone(),
                b: d.b.clone(),
                spearman: match (d.spearman, d.spearman_lower, d.spearman_upper) {
                    (Some(r), Some(lo), Some(hi)) => format!("{r:.2} [{lo:.2}, {hi:.2}]"),
                    (Some(r), _, _) => format!("{r:.2}"),
                    _ => "–".into(),
                },
                models: d.models,
                summary: if significant.is_empty() {
                    "No model is rated differently beyond its interval.".into()
                } else {
                    format!("Rated differently: {}.", significant.join("; "))
                },
                plot: crate::svg::intervals(
                    &d.differences
                        .iter()
                        .map(|x| (x.model.clone(), x.difference, x.lower, x.upper))
                        .collect::<Vec<_>>(),
                    true,
                ),
            }
        })
        .collect();
    render(
        &LeaderboardPage {
            user: Some(who.caller.user.name.clone()),
            replica,
            csrf: who.csrf.clone(),
            name: project.name,
            rounds,
            slice_by: query.slice_by.clone(),
            slice_options: vec![
                ("", "nothing (one board)"),
                ("rater_locale", "rater locale"),
                ("category", "prompt category"),
                ("language", "prompt language"),
            ],
            message,
            boards,
            divergences,
        },
        StatusCode::OK,
    )
}
