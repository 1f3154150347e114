//! Tests of the tally: what it reports against what every response gives, and folds in any
//! batches.

use serde_json::{Value, json};

use quorum_store::ExportRow;

use super::*;
use crate::quality::agreement_of;

fn schema() -> Schema {
    Schema::parse(&json!({
        "fields": [{"name": "t", "kind": "text"}],
        "questions": [
            {"name": "label", "kind": "label", "options": ["x", "y", "z"]},
            {"name": "score", "kind": "rating", "min": 1, "max": 5},
            {"name": "note", "kind": "text"}
        ]
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Random answers: 60 items, 7 raters in three locales, each rater answering an item
/// with probability 0.6, some answers without one of the questions.
fn responses(seed: u64) -> Vec<(i64, TallyResponse)> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    let mut id = 0;
    for item in 0..60_i64 {
        let truth = rng.below(3);
        for user in 1..=7_i64 {
            if rng.below(10) >= 6 {
                continue;
            }
            id += 1;
            let label = if rng.below(10) < 7 {
                truth
            } else {
                rng.below(3)
            };
            let mut answers = serde_json::Map::new();
            if rng.below(10) < 9 {
                answers.insert("label".into(), json!(["x", "y", "z"][label]));
            }
            if rng.below(10) < 8 {
                answers.insert("score".into(), json!(1 + (truth + rng.below(2)) as i64));
            }
            out.push((
                item,
                TallyResponse {
                    id,
                    user_id: user,
                    answers: Value::Object(answers),
                    time_spent_ms: 500 + rng.below(20_000) as i64,
                    created_at: id * 60_000,
                },
            ));
        }
    }
    // Arrival order is not item order.
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i + 1));
    }
    out
}

fn locale(user: i64) -> &'static str {
    ["ar-QA", "en-GB", "sw-KE"][(user % 3) as usize]
}

/// Folds `arrived` in batches of `size` responses the way the store hands them over.
fn tally_of(arrived: &[(i64, TallyResponse)], size: usize) -> Tally {
    let mut tally = Tally::default();
    for user in 1..=7 {
        tally.set_group(user, locale(user));
    }
    let mut stored: BTreeMap<i64, Vec<TallyResponse>> = BTreeMap::new();
    for chunk in arrived.chunks(size) {
        let mut queued: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (item, r) in chunk {
            stored.entry(*item).or_default().push(r.clone());
            queued.entry(*item).or_default().push(r.id);
        }
        for (item, queued) in queued {
            let mut responses = stored[&item].clone();
            responses.sort_by_key(|r| r.id);
            tally.fold(
                &schema(),
                &TallyItem {
                    item_id: item,
                    responses,
                    queued,
                },
            );
        }
    }
    tally
}

