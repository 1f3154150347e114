//! Arena leaderboards on synthetic battles with known true ratings.

use quorum_stats::arena::{self, ArenaOptions, Winner};
use quorum_stats::synthetic::{ArenaSpec, arena as synthetic_arena};

/// Over repeated draws, the 95% bootstrap intervals cover the true rating of about 95% of the
/// models. 100 draws × 20 models = 2,000 intervals: an honest 95% lands within ±1.5 points of
/// 95% with overwhelming probability, while intervals half as wide (≈ 68%) or twice as wide
/// (≈ 99.99%) fall far outside.
#[test]
fn bootstrap_intervals_cover_the_truth_95_percent_of_the_time() {
    let (mut covered, mut total) = (0usize, 0usize);
    let mut widths = Vec::new();
    for draw in 0..100 {
        let data = synthetic_arena(&ArenaSpec {
            models: 20,
            battles: 3_000,
            tie_share: 0.0,
            seed: 1_000 + draw,
        });
        let options = ArenaOptions {
            rounds: 200,
            seed: draw,
            ..ArenaOptions::default()
        };
        let board = arena::leaderboard(20, &data.battles, &options).unwrap();
        for m in 0..20 {
            total += 1;
            widths.push(board.upper[m] - board.lower[m]);
            if board.lower[m] <= data.ratings[m] && data.ratings[m] <= board.upper[m] {
                covered += 1;
            }
        }
    }
    let coverage = covered as f64 / total as f64;
    widths.sort_by(f64::total_cmp);
    let median_width = widths[widths.len() / 2];
    eprintln!("coverage {coverage:.4} over {total} intervals, median width {median_width:.1} Elo");
    assert!(
        (0.935..=0.965).contains(&coverage),
        "coverage {coverage:.3} over {total} intervals (median width {median_width:.1} Elo)"
    );
}

/// The point ratings recover the truth: with many battles the error is a few Elo.
#[test]
fn ratings_recover_the_truth_and_ties_pull_towards_the_mean() {
    let data = synthetic_arena(&ArenaSpec {
        models: 10,
        battles: 200_000,
        tie_share: 0.0,
        seed: 7,
    });
    let options = ArenaOptions {
        rounds: 0,
        ..ArenaOptions::default()
    };
    let board = arena::leaderboard(10, &data.battles, &options).unwrap();
    for m in 0..10 {
        assert!(
            (board.ratings[m] - data.ratings[m]).abs() < 6.0,
            "model {m}: {} vs true {}",
            board.ratings[m],
            data.ratings[m]
        );
    }
    // Ties regardless of strength count as half wins, so they shrink the spread.
    let tied = synthetic_arena(&ArenaSpec {
        tie_share: 0.5,
        ..ArenaSpec {
            models: 10,
            battles: 200_000,
            tie_share: 0.0,
            seed: 7,
        }
    });
    let shrunk = arena::leaderboard(10, &tied.battles, &options).unwrap();
    let spread = |r: &[f64]| r.iter().map(|x| (x - 1000.0).abs()).sum::<f64>();
    assert!(spread(&shrunk.ratings) < 0.8 * spread(&board.ratings));
}

/// Two populations that rank two models the other way round: the divergence report finds
/// exactly those models, and agrees with itself that identical boards do not diverge.
#[test]
fn divergence_finds_the_models_two_populations_disagree_on() {
    let base = ArenaSpec {
        models: 8,
        battles: 40_000,
        tie_share: 0.0,
        seed: 11,
    };
    let mut first = synthetic_arena(&base);
    let mut second = synthetic_arena(&ArenaSpec {
        seed: 12,
        ..base.clone()
    });
    // In the second population, model 0's and model 1's answers are judged as if their
    // ratings were swapped: regenerate its battles with the swapped truth.
    second.ratings = first.ratings.clone();
    second.ratings.swap(0, 1);
    let gap = (first.ratings[0] - first.ratings[1]).abs();
    let mut rng = quorum_stats::rng::SplitMix64::new(99);
    for battle in &mut second.battles {
        let (a, b) = (battle.a as usize, battle.b as usize);
        let p = 1.0 / (1.0 + 10f64.powf((second.ratings[b] - second.ratings[a]) / 400.0));
        battle.winner = if rng.next_f64() < p {
            Winner::A
        } else {
            Winner::B
        };
    }
    first.battles.truncate(40_000);
    let options = ArenaOptions {
        rounds: 200,
        ..ArenaOptions::default()
    };
    let a = arena::leaderboard(8, &first.battles, &options).unwrap();
    let b = arena::leaderboard(
        8,
        &second.battles,
        &ArenaOptions {
            seed: 1,
            ..options.clone()
        },
    )
    .unwrap();
    let d = arena::divergence(&a, &b);
    assert_eq!(d.models.len(), 8);
    let flagged: Vec<u32> = d.significant().map(|(m, _)| m).collect();
    assert!(
        gap > 40.0,
        "the seed gives models 0 and 1 distinct ratings ({gap:.0})"
    );
    assert!(flagged.contains(&0) && flagged.contains(&1), "{flagged:?}");
    // The two largest differences are the swapped models, in opposite directions.
    let mut by_size: Vec<usize> = (0..8).collect();
    by_size.sort_by(|&x, &y| d.difference[y].abs().total_cmp(&d.difference[x].abs()));
    let mut top = [d.models[by_size[0]], d.models[by_size[1]]];
    top.sort_unstable();
    assert_eq!(top, [0, 1], "{:?}", d.difference);
    assert!(d.difference[0] * d.difference[1] < 0.0);
    let same = arena::divergence(&a, &a);
    assert!((same.spearman - 1.0).abs() < 1e-12);
    assert_eq!(same.significant().count(), 0);
}
