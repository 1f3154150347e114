//! The after-answer step: what follows once the rater loop has stored an answer or a skip.
//!
//! Every effect of an answer beyond storing it plugs in here, in a fixed order, so the rater
//! loop itself stays one read, one validation and one write: quality control (qualification
//! and the pause rules, `control.rs`), then dynamic overlap (settling a confident item,
//! `overlap.rs`). Effects that must never be lost with the answer (the coming webhook events)
//! belong in the store's submit transaction instead, and are only dispatched from here.

use quorum_store::{Project, Store};

use crate::{App, AppError};

/// What the rater loop just did.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WorkDone<'a> {
    /// A new answer was stored (a replayed one is not new and runs no step).
    Answered {
        project: &'a Project,
        user_id: i64,
        item_id: i64,
        /// The item is gold and the answer was scored against it.
        scored_gold: bool,
    },
    Skipped {
        project: &'a Project,
        user_id: i64,
    },
}

impl<S: Store> App<S> {
    /// Runs the steps that follow an answer or a skip.
    pub(crate) async fn after_answer(&self, done: WorkDone<'_>) -> Result<(), AppError> {
        match done {
            WorkDone::Answered {
                project,
                user_id,
                item_id,
                scored_gold,
            } => {
                if project.quality.scores_answers() {
                    self.enforce(project, user_id, scored_gold).await?;
                }
                if let Some((min_overlap, target)) =
                    project.min_overlap.zip(project.target_confidence)
                {
                    self.settle_if_confident(
                        project.id,
                        &project.schema,
                        item_id,
                        min_overlap,
                        target,
                    )
                    .await?;
                }
            }
            WorkDone::Skipped { project, user_id } => {
                if project.quality.pause.max_skip_rate.is_some() {
                    self.enforce(project, user_id, false).await?;
                }
            }
        }
        Ok(())
    }
}
