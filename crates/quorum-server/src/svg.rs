//! Small SVG charts drawn on the server: no script, no external library, text escaped.

use std::fmt::Write as _;

const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 34.0;
const TOP: f64 = 12.0;

/// Text safe inside SVG/XML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn empty() -> String {
    format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"no data yet\"><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data yet</text></svg>",
        WIDTH / 2.0,
        HEIGHT / 2.0
    )
}

/// A bar chart of labelled values (at most 48 bars are legible; the caller picks them).
pub fn bars(values: &[(String, f64)]) -> String {
    if values.is_empty() || values.iter().all(|(_, v)| *v <= 0.0) {
        return empty();
    }
    let max = values.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / values.len() as f64;
    let bar = (slot * 0.75).max(1.0);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"bar chart\">\
         <line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#c5cad3\"/>\
         <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{max}</text>",
        y = TOP + plot_h,
        x2 = WIDTH - 8.0,
        tx = LEFT - 4.0,
        ty = TOP + 8.0,
        max = max.round()
    );
    let every = (values.len() / 8).max(1);
    for (i, (label, value)) in values.iter().enumerate() {
        let h = if max > 0.0 { value / max * plot_h } else { 0.0 };
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" rx=\"2\" fill=\"#3b5bdb\"><title>{}: {}</title></rect>",
            TOP + plot_h - h,
            escape(label),
            value
        );
        if i % every == 0 {
            let short: String = label.chars().take(12).collect();
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                HEIGHT - BOTTOM + 14.0,
                escape(&short)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `bins` equal bars up to the 99th percentile (the rest in the last bar) of values given as
/// `(value, count)` pairs, smallest value first.
pub fn histogram(counts: &[(f64, f64)], bins: usize) -> String {
    let total: f64 = counts.iter().map(|c| c.1).sum();
    if total <= 0.0 || bins == 0 {
        return empty();
    }
    let mut seen = 0.0;
    let mut top = f64::MIN_POSITIVE;
    for &(value, n) in counts {
        seen += n;
        top = value;
        if seen >= total * 0.99 {
            break;
        }
    }
    let width = top.max(f64::MIN_POSITIVE) / bins as f64;
    let mut bars_of = vec![0.0; bins];
    for &(value, n) in counts {
        bars_of[((value / width) as usize).min(bins - 1)] += n;
    }
    let labelled: Vec<(String, f64)> = bars_of
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("{:.0}", i as f64 * width), c))
        .collect();
    bars(&labelled)
}

/// Points with horizontal intervals, one row per label (a leaderboard's ratings with their
/// 95% intervals, or differences between two boards around a zero line when `zero` is set).
pub fn intervals(rows: &[(String, f64, Option<f64>, Option<f64>)], zero: bool) -> String {
    if rows.is_empty() {
        return empty();
    }
    let row_h = 22.0;
    let label_w = 170.0;
    let width = 560.0;
    let height = TOP + row_h * rows.len() as f64 + 24.0;
    let values = rows
        .iter()
        .flat_map(|(_, v, lo, hi)| [Some(*v), *lo, *hi])
        .flatten()
        .chain(zero.then_some(0.0));
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((max - min) * 0.05).max(1.0);
    let (min, max) = (min - pad, max + pad);
    let x = |v: f64| label_w + (v - min) / (max - min) * (width - label_w - 16.0);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"ratings with 95% intervals\">"
    );
    if zero {
        let _ = write!(
            svg,
            "<line x1=\"{z:.1}\" y1=\"{TOP}\" x2=\"{z:.1}\" y2=\"{:.1}\" stroke=\"#adb5bd\" stroke-dasharray=\"3 3\"/>",
            height - 24.0,
            z = x(0.0)
        );
    }
    for (i, (label, value, lower, upper)) in rows.iter().enumerate() {
        let y = TOP + row_h * i as f64 + row_h / 2.0;
        let short: String = label.chars().take(28).collect();
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 4.0,
            escape(&short)
        );
        if let (Some(lo), Some(hi)) = (lower, upper) {
            let _ = write!(
                svg,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#748ffc\" stroke-width=\"3\" stroke-linecap=\"round\"/>",
                x(*lo),
                x(*hi)
            );
        }
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#1c2330\"><title>{}: {:.1}</title></circle>",
            x(*value),
            escape(label),
            value
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{label_w}\" y=\"{:.1}\">{:.0}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text></svg>",
        height - 6.0,
        min,
        width - 16.0,
        height - 6.0,
        max
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_bars_scale_to_the_largest() {
        let svg = bars(&[("<b>&".into(), 10.0), ("x".into(), 5.0)]);
        assert!(svg.contains("&lt;b&gt;&amp;") && !svg.contains("<b>"));
        assert!(svg.contains(&format!("height=\"{:.1}\"", HEIGHT - TOP - BOTTOM)));
        assert!(bars(&[]).contains("no data yet"));
        let h = histogram(&[(1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (100.0, 1.0)], 4);
        assert_eq!(h.matches("<rect").count(), 4);
    }
}
