//! Quorum's judgment engine: what the true answer is, and whom to trust.
//!
//! Every function here is pure: it takes dense integer indices (tasks `0..n_tasks`, workers
//! `0..n_workers`, labels `0..n_labels`) and returns numbers. Names, files, databases and
//! clocks live in the callers. Randomised methods take an explicit seed and use the crate's
//! own generator ([`rng::SplitMix64`]), so a result is reproducible across platforms and
//! dependency upgrades.
//!
//! * [`classification`] — truth inference for single-label answers (majority vote, Wawa,
//!   zero-based skill, Dawid–Skene, one-coin Dawid–Skene, GLAD, MACE, KOS, M-MSR).
//! * [`pairwise`] — Bradley–Terry and noisy Bradley–Terry from pairwise comparisons.
//! * [`ratings`] — mean, median and trimmed mean of numeric answers, with dispersion.
//! * [`arena`] — arena leaderboards: Bradley–Terry on the Elo scale with bootstrap intervals,
//!   style control, online Elo, and the divergence between two boards.
//! * [`agreement`] — Krippendorff's alpha, Fleiss' kappa, Cohen's kappa, percent agreement.

pub mod agreement;
pub mod answers;
pub mod arena;
pub mod classification;
pub mod pairwise;
pub mod ratings;
pub mod rng;
pub mod special;
pub mod synthetic;

pub use answers::{Answers, AnswersError, DuplicatePolicy};
