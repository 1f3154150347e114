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
