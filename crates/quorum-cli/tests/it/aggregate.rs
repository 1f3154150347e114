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
