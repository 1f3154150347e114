//! A project's dashboard: progress, activity, raters, agreement and the audit log, drawn on the server.

use quorum_core::schema::QuestionKind;

use super::*;

pub(super) struct AgreementPlot {
    plot: String,
    caption: String,
    /// The least agreeing rater pairs: a, b, items in common, percent, Cohen's kappa.
    pairs: Vec<(String, String, usize, String, String)>,
}

pub(super) struct RaterLine {
    user_id: i64,
    name: String,
    /// `paused: …`, `not qualified`, `qualified` or empty.
    standing: String,
    paused: bool,
    unqualified: bool,
    role: String,
    gold: String,
    consensus: String,
    skill: String,
    responses: i64,
    skips: i64,
    median: String,
    last_active: String,
}

#[derive(Template)]
#[template(path = "project.html")]
pub(super) struct DashboardPage {
    user: Option<String>,
    /// How stale the figures are, when read from a replica.
    replica: Option<String>,
    /// How many answers the tallied figures do not count yet, when any.
    uncounted: Option<String>,
    /// Why the rater table has no reliability columns, in a project too large for them.
    reliability_note: Option<String>,
    csrf: String,
    project_id: i64,
    name: String,
    stats: ProjectStats,
    complete_percent: i64,
    items_by_state: String,
    over_time: String,
    per_rater: String,
    time_per_item: String,
    raters: Vec<RaterLine>,
    can_manage: bool,
    pairwise: bool,
    free_text: bool,
    models: Vec<quorum_app::evaluation::runs::ModelProgress>,
    agreement: Vec<AgreementPlot>,
    /// Judge, judged, unparseable, consistency, position bias, agreement, kappa (as text).
    judges: Vec<(String, usize, usize, String, String, String, String)>,
    can_review: bool,
    /// The project's quality rules as JSON, for the settings form.
    quality_json: String,
    /// When, who, what, why, by whom.
    events: Vec<(String, String, String, String, String)>,
    /// Webhooks whose deliveries are given up on: URL, since when.
    failing_webhooks: Vec<(String, String)>,
}

