//! Small cases whose answers can be worked out by hand.

use quorum_stats::classification::{Method, Settings, aggregate};

use crate::answers;

/// Runs `method` on `triples` and compares labels and (rounded) confidences.
fn check(
    method: Method,
    triples: &[(u32, u32, u32)],
    n_labels: usize,
    labels: &[u32],
    confidences: &[f64],
) {
    let result = aggregate(method, &answers(triples, n_labels), &Settings::default()).unwrap();
    assert_eq!(result.labels, labels, "{method:?}");
    for (t, &expected) in confidences.iter().enumerate() {
        let got = result.confidence(t);
        assert!(
            (got - expected).abs() < 1e-3,
            "{method:?} task {t}: {got} vs {expected}"
        );
    }
}

#[test]
fn majority_vote_shares_and_lowest_label_tie_break() {
    // Task 0: 2 votes for label 1, one for 0. Task 1: a 1–1 tie between labels 2 and 0 → 0.
    check(
        Method::MajorityVote,
        &[(0, 0, 1), (0, 1, 1), (0, 2, 0), (1, 0, 2), (1, 1, 0)],
        3,
        &[1, 0],
        &[2.0 / 3.0, 0.5],
    );
}

#[test]
fn wawa_follows_the_more_accurate_worker_on_a_tie() {
    // Workers 0 and 1 agree with the majority on tasks 0–2, worker 2 never does. Majority vote
    // breaks task 3's 1–1 tie towards label 0 (worker 2's answer), so worker 2's accuracy is
    // 1/4 against worker 0's 3/4, and Wawa gives task 3 to worker 0: 0.75 / (0.75 + 0.25).
    let data = [
        (0, 0, 1),
        (0, 1, 1),
        (0, 2, 0),
        (1, 0, 0),
        (1, 1, 0),
        (1, 2, 1),
        (2, 0, 1),
        (2, 1, 1),
        (2, 2, 0),
        (3, 0, 1),
        (3, 2, 0),
    ];
    check(Method::MajorityVote, &data, 2, &[1, 0, 1, 0], &[]);
    check(
        Method::Wawa,
        &data,
        2,
        &[1, 0, 1, 1],
        &[1.75 / 2.0, 1.75 / 2.0, 1.75 / 2.0, 0.75],
    );
}

#[test]
fn dawid_skene_learns_that_an_inverted_worker_is_informative() {
    // Workers 0–2 are honest; worker 3 always answers the opposite label. With worker 3 alone
    // on task 6, Dawid–Skene reads their "0" as a 1.
    let mut data = Vec::new();
    for t in 0..6u32 {
        let truth = t % 2;
        for w in 0..3 {
            data.push((t, w, truth));
        }
        data.push((t, 3, 1 - truth));
    }
    data.push((6, 3, 0));
    let result = aggregate(Method::DawidSkene, &answers(&data, 2), &Settings::default()).unwrap();
    assert_eq!(result.labels[6], 1);
    assert!(result.confidence(6) > 0.9);
    let confusion = result.confusion.unwrap();
    // Worker 3: P(observed 0 | truth 1) is high.
    assert!(confusion[(3 * 2 + 1) * 2] > 0.9, "{confusion:?}");
}

#[test]
fn dawid_skene_beats_majority_vote_on_a_crowd_with_spammers() {
    use quorum_stats::synthetic::{CrowdSpec, crowd};
    let spec = CrowdSpec {
        tasks: 3000,
        workers: 60,
        classes: 4,
        spammer_share: 0.3,
        seed: 11,
        ..CrowdSpec::default()
    };
    let data = crowd(&spec);
    let answers = quorum_stats::Answers::new(
        3000,
        60,
        4,
        &data.answers,
        quorum_stats::DuplicatePolicy::KeepFirst,
    )
    .unwrap();
    let accuracy = |method| {
        let result = aggregate(method, &answers, &Settings::default()).unwrap();
        result
            .labels
            .iter()
            .zip(&data.truth)
            .filter(|(a, b)| a == b)
            .count() as f64
            / 3000.0
    };
    let (mv, ds) = (accuracy(Method::MajorityVote), accuracy(Method::DawidSkene));
    assert!(ds > mv + 0.02, "DS {ds} vs MV {mv}");
    for method in [
        Method::OneCoinDawidSkene,
        Method::Glad,
        Method::Mace,
        Method::Mmsr,
    ] {
        assert!(accuracy(method) > mv, "{method:?}");
    }
}

#[test]
fn bradley_terry_recovers_the_true_order_and_noisy_bt_resists_biased_workers() {
    use quorum_stats::pairwise::{bradley_terry, noisy_bradley_terry};
    use quorum_stats::synthetic::{ComparisonSpec, tournament};
    let spec = ComparisonSpec {
        items: 12,
        comparisons: 20_000,
        workers: 40,
        noisy_share: 0.3,
        seed: 5,
    };
    let data = tournament(&spec);
    let spearman = |scores: &[f64]| {
        let rank = |v: &[f64]| {
            quorum_stats::pairwise::competition_ranks(v)
                .iter()
                .map(|&r| r as f64)
                .collect::<Vec<_>>()
        };
        let (a, b) = (rank(scores), rank(&data.strength));
        let n = a.len() as f64;
        1.0 - 6.0 * a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>()
            / (n * (n * n - 1.0))
    };
    let bt = bradley_terry(12, 40, &data.comparisons, 10_000, 1e-10).unwrap();
    let noisy = noisy_bradley_terry(12, 40, &data.comparisons, 2000, 1e-10).unwrap();
    assert!(spearman(&bt.scores) > 0.9, "{}", spearman(&bt.scores));
    assert!(spearman(&noisy.scores) >= spearman(&bt.scores) - 1e-9);
    assert!(noisy.converged);
}
