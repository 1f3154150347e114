//! The spilled consensus against the engine run on the same answers held in memory.

use super::*;
use quorum_stats::rng::SplitMix64;
use quorum_store::Verdict;

fn schema() -> Schema {
    Schema::parse(&json!({
        "fields": [{"name": "t", "kind": "text"}],
        "questions": [
            {"name": "label", "kind": "label", "options": ["x", "y", "z"]},
            {"name": "score", "kind": "rating", "min": 1, "max": 5},
            {"name": "note", "kind": "text", "required": false}
        ]
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// 300 items answered by 3 of 12 raters each, rater `u` right with probability 0.5 + u/30;
/// responses come in an order unrelated to the items'.
fn rows() -> Vec<ExportRow> {
    let mut rng = SplitMix64::new(5);
    let options = ["x", "y", "z"];
    let mut rows = Vec::new();
    for item in 1..=300i64 {
        let truth = (item % 3) as usize;
        for k in 0..3 {
            let user = (item * 7 + k * 5) % 12 + 1;
            let right = rng.next_f64() < 0.5 + user as f64 / 30.0;
            let label = if right {
                truth
            } else {
                (truth + 1 + k as usize % 2) % 3
            };
            rows.push(ExportRow {
                response_id: (item * 31 + k * 1000) % 9973,
                item_id: item,
                external_id: Some(format!("e{item}")),
                user_id: user,
                user_name: format!("u{user}"),
                answers: json!({"label": options[label], "score": (item + k) % 5 + 1}),
                time_spent_ms: 0,
                created_at: 0,
                gold: false,
            });
        }
    }
    rows
}

/// The label question's answers as the engine's input, items in id order and raters
/// numbered as they first appear there.
fn engine_answers(rows: &[ExportRow]) -> Answers {
    let mut sorted: Vec<&ExportRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.item_id, r.response_id));
    let (mut items, mut raters, mut data) = (Ids::default(), Ids::default(), Vec::new());
    for r in sorted {
        let label = ["x", "y", "z"]
            .iter()
            .position(|o| r.answers["label"] == *o)
            .unwrap_or_default();
        data.push(Answer {
            task: items.id(&r.item_id),
            worker: raters.id(&r.user_id),
            label: label as u32,
        });
    }
    Answers::new(
        items.len(),
        raters.len(),
        3,
        &data,
        DuplicatePolicy::KeepLast,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn spilled(
    rows: &[ExportRow],
    reviews: &[Review],
    on_disk: bool,
    method: Method,
) -> Vec<ItemConsensus> {
    let mut builder =
        ConsensusBuilder::new(&schema(), reviews, on_disk).unwrap_or_else(|e| panic!("{e}"));
    builder.push_all(rows).unwrap_or_else(|e| panic!("{e}"));
    let consensus = builder.finish(method).unwrap_or_else(|e| panic!("{e}"));
    let len = consensus.len();
    let rows = consensus.collect().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), len, "the announced length");
    rows
}

#[test]
fn spilled_label_consensus_is_the_engines_for_every_method_kind() {
    let rows = rows();
    let answers = engine_answers(&rows);
    // Dawid–Skene by passes over the spill, and GLAD over answers read back into memory.
    for method in [Method::DawidSkene, Method::OneCoinDawidSkene, Method::Glad] {
        let engine = classification::aggregate(method, &answers, &Settings::default())
            .unwrap_or_else(|e| panic!("{e}"));
        for on_disk in [false, true] {
            let got = spilled(&rows, &[], on_disk, method);
            let labels: Vec<&ItemConsensus> =
                got.iter().filter(|c| c.question == "label").collect();
            assert_eq!(labels.len(), 300);
            for (task, c) in labels.iter().enumerate() {
                assert_eq!(c.item_id, task as i64 + 1, "items in id order");
                let label = engine.labels[task] as usize;
                assert_eq!(
                    c.answer,
                    json!(["x", "y", "z"][label]),
                    "{method:?} item {}",
                    c.item_id
                );
                let p = engine.probabilities_of(task)[label];
                assert_eq!(
                    c.confidence.to_bits(),
                    p.to_bits(),
                    "{method:?} item {}",
                    c.item_id
                );
                assert_eq!((c.responses, c.method), (3, method.short_name()));
            }
            // Ratings follow, by item: the median of the three.
            let scores: Vec<&ItemConsensus> =
                got.iter().filter(|c| c.question == "score").collect();
            assert_eq!(scores.len(), 300);
            assert_eq!(got[300].question, "score", "question by question");
        }
    }
}

#[test]
fn reviews_decide_what_counts_and_corrections_decide_their_items() {
    let rows = rows();
    let of = |item: i64| rows.iter().filter(move |r| r.item_id == item);
    let review = |r: &ExportRow, verdict, answers: Option<Value>| Review {
        response_id: r.response_id,
        project_id: 1,
        item_id: r.item_id,
        rater_id: r.user_id,
        reviewer_id: 99,
        verdict,
        answers,
        created_at: 10,
    };
    let rejected = of(1).next().cloned().unwrap_or_else(|| panic!("item 1"));
    let corrected = of(2).next().cloned().unwrap_or_else(|| panic!("item 2"));
    let reviews = [
        review(&rejected, Verdict::Reject, None),
        review(
            &corrected,
            Verdict::Correct,
            Some(json!({"label": "z", "note": "checked"})),
        ),
    ];
    let got = spilled(&rows, &reviews, true, Method::MajorityVote);
    let find = |item: i64, q: &str| {
        got.iter()
            .find(|c| c.item_id == item && c.question == q)
            .cloned()
    };
    assert_eq!(
        find(1, "label").map(|c| c.responses),
        Some(2),
        "the rejected answer left out"
    );
    let label = find(2, "label").unwrap_or_else(|| panic!("item 2"));
    assert_eq!(
        (
            label.answer,
            label.confidence,
            label.method,
            label.responses
        ),
        (json!("z"), 1.0, "adjudicated", 2)
    );
    // A correction answers questions that have no consensus of their own, and takes the place
    // of the item's rows on the others.
    assert_eq!(find(2, "note").map(|c| c.answer), Some(json!("checked")));
    assert_eq!(find(2, "score"), None);
    assert_eq!(got.iter().filter(|c| c.question == "note").count(), 1);
    assert_eq!(got.last().map(|c| c.question.as_str()), Some("note"));
}

#[test]
fn reliability_compares_every_answer_with_the_consensus_of_the_counted_ones() {
    let schema = Schema::parse(&json!({
        "fields": [{"name": "t", "kind": "text"}, {"name": "r", "kind": "responses"}],
        "questions": [
            {"name": "label", "kind": "label", "options": ["x", "y"]},
            {"name": "pref", "kind": "pairwise"}
        ]
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut rows = Vec::new();
    for item in 1..=11i64 {
        for user in 1..=4i64 {
            let (label, pref) = if user == 3 { ("y", "b") } else { ("x", "a") };
            rows.push(ExportRow {
                response_id: item * 10 + user,
                item_id: item,
                external_id: None,
                user_id: user,
                user_name: format!("u{user}"),
                answers: json!({"label": label, "pref": pref}),
                time_spent_ms: 0,
                created_at: 0,
                gold: false,
            });
        }
    }
    // Rater 1's answer to item 1 was rejected; item 11 is gold.
    let verdicts = HashMap::from([(11, Verdict::Reject)]);
    let gold = HashMap::from([(11, json!({"label": "x"}))]);
    let report = super::super::reliability_of(&schema, &rows, &gold, &verdicts)
        .unwrap_or_else(|e| panic!("{e}"));
    let of = |u: i64| {
        report
            .iter()
            .find(|r| r.user_id == u)
            .cloned()
            .unwrap_or_else(|| panic!("{u}"))
    };
    let one = of(1);
    assert_eq!((one.responses, one.reviews_rejected), (11, 1));
    assert_eq!((one.gold_answered, one.gold_correct), (1, 1));
    // Its rejected answer left the consensus but is still compared with it: 10 items, two
    // questions each, all agreeing.
    assert_eq!(one.agreement_with_consensus, Some(1.0));
    let three = of(3);
    assert_eq!((three.gold_answered, three.gold_correct), (1, 0));
    assert_eq!(three.agreement_with_consensus, Some(0.0));
    assert!(one.skill.unwrap_or(0.0) > three.skill.unwrap_or(1.0));
    assert_eq!(three.confusion.as_ref().map(Vec::len), Some(2));
}
