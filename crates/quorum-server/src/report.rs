//! The HTML twin of a standard's signed report: one self-contained page (inline CSS, SVG plots),
//! readable offline and from any file share.

use askama::Template;
use quorum_app::evaluation::arena::Board;
use quorum_app::standards::report::SignedReport;

struct BoardView {
    title: String,
    plot: String,
    /// Model, rating, interval, battles.
    rows: Vec<(String, String, String, u64)>,
}

#[derive(Template)]
#[template(path = "standard_report.html")]
struct ReportPage<'a> {
    signed: &'a SignedReport,
    raters: Vec<(String, usize)>,
    models: Vec<(String, String, String)>,
    boards: Vec<BoardView>,
    agreement: Vec<(String, String)>,
    judges: Vec<(String, String, String, String)>,
    divergence: Vec<String>,
    /// Question, and how many battles' consensus gave each answer.
    consensus: Vec<(String, String)>,
    private: bool,
}

fn fixed(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

fn board(title: String, board: &Board) -> BoardView {
    let plot_rows: Vec<(String, f64, Option<f64>, Option<f64>)> = board
        .models
        .iter()
        .map(|m| (m.model.clone(), m.rating, m.lower, m.upper))
        .collect();
    BoardView {
        title,
        plot: crate::svg::intervals(&plot_rows, false),
        rows: board
            .models
            .iter()
            .map(|m| {
                (
                    m.model.clone(),
                    fixed(Some(m.rating), 1),
                    format!("{} – {}", fixed(m.lower, 1), fixed(m.upper, 1)),
                    m.battles,
                )
            })
            .collect(),
    }
}

/// The report as a page.
pub fn standard_report_html(signed: &SignedReport) -> String {
    let report = &signed.report;
    let mut boards = Vec::new();
    if let Some(overall) = report.leaderboard.boards.first() {
        boards.push(board("All battles".into(), overall));
    }
    let mut divergence = Vec::new();
    for (slice, sliced) in &report.slices {
        for b in &sliced.boards {
            let name = b.slice.as_deref().unwrap_or("(all)");
            boards.push(board(format!("{slice}: {name}"), b));
        }
        for d in &sliced.divergence {
            let apart: Vec<&str> = d
                .differences
                .iter()
                .filter(|m| m.significant)
                .map(|m| m.model.as_str())
                .collect();
            divergence.push(format!(
                "{slice}: {} vs {} — Spearman {} [{}, {}] over {} models; rated differently: {}.",
                d.a,
                d.b,
                fixed(d.spearman, 2),
                fixed(d.spearman_lower, 2),
                fixed(d.spearman_upper, 2),
                d.models,
                if apart.is_empty() {
                    "none".to_string()
                } else {
                    apart.join(", ")
                }
            ));
        }
    }
    let agreement = report
        .agreement
        .iter()
        .map(|q| {
            let groups: Vec<String> = q
                .groups
                .iter()
                .map(|g| {
                    format!(
                        "{} {} [{}, {}] ({} raters)",
                        g.group,
                        fixed(g.alpha, 3),
                        fixed(g.lower, 2),
                        fixed(g.upper, 2),
                        g.raters
                    )
                })
                .collect();
            (q.question.clone(), groups.join(" · "))
        })
        .collect();
    let percent = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0));
    let judges = report
        .judge_agreement
        .iter()
        .map(|j| {
            (
                j.judge.clone(),
                format!("{} of {}", j.judged, j.battles),
                percent(j.percent_agreement),
                fixed(j.cohen_kappa, 2),
            )
        })
        .collect();
    let page = ReportPage {
        signed,
        raters: report
            .raters_by_locale
            .iter()
            .map(|(l, n)| (l.clone(), *n))
            .collect(),
        models: report
            .models
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.model_id.clone().unwrap_or_else(|| m.name.clone()),
                    m.parameters.to_string(),
                )
            })
            .collect(),
        boards,
        agreement,
        judges,
        divergence,
        consensus: report
            .consensus
            .iter()
            .map(|(question, counts)| {
                let parts: Vec<String> = counts.iter().map(|(a, n)| format!("{a}: {n}")).collect();
                (question.clone(), parts.join(", "))
            })
            .collect(),
        private: report.spec.exposure.policy == quorum_app::standards::ExposurePolicy::Private,
    };
    page.render()
        .unwrap_or_else(|e| format!("<p>the report could not be drawn: {e}</p>"))
}
