//! Categorical answers in a dense, task-major layout shared by every classification method.

use thiserror::Error;

/// What to do when one worker answered the same task more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicatePolicy {
    /// Keep the worker's first answer to the task (in input order) and drop the rest.
    #[default]
    KeepFirst,
    /// Keep the worker's last answer to the task (in input order).
    KeepLast,
    /// Keep every answer: each counts as a separate vote (crowd-kit's behaviour).
    KeepAll,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AnswersError {
    #[error("answer {position} refers to task {index}, but there are only {count} tasks")]
    TaskOutOfRange {
        position: usize,
        index: u32,
        count: usize,
    },
    #[error("answer {position} refers to worker {index}, but there are only {count} workers")]
    WorkerOutOfRange {
        position: usize,
        index: u32,
        count: usize,
    },
    #[error("answer {position} refers to label {index}, but there are only {count} labels")]
    LabelOutOfRange {
        position: usize,
        index: u32,
        count: usize,
    },
    #[error("there are {0} labels; at least one is needed")]
    NoLabels(usize),
}

/// One categorical answer: `worker` gave `label` to `task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub task: u32,
    pub worker: u32,
    pub label: u32,
}

/// Answers grouped by task (compressed rows), with duplicates resolved by a [`DuplicatePolicy`].
///
/// Within a task, answers keep their input order. Tasks with no answers are allowed; methods
/// give them the prior (or uniform) distribution.
#[derive(Debug, Clone)]
pub struct Answers {
    n_tasks: usize,
    n_workers: usize,
    n_labels: usize,
    /// `task_start[t]..task_start[t + 1]` indexes the answers of task `t`.
    task_start: Vec<usize>,
    worker: Vec<u32>,
    label: Vec<u32>,
    /// Task of each answer (redundant with `task_start`, kept for flat loops).
    task: Vec<u32>,
}

