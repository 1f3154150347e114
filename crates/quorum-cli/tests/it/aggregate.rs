//! The `aggregate` and `agreement` commands on small fixtures written by the tests.

use crate::support::{column, quorum, stderr, stdout, write};

const LABELS: &str = "task,worker,label\n\
t1,w1,cat\nt1,w2,cat\nt1,w3,dog\n\
t2,w1,dog\nt2,w2,dog\nt2,w3,dog\n\
t3,w1,cat\nt3,w2,bird\nt3,w3,cat\n";

#[test]
fn aggregate_writes_labels_confidences_workers_and_gold_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "labels.csv", LABELS);
    let gold = write(
        dir.path(),
        "gold.csv",
        "task,label\nt1,cat\nt2,dog\nt3,bird\nt9,cat\n",
    );
    let result = dir.path().join("out.csv");
    let workers = dir.path().join("workers.csv");
    for method in ["mv", "wawa", "zbs", "ds", "onecoin", "glad", "mace", "mmsr"] {
        let output = quorum(&[
            "aggregate",
            "--method",
            method,
            "--input",
            input.to_str().unwrap(),
            "--gold",
            gold.to_str().unwrap(),
            "--output",
            result.to_str().unwrap(),
            "--workers",
            workers.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{method}: {}", stderr(&output));
        // t9 has no answers, so only three gold tasks count; t3's gold (bird) is a minority
        // answer that only a method trusting w2 over w1 and w3 could pick.
        let expected = if method == "mv" {
            "accuracy on gold: 0.6667 (2/3 gold tasks"
        } else {
            "/3 gold tasks with answers)"
        };
        assert!(
            stdout(&output).contains(expected),
            "{method}: {}",
            stdout(&output)
        );
        let labels = column(&result, "task", "label");
        assert_eq!(labels["t1"], "cat", "{method}");
        assert_eq!(labels["t2"], "dog", "{method}");
        let confidence: f64 = column(&result, "task", "confidence")["t2"].parse().unwrap();
        assert!(
            confidence > 0.5 && confidence <= 1.0,
            "{method}: {confidence}"
        );
        assert_eq!(column(&workers, "worker", "answers")["w1"], "3");
    }
}

#[test]
fn kos_refuses_more_than_two_labels_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "labels.csv", LABELS);
    let output = quorum(&[
        "aggregate",
        "--method",
        "kos",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("KOS is for binary tasks only, but the answers use 3 labels"));
}

