//! Properties and golden cases of the engine's public API.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod arena;
mod golden;
mod passes;
mod properties;

use quorum_stats::answers::{Answer, Answers, DuplicatePolicy};

/// Builds answers from `(task, worker, label)` triples, sizing every index space to fit.
pub fn answers(triples: &[(u32, u32, u32)], n_labels: usize) -> Answers {
    let n_tasks = triples.iter().map(|t| t.0 as usize + 1).max().unwrap_or(0);
    let n_workers = triples.iter().map(|t| t.1 as usize + 1).max().unwrap_or(0);
    answers_sized(triples, n_tasks, n_workers, n_labels)
}

pub fn answers_sized(
    triples: &[(u32, u32, u32)],
    n_tasks: usize,
    n_workers: usize,
    n_labels: usize,
) -> Answers {
    let data: Vec<Answer> = triples
        .iter()
        .map(|&(task, worker, label)| Answer {
            task,
            worker,
            label,
        })
        .collect();
    Answers::new(
        n_tasks,
        n_workers,
        n_labels,
        &data,
        DuplicatePolicy::KeepFirst,
    )
    .unwrap()
}