impl Answers {
    pub fn new(
        n_tasks: usize,
        n_workers: usize,
        n_labels: usize,
        answers: &[Answer],
        policy: DuplicatePolicy,
    ) -> Result<Self, AnswersError> {
        if n_labels == 0 {
            return Err(AnswersError::NoLabels(n_labels));
        }
        for (position, a) in answers.iter().enumerate() {
            if a.task as usize >= n_tasks {
                return Err(AnswersError::TaskOutOfRange {
                    position,
                    index: a.task,
                    count: n_tasks,
                });
            }
            if a.worker as usize >= n_workers {
                return Err(AnswersError::WorkerOutOfRange {
                    position,
                    index: a.worker,
                    count: n_workers,
                });
            }
            if a.label as usize >= n_labels {
                return Err(AnswersError::LabelOutOfRange {
                    position,
                    index: a.label,
                    count: n_labels,
                });
            }
        }
        // Counting sort by task keeps input order inside each task.
        let mut task_start = vec![0usize; n_tasks + 1];
        for a in answers {
            task_start[a.task as usize + 1] += 1;
        }
        for t in 0..n_tasks {
            task_start[t + 1] += task_start[t];
        }
        let mut cursor = task_start.clone();
        let mut order = vec![0u32; answers.len()];
        for (i, a) in answers.iter().enumerate() {
            let slot = &mut cursor[a.task as usize];
            order[*slot] = i as u32;
            *slot += 1;
        }
        let mut kept_start = Vec::with_capacity(n_tasks + 1);
        let mut worker = Vec::with_capacity(answers.len());
        let mut label = Vec::with_capacity(answers.len());
        let mut task = Vec::with_capacity(answers.len());
        let mut scratch: Vec<(u32, u32)> = Vec::new();
        let mut kept: Vec<u32> = Vec::new();
        kept_start.push(0);
        for t in 0..n_tasks {
            let range = task_start[t]..task_start[t + 1];
            match policy {
                DuplicatePolicy::KeepAll => {
                    for &i in &order[range] {
                        worker.push(answers[i as usize].worker);
                        label.push(answers[i as usize].label);
                    }
                }
                DuplicatePolicy::KeepFirst | DuplicatePolicy::KeepLast => {
                    let positions = &order[range];
                    let keep_first = policy == DuplicatePolicy::KeepFirst;
                    let same_worker =
                        |a: u32, b: u32| answers[a as usize].worker == answers[b as usize].worker;
                    if positions.len() <= 32 {
                        // Small tasks (the usual case): a quadratic scan, no allocation.
                        for (j, &i) in positions.iter().enumerate() {
                            let duplicate = if keep_first {
                                positions[..j].iter().any(|&p| same_worker(p, i))
                            } else {
                                positions[j + 1..].iter().any(|&p| same_worker(p, i))
                            };
                            if !duplicate {
                                worker.push(answers[i as usize].worker);
                                label.push(answers[i as usize].label);
                            }
                        }
                    } else {
                        // Sort this task's answers by (worker, input position), keep one per
                        // worker, then restore input order among the kept ones.
                        scratch.clear();
                        scratch.extend(positions.iter().map(|&i| (answers[i as usize].worker, i)));
                        scratch.sort_unstable();
                        kept.clear();
                        for group in scratch.chunk_by(|a, b| a.0 == b.0) {
                            let chosen = if keep_first {
                                group[0]
                            } else {
                                group[group.len() - 1]
                            };
                            kept.push(chosen.1);
                        }
                        kept.sort_unstable();
                        for &i in &kept {
                            worker.push(answers[i as usize].worker);
                            label.push(answers[i as usize].label);
                        }
                    }
                }
            }
            task.resize(worker.len(), t as u32);
            kept_start.push(worker.len());
        }
        Ok(Self {
            n_tasks,
            n_workers,
            n_labels,
            task_start: kept_start,
            worker,
            label,
            task,
        })
    }

    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }
    pub fn n_workers(&self) -> usize {
        self.n_workers
    }
    pub fn n_labels(&self) -> usize {
        self.n_labels
    }
    /// Number of answers kept after the duplicate policy.
    pub fn len(&self) -> usize {
        self.worker.len()
    }
    pub fn is_empty(&self) -> bool {
        self.worker.is_empty()
    }
    /// The answer range of task `t` into [`Self::workers`] and [`Self::labels`].
    pub fn task_range(&self, t: usize) -> std::ops::Range<usize> {
        self.task_start[t]..self.task_start[t + 1]
    }
    pub fn workers(&self) -> &[u32] {
        &self.worker
    }
    pub fn labels(&self) -> &[u32] {
        &self.label
    }
    pub fn tasks(&self) -> &[u32] {
        &self.task
    }
    /// Iterates `(task, worker, label)` in task-major order.
    pub fn iter(&self) -> impl Iterator<Item = Answer> + '_ {
        (0..self.len()).map(|i| Answer {
            task: self.task[i],
            worker: self.worker[i],
            label: self.label[i],
        })
    }

    /// Answer positions grouped by worker: `(start, positions)` where worker `w`'s answers are
    /// `positions[start[w]..start[w + 1]]`.
    pub fn by_worker(&self) -> (Vec<usize>, Vec<u32>) {
        let mut start = vec![0usize; self.n_workers + 1];
        for &w in &self.worker {
            start[w as usize + 1] += 1;
        }
        for w in 0..self.n_workers {
            start[w + 1] += start[w];
        }
        let mut cursor = start.clone();
        let mut positions = vec![0u32; self.len()];
        for (i, &w) in self.worker.iter().enumerate() {
            positions[cursor[w as usize]] = i as u32;
            cursor[w as usize] += 1;
        }
        (start, positions)
    }

    /// Number of answers each worker gave.
    pub fn worker_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.n_workers];
        for &w in &self.worker {
            counts[w as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(task: u32, worker: u32, label: u32) -> Answer {
        Answer {
            task,
            worker,
            label,
        }
    }

    #[test]
    fn groups_by_task_and_applies_duplicate_policies() {
        let input = [a(1, 0, 0), a(0, 1, 1), a(1, 0, 1), a(1, 1, 1), a(0, 0, 0)];
        let first = Answers::new(2, 2, 2, &input, DuplicatePolicy::KeepFirst).unwrap();
        assert_eq!(first.len(), 4);
        assert_eq!(first.task_range(1), 2..4);
        assert_eq!(&first.labels()[2..4], &[0, 1]); // worker 0's first answer (0) is kept
        let last = Answers::new(2, 2, 2, &input, DuplicatePolicy::KeepLast).unwrap();
        assert_eq!(&last.workers()[2..4], &[0, 1]);
        assert_eq!(&last.labels()[2..4], &[1, 1]);
        let all = Answers::new(2, 2, 2, &input, DuplicatePolicy::KeepAll).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all.tasks(), &[0, 0, 1, 1, 1]);
    }

    #[test]
    fn large_tasks_resolve_duplicates_like_small_ones() {
        // 40 answers on one task from 20 workers, each answering twice with labels 0 then 1.
        let input: Vec<Answer> = (0..40).map(|i| a(0, i % 20, i / 20)).collect();
        let first = Answers::new(1, 20, 2, &input, DuplicatePolicy::KeepFirst).unwrap();
        assert_eq!(first.len(), 20);
        assert!(first.labels().iter().all(|&l| l == 0));
        assert_eq!(first.workers(), (0..20).collect::<Vec<u32>>());
        let last = Answers::new(1, 20, 2, &input, DuplicatePolicy::KeepLast).unwrap();
        assert!(last.labels().iter().all(|&l| l == 1));
    }

    #[test]
    fn rejects_out_of_range_indices() {
        let err = Answers::new(1, 1, 2, &[a(0, 0, 2)], DuplicatePolicy::KeepAll).unwrap_err();
        assert_eq!(
            err,
            AnswersError::LabelOutOfRange {
                position: 0,
                index: 2,
                count: 2
            }
        );
        assert!(Answers::new(1, 1, 0, &[], DuplicatePolicy::KeepAll).is_err());
    }
}