#[test]
fn malformed_inputs_name_the_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "empty.csv",
            "",
            "empty.csv: the file is empty; expected a header row `task,worker,label`",
        ),
        (
            "header.csv",
            "item,worker,label\nt,w,l\n",
            "header.csv:1: the header has no column `task`",
        ),
        (
            "short.csv",
            "task,worker,label\nt1,w1,a\nt2,w2\n",
            "short.csv:3: expected 3 fields like the header, found 2",
        ),
        (
            "nolabel.csv",
            "task,worker,label\nt1,w1,\n",
            "nolabel.csv:2: the label is empty",
        ),
        (
            "noanswers.csv",
            "task,worker,label\n",
            "noanswers.csv: the file has a header but no answers",
        ),
    ];
    for (name, content, message) in cases {
        let input = write(dir.path(), name, content);
        let output = quorum(&[
            "aggregate",
            "--method",
            "ds",
            "--input",
            input.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(
            stderr(&output).contains(message),
            "{name}: {}",
            stderr(&output)
        );
    }
    let ratings = write(
        dir.path(),
        "ratings.csv",
        "task,worker,label\nt1,w1,3\nt1,w2,high\n",
    );
    let output = quorum(&[
        "aggregate",
        "--method",
        "mean",
        "--input",
        ratings.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("ratings.csv:3: `label` must be a finite number, found `high`"),
        "{}",
        stderr(&output)
    );
    let missing = quorum(&[
        "aggregate",
        "--method",
        "mv",
        "--input",
        "/nonexistent/labels.csv",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/labels.csv: cannot open"));
}

#[test]
fn bradley_terry_ranks_items_and_rejects_a_label_that_is_not_a_side() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("worker,left,right,label\n");
    // a beats b 3:1, b beats c 3:1, a beats c 4:0.
    for (l, r, wins_l, wins_r) in [("a", "b", 3, 1), ("b", "c", 3, 1), ("a", "c", 4, 0)] {
        for _ in 0..wins_l {
            rows.push_str(&format!("w1,{l},{r},{l}\n"));
        }
        for _ in 0..wins_r {
            rows.push_str(&format!("w2,{r},{l},{r}\n"));
        }
    }
    let input = write(dir.path(), "cmp.csv", &rows);
    for method in ["bt", "noisybt"] {
        let output = quorum(&[
            "aggregate",
            "--method",
            method,
            "--input",
            input.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "item,score,rank");
        assert!(
            lines[1].starts_with("a,") && lines[1].ends_with(",1"),
            "{method}: {text}"
        );
        assert!(
            lines[3].starts_with("c,") && lines[3].ends_with(",3"),
            "{method}: {text}"
        );
        let total: f64 = lines[1..]
            .iter()
            .map(|l| l.split(',').nth(1).unwrap().parse::<f64>().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
    let bad = write(dir.path(), "bad.csv", "worker,left,right,label\nw1,a,b,c\n");
    let output = quorum(&[
        "aggregate",
        "--method",
        "bt",
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("bad.csv:2: `label` must name the winner, `a` or `b`, found `c`")
    );
}

#[test]
fn ratings_are_summarised_per_task_with_duplicates_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "r.csv",
        "task,worker,label\nt1,w1,1\nt1,w2,2\nt1,w3,9\nt1,w1,5\n",
    );
    let run = |method: &str, duplicates: &str| {
        let output = quorum(&[
            "aggregate",
            "--method",
            method,
            "--input",
            input.to_str().unwrap(),
            "--duplicates",
            duplicates,
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output).lines().nth(1).unwrap().to_string()
    };
    assert_eq!(run("mean", "keep-first"), "t1,4,4.358898943540674,3");
    assert_eq!(run("median", "keep-last"), "t1,5,3,3");
    assert_eq!(run("median", "keep-all"), "t1,3.5,2,4");
}

#[test]
fn agreement_reports_overall_and_per_group_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "labels.csv", LABELS);
    let groups = write(
        dir.path(),
        "groups.csv",
        "worker,group\nw1,en-GB\nw2,en-GB\nw3,ar-QA\n",
    );
    let output = quorum(&[
        "agreement",
        "--metric",
        "percent",
        "--input",
        input.to_str().unwrap(),
        "--group-by",
        groups.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "group,metric,value,lower,upper,tasks,workers,answers"
    );
    // Overall: t1 1/3 pairs agree, t2 3/3, t3 1/3 → 5/9.
    let overall: f64 = lines[1].split(',').nth(2).unwrap().parse().unwrap();
    assert!(
        lines[1].starts_with("(all),percent,") && (overall - 5.0 / 9.0).abs() < 1e-12,
        "{text}"
    );
    // ar-QA has one worker, so agreement is undefined: an empty value, not a failure.
    assert_eq!(lines[2], "ar-QA,percent,,,,3,1,3");
    // en-GB: w1 and w2 agree on t1 and t2, not t3.
    let en: f64 = lines[3].split(',').nth(2).unwrap().parse().unwrap();
    assert!(
        lines[3].starts_with("en-GB,percent,") && (en - 2.0 / 3.0).abs() < 1e-12,
        "{text}"
    );

    let output = quorum(&[
        "agreement",
        "--metric",
        "cohen",
        "--input",
        input.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert!(
        text.starts_with("group,worker_a,worker_b,common_tasks,percent,kappa\n(all),w1,w2,3,"),
        "{text}"
    );

    let alpha = quorum(&[
        "agreement",
        "--metric",
        "alpha-nominal",
        "--input",
        input.to_str().unwrap(),
        "--bootstrap",
        "200",
    ]);
    let line = stdout(&alpha).lines().nth(1).unwrap().to_string();
    let fields: Vec<&str> = line.split(',').collect();
    let (value, lower, upper): (f64, f64, f64) = (
        fields[2].parse().unwrap(),
        fields[3].parse().unwrap(),
        fields[4].parse().unwrap(),
    );
    assert!(lower <= value && value <= upper, "{line}");

    let ordinal = quorum(&[
        "agreement",
        "--metric",
        "alpha-ordinal",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(ordinal.status.code(), Some(2));
    assert!(stderr(&ordinal).contains("label `bird` is not a number"));
}

/// A small arena: `x` beats `y` mostly, `z` is weak; raters of two locales.
fn arena_fixture() -> String {
    let mut csv = String::from("model_a,model_b,winner,locale\n");
    for (a, b, winner, locale, times) in [
        ("x", "y", "model_a", "en-GB", 30),
        ("x", "y", "model_b", "en-GB", 10),
        ("y", "z", "model_a", "en-GB", 30),
        ("y", "z", "tie", "en-GB", 10),
        ("x", "z", "model_a", "en-GB", 20),
        // ar-QA raters prefer y to x.
        ("x", "y", "model_b", "ar-QA", 35),
        ("x", "y", "model_a", "ar-QA", 5),
        ("y", "z", "model_a", "ar-QA", 30),
        ("x", "z", "tie (bothbad)", "ar-QA", 10),
        ("z", "x", "model_b", "ar-QA", 20),
    ] {
        for _ in 0..times {
            csv.push_str(&format!("{a},{b},{winner},{locale}\n"));
        }
    }
    csv
}

#[test]
fn leaderboard_ranks_models_per_slice_and_reports_where_slices_diverge() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "battles.csv", &arena_fixture());
    let json = quorum(&[
        "leaderboard",
        "--input",
        input.to_str().unwrap(),
        "--bootstrap",
        "300",
        "--slice-by",
        "locale",
        "--format",
        "json",
    ]);
    assert!(json.status.success(), "{}", stderr(&json));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let boards = value["boards"].as_array().unwrap();
    let slices: Vec<&str> = boards
        .iter()
        .map(|b| b["slice"].as_str().unwrap_or("(all)"))
        .collect();
    assert_eq!(slices, ["(all)", "ar-QA", "en-GB"]);
    let top = |b: &serde_json::Value| b["models"][0]["model"].as_str().unwrap().to_string();
    assert_eq!(top(&boards[1]), "y");
    assert_eq!(top(&boards[2]), "x");
    let mean: f64 = boards[0]["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rating"].as_f64().unwrap())
        .sum::<f64>()
        / 3.0;
    assert!((mean - 1000.0).abs() < 1e-6, "{mean}");
    let divergence = &value["divergence"][0];
    assert_eq!(divergence["a"], "ar-QA");
    let x = divergence["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["model"] == "x")
        .unwrap();
    assert_eq!(x["significant"], true, "{divergence}");
    assert!(x["difference"].as_f64().unwrap() < 0.0);

    let table = quorum(&[
        "leaderboard",
        "--input",
        input.to_str().unwrap(),
        "--bootstrap",
        "100",
        "--slice-by",
        "locale",
        "--anchor",
        "z=800",
    ]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.contains("== ar-QA vs en-GB"), "{text}");
    assert!(text.contains("rated higher by `en-GB`"), "{text}");
    assert!(text.contains("800.0"), "the anchor is pinned: {text}");
}

#[test]
fn leaderboard_errors_name_the_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "b.csv",
        "model_a,model_b,winner\nx,y,model_a\nx,y,left\n",
    );
    let output = quorum(&["leaderboard", "--input", input.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("b.csv:3: `winner` must be model_a"),
        "{}",
        stderr(&output)
    );
    let output = quorum(&[
        "leaderboard",
        "--input",
        input.to_str().unwrap(),
        "--style-control",
    ]);
    assert!(
        stderr(&output).contains("--style-control needs style columns"),
        "{}",
        stderr(&output)
    );
    let good = write(dir.path(), "g.csv", "model_a,model_b,winner\nx,y,model_a\n");
    let output = quorum(&[
        "leaderboard",
        "--input",
        good.to_str().unwrap(),
        "--anchor",
        "w=1",
    ]);
    assert!(
        stderr(&output).contains("model `w` is not in"),
        "{}",
        stderr(&output)
    );
    let output = quorum(&[
        "leaderboard",
        "--input",
        good.to_str().unwrap(),
        "--slice-by",
        "locale",
    ]);
    assert!(
        stderr(&output).contains("no column `locale`"),
        "{}",
        stderr(&output)
    );
}

/// `quorum simulate` replays answers through a real project: with every answer it uses them
/// all; with dynamic overlap it stops early on easy items and still gets them right.
#[test]
fn simulate_replays_a_crowd_and_dynamic_overlap_saves_answers() {
    let dir = tempfile::tempdir().unwrap();
    // 60 tasks, 6 workers who answer everything: four right 90% of the time, two at random.
    let mut state = 12345u64;
    let mut random = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut labels = String::from("task,worker,label\n");
    let mut gold = String::from("task,label\n");
    for t in 0..60 {
        let truth = if t % 3 == 0 { "yes" } else { "no" };
        gold.push_str(&format!("t{t},{truth}\n"));
        for w in 0..6 {
            let right = if w < 4 {
                random() < 0.9
            } else {
                random() < 0.5
            };
            let label = match (right, truth) {
                (true, l) => l,
                (false, "yes") => "no",
                (false, _) => "yes",
            };
            labels.push_str(&format!("t{t},w{w},{label}\n"));
        }
    }
    write(dir.path(), "labels.csv", &labels);
    write(dir.path(), "gold.csv", &gold);
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "--dataset", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let output = quorum(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        let line = stdout(&output);
        let used: usize = line
            .split("answers used ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let accuracy: f64 = line
            .split("accuracy ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (used, accuracy, line)
    };
    let (all, all_accuracy, line) = run(&[]);
    assert_eq!(all, 360, "{line}");
    assert!(
        line.contains("every answer") && line.contains("on 60 gold items"),
        "{line}"
    );
    let (some, accuracy, line) = run(&["--min-overlap", "3", "--target", "0.97"]);
    assert!(
        some < all * 4 / 5,
        "dynamic overlap used {some} of {all}: {line}"
    );
    assert!(
        accuracy >= all_accuracy - 0.05,
        "{accuracy} vs {all_accuracy}: {line}"
    );
    let output = quorum(&[
        "simulate",
        "--dataset",
        dir.path().to_str().unwrap(),
        "--target",
        "0.9",
    ]);
    assert!(!output.status.success(), "--target needs --min-overlap");
}