fn rows(arrived: &[(i64, TallyResponse)]) -> Vec<ExportRow> {
    let mut rows: Vec<ExportRow> = arrived
        .iter()
        .map(|(item, r)| ExportRow {
            response_id: r.id,
            item_id: *item,
            external_id: None,
            user_id: r.user_id,
            user_name: format!("u{}", r.user_id),
            answers: r.answers.clone(),
            time_spent_ms: r.time_spent_ms,
            created_at: r.created_at,
            gold: false,
        })
        .collect();
    rows.sort_by_key(|r| r.response_id);
    rows
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn the_tally_reports_what_every_response_gives() {
    for seed in 0..5 {
        let arrived = responses(seed);
        let names: HashMap<i64, String> = (1..=7).map(|u| (u, format!("u{u}"))).collect();
        let locales: HashMap<i64, String> = (1..=7).map(|u| (u, locale(u).to_string())).collect();
        let expected =
            agreement_of(&schema(), &rows(&arrived), &locales).unwrap_or_else(|e| panic!("{e}"));
        let tallied = tally_of(&arrived, 37).agreement(&schema(), &names);
        assert_eq!(tallied.len(), expected.len(), "seed {seed}");
        assert_eq!(tallied.len(), 2, "label and score; text has no agreement");
        for (t, e) in tallied.iter().zip(&expected) {
            assert_eq!((&t.question, &t.level), (&e.question, &e.level));
            assert_eq!(t.groups.len(), e.groups.len());
            for (tg, eg) in t.groups.iter().zip(&e.groups) {
                assert_eq!((&tg.group, tg.raters), (&eg.group, eg.raters));
                assert!(close(tg.alpha, eg.alpha), "{seed} {tg:?} {eg:?}");
                if let (Some(a), Some(lo), Some(hi)) = (tg.alpha, tg.lower, tg.upper) {
                    assert!(lo <= a + 1e-9 && a <= hi + 1e-9, "{tg:?}");
                }
            }
            assert!(close(t.within_locale, e.within_locale));
            assert!(close(t.across_locales, e.across_locales));
            assert!(close(t.fleiss_kappa, e.fleiss_kappa), "{t:?} {e:?}");
            let key = |p: &RaterPair| (p.a.clone(), p.b.clone());
            // The engine orders a pair by first appearance, the tally by user id.
            let ordered = |pairs: &[RaterPair]| -> Vec<RaterPair> {
                pairs
                    .iter()
                    .map(|p| {
                        let mut p = p.clone();
                        if p.a > p.b {
                            std::mem::swap(&mut p.a, &mut p.b);
                        }
                        p
                    })
                    .collect()
            };
            let (mut tp, mut ep) = (ordered(&t.pairs), ordered(&e.pairs));
            tp.sort_by_key(key);
            ep.sort_by_key(key);
            assert_eq!(tp.len(), ep.len());
            assert!(!tp.is_empty() || t.level != "nominal");
            for (a, b) in tp.iter().zip(&ep) {
                assert_eq!((&a.a, &a.b, a.common_items), (&b.a, &b.b, b.common_items));
                assert!((a.percent_agreement - b.percent_agreement).abs() < 1e-9);
                assert!(close(a.cohen_kappa, b.cohen_kappa));
            }
        }
    }
}

#[test]
fn folding_in_any_batches_gives_the_same_tally() {
    let arrived = responses(7);
    let whole = tally_of(&arrived, arrived.len());
    let names: HashMap<i64, String> = (1..=7).map(|u| (u, format!("u{u}"))).collect();
    // Values are numbered in order of first sight, so compare what the tallies say (to
    // the rounding of sums taken in another order).
    let same = |a: &Tally, b: &Tally| {
        let (a, b) = (
            a.agreement(&schema(), &names),
            b.agreement(&schema(), &names),
        );
        a.len() == b.len()
            && a.iter().zip(&b).all(|(a, b)| {
                a.groups.iter().zip(&b.groups).all(|(x, y)| {
                    x.group == y.group
                        && close(x.alpha, y.alpha)
                        && close(x.lower, y.lower)
                        && close(x.upper, y.upper)
                }) && close(a.within_locale, b.within_locale)
                    && close(a.fleiss_kappa, b.fleiss_kappa)
                    && a.pairs.len() == b.pairs.len()
                    && a.pairs.iter().zip(&b.pairs).all(|(p, q)| {
                        (&p.a, &p.b, p.common_items) == (&q.a, &q.b, q.common_items)
                            && close(p.cohen_kappa, q.cohen_kappa)
                    })
            })
    };
    for size in [1, 5, 64] {
        let parts = tally_of(&arrived, size);
        assert!(same(&parts, &whole), "batches of {size}");
        assert!(parts.raters == whole.raters && parts.hours == whole.hours);
        assert!(parts.time_histogram() == whole.time_histogram());
        // The saved form reads back to the same tally.
        assert!(Tally::parse(Some(&parts.to_data())).ok() == Some(parts));
    }
    let counted: i64 = whole.raters.values().map(|r| r.responses).sum();
    assert_eq!(counted, arrived.len() as i64);
    assert_eq!(whole.hours.values().sum::<i64>(), arrived.len() as i64);
    let in_histogram: i64 = whole.time_histogram().iter().map(|b| b.1).sum();
    assert_eq!(in_histogram, arrived.len() as i64);
}

#[test]
fn median_times_are_within_a_bucket() {
    let mut rater = RaterTally::default();
    for ms in [900, 1_000, 4_000, 4_100, 30_000] {
        *rater.times.entry(bucket(ms)).or_default() += 1;
    }
    let median = rater.median_time_ms().unwrap_or_default();
    assert!((3_800..=4_300).contains(&median), "{median}");
    assert_eq!(RaterTally::default().median_time_ms(), None);
    for ms in [0, 1, 999, 12_345, 3_600_000] {
        let middle = bucket_ms(bucket(ms));
        assert!(
            (middle - ms).abs() as f64 <= 0.05 * ms as f64 + 1.0,
            "{ms}: {middle}"
        );
    }
}
