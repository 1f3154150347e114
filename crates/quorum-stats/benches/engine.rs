//! Criterion benchmarks of the engine alone (no CSV): `cargo bench -p quorum-stats`.
//! Data come from the seeded synthetic generator, as in BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use quorum_stats::answers::{Answers, DuplicatePolicy};
use quorum_stats::classification::{Method, Settings, aggregate};
use quorum_stats::pairwise::noisy_bradley_terry;
use quorum_stats::synthetic::{ComparisonSpec, CrowdSpec, crowd, tournament};

fn answers(tasks: usize) -> Answers {
    let spec = CrowdSpec {
        tasks,
        workers: 2000,
        classes: 5,
        seed: 1,
        ..CrowdSpec::default()
    };
    let data = crowd(&spec);
    Answers::new(tasks, 2000, 5, &data.answers, DuplicatePolicy::KeepFirst)
        .expect("valid synthetic answers")
}

fn classification(c: &mut Criterion) {
    let million = answers(200_000);
    let hundred_thousand = answers(20_000);
    let mut group = c.benchmark_group("classification");
    group.sample_size(10);
    for (name, method, data) in [
        ("mv_1m", Method::MajorityVote, &million),
        ("ds_1m", Method::DawidSkene, &million),
        ("onecoin_1m", Method::OneCoinDawidSkene, &million),
        ("glad_100k", Method::Glad, &hundred_thousand),
        ("mace_100k", Method::Mace, &hundred_thousand),
        ("mace_1m", Method::Mace, &million),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| aggregate(method, data, &Settings::default()))
        });
    }
    group.finish();
}

fn pairwise(c: &mut Criterion) {
    let data = tournament(&ComparisonSpec {
        items: 100,
        comparisons: 50_000,
        workers: 200,
        noisy_share: 0.2,
        seed: 1,
    });
    let mut group = c.benchmark_group("pairwise");
    group.sample_size(10);
    group.bench_function("noisy_bt_50k", |b| {
        b.iter(|| noisy_bradley_terry(100, 200, &data.comparisons, 1000, 1e-8))
    });
    group.finish();
}

/// The arena target: 1,000,000 battles among 200 models, 1,000 bootstrap rounds (every core).
fn arena(c: &mut Criterion) {
    let data = quorum_stats::synthetic::arena(&quorum_stats::synthetic::ArenaSpec {
        models: 200,
        battles: 1_000_000,
        tie_share: 0.1,
        seed: 1,
    });
    let mut group = c.benchmark_group("arena");
    group.sample_size(10);
    for rounds in [0, 1000] {
        let options = quorum_stats::arena::ArenaOptions {
            rounds,
            ..Default::default()
        };
        group.bench_function(format!("bt_1m_battles_200_models_{rounds}_rounds"), |b| {
            b.iter(|| quorum_stats::arena::leaderboard(200, &data.battles, &options))
        });
    }
    group.finish();
}

criterion_group!(benches, classification, pairwise, arena);
criterion_main!(benches);
