//! Accuracy and parity on the real crowd data sets in `../shared/datasets/crowd`.

use crate::support::{column, datasets, quorum, stdout};

/// crowd-kit 1.4.2's accuracy on gold (MV, Wawa, ZBS, DS, OneCoin, GLAD, MACE).
const CROWDKIT_ACCURACY: &[(&str, [f64; 7])] = &[
    ("duck", [0.759, 0.759, 0.759, 0.889, 0.583, 0.722, 0.806]),
    ("rte", [0.919, 0.921, 0.921, 0.928, 0.925, 0.926, 0.925]),
    ("temp", [0.939, 0.944, 0.944, 0.942, 0.939, 0.935, 0.939]),
    ("wsd", [0.994; 7]),
    ("weather", [0.900, 0.893, 0.893, 0.830, 0.887, 0.880, 0.883]),
    ("product", [0.897, 0.897, 0.897, 0.940, 0.908, 0.928, 0.929]),
];
const METHODS: [&str; 7] = ["mv", "wawa", "zbs", "ds", "onecoin", "glad", "mace"];

fn accuracy_of(report: &str) -> f64 {
    let rest = report
        .split("accuracy on gold: ")
        .nth(1)
        .expect("an accuracy line");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn every_method_is_at_least_as_accurate_as_crowd_kit() {
    let Some(root) = datasets() else { return };
    let out = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, reference) in CROWDKIT_ACCURACY {
        let dir = root.join("crowd").join(name);
        for (method, &expected) in METHODS.iter().zip(reference) {
            let result = out.path().join(format!("{name}-{method}.csv"));
            let output = quorum(&[
                "aggregate",
                "--method",
                method,
                "--input",
                dir.join("labels.csv").to_str().unwrap(),
                "--gold",
                dir.join("gold.csv").to_str().unwrap(),
                "--output",
                result.to_str().unwrap(),
            ]);
            assert!(output.status.success(), "{name} {method}: {output:?}");
            let accuracy = accuracy_of(&stdout(&output));
            if accuracy < expected - 0.005 {
                failures.push(format!(
                    "{name} {method}: {accuracy:.4} < crowd-kit {expected:.3} - 0.005"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn deterministic_methods_agree_with_crowd_kit_predictions() {
    let Some(root) = datasets() else { return };
    let out = tempfile::tempdir().unwrap();
    let pairs = [
        ("mv", "MajorityVote"),
        ("wawa", "Wawa"),
        ("zbs", "ZeroBasedSkill"),
        ("ds", "DawidSkene"),
        ("onecoin", "OneCoinDawidSkene"),
    ];
    for name in [
        "crowdkit_simple",
        "duck",
        "rte",
        "temp",
        "wsd",
        "weather",
        "product",
    ] {
        let dir = root.join("crowd").join(name);
        for (method, reference) in pairs {
            let result = out.path().join(format!("{name}-{method}.csv"));
            let output = quorum(&[
                "aggregate",
                "--method",
                method,
                "--input",
                dir.join("labels.csv").to_str().unwrap(),
                "--output",
                result.to_str().unwrap(),
            ]);
            assert!(output.status.success(), "{output:?}");
            let ours = column(&result, "task", "label");
            let theirs = column(
                &dir.join("crowdkit_predictions")
                    .join(format!("{reference}.csv")),
                "task",
                "label",
            );
            let same = theirs
                .iter()
                .filter(|(task, label)| ours.get(*task) == Some(label))
                .count();
            let share = same as f64 / theirs.len() as f64;
            assert!(
                share >= 0.995,
                "{name} {method}: {same}/{} agree",
                theirs.len()
            );
        }
    }
}

#[test]
fn krippendorff_alpha_matches_the_reference_package() {
    let Some(root) = datasets() else { return };
    let expected =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/krippendorff_expected.csv");
    let mut reader = csv::Reader::from_path(expected).unwrap();
    for row in reader.records() {
        let row = row.unwrap();
        let (name, level, alpha): (&str, &str, f64) = (&row[0], &row[1], row[2].parse().unwrap());
        let output = quorum(&[
            "agreement",
            "--metric",
            &format!("alpha-{level}"),
            "--bootstrap",
            "0",
            "--input",
            root.join("crowd")
                .join(name)
                .join("labels.csv")
                .to_str()
                .unwrap(),
        ]);
        assert!(output.status.success(), "{output:?}");
        let text = stdout(&output);
        let line = text.lines().nth(1).unwrap();
        let ours: f64 = line.split(',').nth(2).unwrap().parse().unwrap();
        assert!(
            (ours - alpha).abs() < 1e-6,
            "{name} {level}: {ours} vs {alpha}"
        );
    }
}

/// `(rating, lower, upper, rank, num_battles)` per model of a leaderboard CSV.
fn board(path: &std::path::Path) -> std::collections::HashMap<String, [f64; 5]> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let columns = ["rating", "lower", "upper", "rank", "num_battles"].map(at);
    let model = at("model");
    reader
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r[model].to_string(), columns.map(|c| r[c].parse().unwrap())))
        .collect()
}

/// Point ratings to 0.01 Elo (0.5 with style control; the reference is rounded to 0.01), bounds
/// within a few Elo (they depend on the random draws), the same battle counts, and ranks within one place.
fn assert_boards_match(
    label: &str,
    ours: &std::path::Path,
    expected: &std::path::Path,
    point: f64,
) {
    let (ours, expected) = (board(ours), board(expected));
    assert_eq!(ours.len(), expected.len(), "{label}: models");
    for (model, e) in &expected {
        let o = ours
            .get(model)
            .unwrap_or_else(|| panic!("{label}: {model} missing"));
        assert!(
            (o[0] - e[0]).abs() <= point,
            "{label} {model}: rating {} vs {}",
            o[0],
            e[0]
        );
        // Each side's percentile carries Monte Carlo error in proportion to the interval's
        // width (about 3% of it at 1,000 rounds): allow 10% of the width, and at least 4 Elo.
        let allowed = (0.1 * (e[2] - e[1])).max(4.0);
        for (bound, i) in [("lower", 1), ("upper", 2)] {
            assert!(
                (o[i] - e[i]).abs() <= allowed,
                "{label} {model}: {bound} {} vs {} (allowed {allowed:.1})",
                o[i],
                e[i]
            );
        }
        assert!(
            (o[3] - e[3]).abs() <= 1.0,
            "{label} {model}: rank {} vs {}",
            o[3],
            e[3]
        );
        assert_eq!(o[4], e[4], "{label} {model}: battles");
    }
}

#[test]
fn leaderboards_match_the_reference_arena_method() {
    let Some(root) = datasets() else { return };
    let out = tempfile::tempdir().unwrap();
    for name in ["pandalm-human", "mteb-arena"] {
        let dir = root.join("pairwise").join(name);
        let result = out.path().join(format!("{name}.csv"));
        let output = quorum(&[
            "leaderboard",
            "--input",
            dir.join("battles.csv").to_str().unwrap(),
            "--bootstrap",
            "1000",
            "--format",
            "csv",
            "--output",
            result.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{name}: {output:?}");
        assert_boards_match(name, &result, &dir.join("expected_bt.csv"), 0.01);
    }
}

#[test]
fn style_controlled_board_matches_the_reference() {
    let Some(root) = datasets() else { return };
    let dir = root.join("pairwise").join("pandalm-human");
    let out = tempfile::tempdir().unwrap();
    let input = dir.join("battles.csv");
    let result = out.path().join("style.csv");
    let output = quorum(&[
        "leaderboard",
        "--input",
        input.to_str().unwrap(),
        "--style-control",
        "--bootstrap",
        "200",
        "--format",
        "csv",
        "--output",
        result.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_boards_match("style", &result, &dir.join("expected_bt_style.csv"), 0.5);
    // The coefficients, from the JSON twin: words 0.8836, headers 0.2668, lists −0.1085,
    // bold 0 (the reference's point fits).
    let output = quorum(&[
        "leaderboard",
        "--input",
        input.to_str().unwrap(),
        "--style-control",
        "--bootstrap",
        "0",
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let coefficients = &value["boards"][0]["style_coefficients"];
    for (feature, expected) in [
        ("len_words", 0.8836),
        ("header_count", 0.2668),
        ("list_count", -0.1085),
        ("bold_count", 0.0),
    ] {
        let got = coefficients
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["feature"] == feature)
            .unwrap_or_else(|| panic!("{feature} missing: {coefficients}"))["coefficient"]
            .as_f64()
            .unwrap();
        assert!(
            (got - expected).abs() < 0.005,
            "{feature}: {got} vs {expected}"
        );
    }
}
