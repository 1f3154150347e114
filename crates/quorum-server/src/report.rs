//! The HTML twin of a standard's signed report: one self-contained page (inline CSS, SVG plots),
//! readable offline and from any file share.

use askama::Template;
use quorum_app::standards::report::SignedReport;
use serde_json::Value;

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

fn board(title: String, board: &Value) -> BoardView {
    let models: Vec<&Value> = board["models"].as_array().into_iter().flatten().collect();
    let plot_rows: Vec<(String, f64, Option<f64>, Option<f64>)> = models
        .iter()
        .filter_map(|m| {
            Some((
                m["model"].as_str()?.to_string(),
                m["rating"].as_f64()?,
                m["lower"].as_f64(),
                m["upper"].as_f64(),
            ))
        })
        .collect();
    BoardView {
        title,
        plot: crate::svg::intervals(&plot_rows, false),
        rows: models
            .iter()
            .map(|m| {
                (
                    m["model"].as_str().unwrap_or_default().to_string(),
                    fixed(m["rating"].as_f64(), 1),
                    format!(
                        "{} – {}",
                        fixed(m["lower"].as_f64(), 1),
                        fixed(m["upper"].as_f64(), 1)
                    ),
                    m["battles"].as_u64().unwrap_or(0),
                )
            })
            .collect(),
    }
}

/// The report as a page.
pub fn standard_report_html(signed: &SignedReport) -> String {
    let report = &signed.report;
    let mut boards = Vec::new();
    if let Some(overall) = report.leaderboard["boards"].get(0) {
        boards.push(board("All battles".into(), overall));
    }
    let mut divergence = Vec::new();
    for (slice, value) in &report.slices {
        for b in value["boards"].as_array().into_iter().flatten() {
            let name = b["slice"].as_str().unwrap_or("(all)");
            boards.push(board(format!("{slice}: {name}"), b));
        }
        for d in value["divergence"].as_array().into_iter().flatten() {
            divergence.push(format!(
                "{slice}: {} vs {} — Spearman {} over {} models. {}",
                d["a"].as_str().unwrap_or_default(),
                d["b"].as_str().unwrap_or_default(),
                fixed(d["spearman"].as_f64(), 2),
                d["models"].as_u64().unwrap_or(0),
                d["summary"].as_str().unwrap_or_default()
            ));
        }
    }
    let agreement = report
        .agreement
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            let groups: Vec<String> = q["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| {
                    format!(
                        "{} {} [{}, {}] ({} raters)",
                        g["group"].as_str().unwrap_or_default(),
                        fixed(g["alpha"].as_f64(), 3),
                        fixed(g["lower"].as_f64(), 2),
                        fixed(g["upper"].as_f64(), 2),
                        g["raters"].as_u64().unwrap_or(0)
                    )
                })
                .collect();
            (
                q["question"].as_str().unwrap_or_default().to_string(),
                groups.join(" · "),
            )
        })
        .collect();
    let percent = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
    };
    let judges = report
        .judge_agreement
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            (
                j["judge"].as_str().unwrap_or_default().to_string(),
                format!("{} of {}", j["judged"], j["battles"]),
                percent(&j["percent_agreement"]),
                fixed(j["cohen_kappa"].as_f64(), 2),
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
