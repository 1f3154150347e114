//! Dawid–Skene by passes over tasks that are not held: the same fit as in memory, to the bit.

use quorum_stats::answers::{Answers, DuplicatePolicy};
use quorum_stats::classification::{
    Classification, dawid_skene, dawid_skene_passes, one_coin_dawid_skene,
};
use quorum_stats::synthetic::{CrowdSpec, crowd};

fn synthetic(classes: usize, tasks: usize, seed: u64) -> Answers {
    let spec = CrowdSpec {
        tasks,
        classes,
        workers: 40,
        seed,
        ..CrowdSpec::default()
    };
    let data = crowd(&spec).answers;
    Answers::new(tasks, 40, classes, &data, DuplicatePolicy::KeepFirst).unwrap()
}

/// Checks a passes fit against the in-memory one, task by task, and counts the passes.
fn check(answers: &Answers, iterations: usize, one_coin: bool) {
    let memory: Classification = if one_coin {
        one_coin_dawid_skene(answers, iterations, 1e-5)
    } else {
        dawid_skene(answers, iterations, 1e-5)
    };
    let mut passes = 0;
    let mut tasks = Counted {
        answers,
        passes: &mut passes,
    };
    let k = answers.n_labels();
    let fit = dawid_skene_passes(
        &mut tasks,
        answers.n_workers(),
        k,
        iterations,
        1e-5,
        one_coin,
    )
    .unwrap();
    assert_eq!(fit.iterations, memory.iterations);
    assert_eq!(fit.converged, memory.converged);
    // One pass to count, then one per iteration begun.
    let begun = if fit.converged {
        fit.iterations + 1
    } else {
        fit.iterations
    };
    assert_eq!(passes, 1 + begun);
    let mut p = vec![0.0; k];
    let mut rows = Vec::new();
    for t in 0..answers.n_tasks() {
        rows.clear();
        for i in answers.task_range(t) {
            rows.push(answers.workers()[i] * k as u32 + answers.labels()[i]);
        }
        fit.posterior(&rows, &mut p);
        let expected = memory.probabilities_of(t);
        assert!(
            p.iter()
                .zip(expected)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "task {t}: {p:?} against {expected:?} (one-coin: {one_coin})"
        );
    }
    assert_eq!(fit.worker_skill(), memory.worker_skill);
    assert_eq!(fit.confusion(), memory.confusion);
}

struct Counted<'a> {
    answers: &'a Answers,
    passes: &'a mut usize,
}

impl quorum_stats::classification::TaskPasses for Counted<'_> {
    type Error = std::convert::Infallible;
    fn pass(&mut self, each: &mut dyn FnMut(&[u32])) -> Result<(), Self::Error> {
        *self.passes += 1;
        let mut answers = self.answers;
        answers.pass(each)
    }
}

#[test]
fn passes_give_the_in_memory_fit_to_the_bit() {
    // Two to six labels take the unrolled paths, seven the general one.
    for (classes, seed) in [(2, 1), (3, 2), (4, 3), (5, 4), (7, 5)] {
        let answers = synthetic(classes, 600, seed);
        for one_coin in [false, true] {
            check(&answers, 100, one_coin);
        }
    }
}

#[test]
fn passes_stopped_by_the_cap_keep_the_last_iteration() {
    let answers = synthetic(3, 400, 9);
    for iterations in [0, 1, 2, 3] {
        check(&answers, iterations, false);
    }
}

#[test]
fn tasks_without_answers_get_the_priors_as_in_memory() {
    // Task 1 has no answers.
    let answers = crate::answers_sized(
        &[(0, 0, 0), (0, 1, 0), (2, 0, 1), (2, 1, 1), (3, 1, 0)],
        4,
        2,
        2,
    );
    check(&answers, 100, false);
}