pub(super) async fn dashboard<S: Store>(
    State(state): State<AppState<S>>,
    who: Page,
    Path(id): Path<i64>,
) -> Response {
    let (project, role) = match state.app.project(&who.caller, id).await {
        Ok(found) => found,
        Err(error) => return app_error(error, &who),
    };
    let (app, caller) = (state.app.analytics(), who.caller.clone());
    let replica = replica_note(&app);
    let data = match state
        .app
        .analysis(async move { app.dashboard(&caller, id).await })
        .await
    {
        Ok(data) => data,
        Err(error) => return app_error(error, &who),
    };
    let stats = data.stats;
    // Model runs (prompt projects) and judges (battle projects), when there are any; judge
    // outputs are kept as `judge:` generations, so they are not listed as models.
    let models = data.models;
    let percent = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0));
    let judges = data
        .judges
        .into_iter()
        .map(|j| {
            (
                j.judge,
                j.judged,
                j.unparseable,
                percent(j.consistency),
                percent(j.position_bias),
                percent(j.percent_agreement),
                j.cohen_kappa
                    .map_or_else(|| "–".into(), |k| format!("{k:.2}")),
            )
        })
        .collect();
    let reliability: HashMap<i64, &quorum_app::quality::RaterReliability> =
        data.reliability.iter().map(|r| (r.user_id, r)).collect();
    // Krippendorff's alpha per rater locale (and overall), one chart per question.
    let agreement = data
        .agreement
        .iter()
        .map(|q| {
            let rows: Vec<(String, f64, Option<f64>, Option<f64>)> = q
                .groups
                .iter()
                .filter_map(|g| g.alpha.map(|a| (format!("{} ({})", g.group, g.raters), a, g.lower, g.upper)))
                .collect();
            let pct = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0));
            let mut pairs: Vec<&quorum_app::quality::RaterPair> = q.pairs.iter().collect();
            pairs.sort_by(|a, b| {
                a.cohen_kappa
                    .unwrap_or(1.0)
                    .total_cmp(&b.cohen_kappa.unwrap_or(1.0))
            });
            AgreementPlot {
                plot: crate::svg::intervals(&rows, true),
                caption: format!(
                    "{}: Krippendorff's alpha ({}) by rater locale, with 95% intervals. Raters agree {} of the time with raters of their own locale, {} across locales.{}",
                    q.question,
                    q.level,
                    pct(q.within_locale),
                    pct(q.across_locales),
                    q.fleiss_kappa
                        .map(|k| format!(" Fleiss' kappa {k:.2}."))
                        .unwrap_or_default()
                ),
                pairs: pairs
                    .into_iter()
                    .take(8)
                    .map(|p| {
                        (
                            p.a.clone(),
                            p.b.clone(),
                            p.common_items,
                            pct(Some(p.percent_agreement)),
                            p.cohen_kappa
                                .map_or_else(|| "–".into(), |k| format!("{k:.2}")),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let names: HashMap<i64, String> = data
        .raters
        .iter()
        .map(|r| (r.activity.user_id, r.activity.name.clone()))
        .collect();
    let name_of = |id: Option<i64>| match id {
        None => "the rules".to_string(),
        Some(id) => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}")),
    };
    let events = data
        .events
        .into_iter()
        .rev()
        .take(50)
        .map(|e| {
            let (action, reason) = match &e.change {
                quorum_store::RaterChange::Paused { reason } => ("paused", reason),
                quorum_store::RaterChange::Reinstated { reason } => ("reinstated", reason),
                quorum_store::RaterChange::Qualified { reason, .. } => ("qualified", reason),
                quorum_store::RaterChange::NotQualified { reason, .. } => ("not qualified", reason),
            };
            (
                utc(e.at),
                name_of(Some(e.user_id)),
                action.to_string(),
                reason.clone(),
                name_of(e.actor_id),
            )
        })
        .collect();
    let failing_webhooks = data
        .webhooks
        .iter()
        .filter_map(|w| w.failing_since.map(|since| (w.url.clone(), utc(since))))
        .collect();
    let has = |wanted: fn(&QuestionKind) -> bool| {
        project.schema.questions.iter().any(|q| wanted(&q.kind))
    };
    let labels = |v: &[(String, f64)]| crate::svg::bars(v);
    let hours: Vec<(String, f64)> = data
        .per_hour
        .iter()
        .rev()
        .take(48)
        .rev()
        .map(|(hour, n)| (utc(*hour)[11..16].to_string(), *n as f64))
        .collect();
    let by_rater: Vec<(String, f64)> = data
        .raters
        .iter()
        .filter(|r| r.activity.responses > 0)
        .map(|r| (r.activity.name.clone(), r.activity.responses as f64))
        .collect();
    render(
        &DashboardPage {
            user: Some(who.caller.user.name.clone()),
            replica,
            csrf: who.csrf.clone(),
            project_id: id,
            name: project.name.clone(),
            complete_percent: if stats.items > 0 {
                stats.items_complete * 100 / stats.items
            } else {
                0
            },
            items_by_state: labels(&[
                ("complete".into(), stats.items_complete as f64),
                ("in progress".into(), stats.items_in_progress as f64),
                ("untouched".into(), stats.items_untouched as f64),
            ]),
            over_time: labels(&hours),
            per_rater: labels(&by_rater),
            time_per_item: crate::svg::histogram(
                &data
                    .time_histogram
                    .iter()
                    .map(|&(ms, n)| (ms as f64 / 1000.0, n as f64))
                    .collect::<Vec<_>>(),
                12,
            ),
            uncounted: (data.uncounted > 0).then(|| {
                let how_many = if data.uncounted > quorum_app::dashboard::FOLD_ON_READ {
                    format!("More than {}", quorum_app::dashboard::FOLD_ON_READ)
                } else {
                    data.uncounted.to_string()
                };
                format!(
                    "{how_many} answers are stored but not yet in the activity and agreement figures below; they are being counted."
                )
            }),
            reliability_note: (stats.responses > quorum_app::dashboard::LIVE_RELIABILITY).then(|| {
                format!(
                    "Gold accuracy, agreement with the consensus and skill read every answer, so this page leaves them out above {} answers; GET /api/v1/projects/{id}/raters computes them.",
                    quorum_app::dashboard::LIVE_RELIABILITY
                )
            }),
            raters: data
                .raters
                .iter()
                .map(|r| RaterLine {
                    user_id: r.activity.user_id,
                    name: r.activity.name.clone(),
                    standing: match reliability.get(&r.activity.user_id) {
                        Some(q) if q.paused.is_some() => {
                            format!("paused: {}", q.paused.as_deref().unwrap_or_default())
                        }
                        Some(q) if q.qualified == Some(false) => "not qualified".into(),
                        Some(q) if q.qualified == Some(true) => "qualified".into(),
                        _ => String::new(),
                    },
                    paused: reliability
                        .get(&r.activity.user_id)
                        .is_some_and(|q| q.paused.is_some()),
                    unqualified: reliability
                        .get(&r.activity.user_id)
                        .is_some_and(|q| q.qualified == Some(false)),
                    role: r
                        .activity
                        .role
                        .clone()
                        .unwrap_or_else(|| "former member".into()),
                    gold: reliability
                        .get(&r.activity.user_id)
                        .and_then(|q| {
                            Some(format!(
                                "{:.0}% [{:.0}–{:.0}%] of {}",
                                q.gold_accuracy? * 100.0,
                                q.gold_lower? * 100.0,
                                q.gold_upper? * 100.0,
                                q.gold_answered
                            ))
                        })
                        .unwrap_or_else(|| "–".into()),
                    consensus: reliability
                        .get(&r.activity.user_id)
                        .and_then(|q| q.agreement_with_consensus)
                        .map_or_else(|| "–".into(), |a| format!("{:.0}%", a * 100.0)),
                    skill: reliability
                        .get(&r.activity.user_id)
                        .and_then(|q| q.skill)
                        .map_or_else(|| "–".into(), |k| format!("{k:.2}")),
                    responses: r.activity.responses,
                    skips: r.activity.skips,
                    median: r.median_time_ms.map(seconds).unwrap_or_else(|| "–".into()),
                    last_active: r
                        .activity
                        .last_active
                        .map(utc)
                        .unwrap_or_else(|| "–".into()),
                })
                .collect(),
            stats,
            can_review: role.can_review(),
            quality_json: script_json(&serde_json::to_value(&project.quality).unwrap_or_default()),
            events,
            failing_webhooks,
            can_manage: role.can_manage(),
            pairwise: has(|k| matches!(k, QuestionKind::Pairwise { .. })),
            free_text: has(|k| matches!(k, QuestionKind::Text { .. })),
            models,
            judges,
            agreement,
        },
        StatusCode::OK,
    )
}
