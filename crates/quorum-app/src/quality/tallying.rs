//! Keeping tallies up to date: folding queued responses (the runner beside the job runner,
//! and reads that find little waiting), and reading a project's tally; always on the primary
//! (a read replica's copy may lag behind the queue it reads there).

use std::time::Duration;

use quorum_store::{Store, StoreError};

use super::tally::Tally;
use crate::{App, AppError};

/// Items per fold.
const FOLD_ITEMS: i64 = 2_000;
/// A read folds what waits first when no more than this many responses wait, so a small
/// project's pages are exact at once; beyond it the read takes the tally as saved and says how
/// many responses it does not count yet.
pub const FOLD_ON_READ: i64 = 20_000;

impl<S: Store> App<S> {
    /// Folds one batch of a project's queued responses into its tally; how many it folded (0
    /// when none waited, or when another fold saved first).
    pub async fn fold_tally(&self, project_id: i64) -> Result<usize, AppError> {
        let project = self
            .primary()
            .project(project_id)
            .await?
            .ok_or(StoreError::NotFound("project"))?;
        let batch = self.primary().tally_batch(project_id, FOLD_ITEMS).await?;
        if batch.items.is_empty() && batch.gone.is_empty() {
            return Ok(0);
        }
        let mut tally = Tally::parse(batch.data.as_deref())?;
        for item in &batch.items {
            for response in &item.responses {
                if !tally.grouped(response.user_id) {
                    let locale = self
                        .primary()
                        .member(project_id, response.user_id)
                        .await?
                        .and_then(|m| m.locales.first().cloned())
                        .unwrap_or_else(|| "(none)".into());
                    tally.set_group(response.user_id, &locale);
                }
            }
        }
        let folded = batch.queued();
        let (version, schema) = (batch.version, project.schema);
        let data = tokio::task::spawn_blocking(move || {
            for item in &batch.items {
                tally.fold(&schema, item);
            }
            tally.to_data()
        })
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?;
        let saved = self
            .primary()
            .save_tally(project_id, version, data, folded.clone(), self.now())
            .await?;
        Ok(if saved { folded.len() } else { 0 })
    }

    /// Folds every project's queued responses; how many it folded. A project that fails is
    /// logged and left for the next round, so it does not hold the others back.
    pub async fn fold_tallies(&self) -> Result<usize, AppError> {
        let mut folded = 0;
        for project_id in self.primary().tally_pending().await? {
            loop {
                match self.fold_tally(project_id).await {
                    Ok(0) => break,
                    Ok(n) => folded += n,
                    Err(error) => {
                        tracing::warn!(project = project_id, %error, "could not fold answers into the project's tally");
                        break;
                    }
                }
            }
        }
        Ok(folded)
    }

    /// A project's tally, folded up to date first when at most [`FOLD_ON_READ`] responses
    /// wait; with how many responses it does not count yet (counted up to `FOLD_ON_READ + 1`:
    /// more means "more than [`FOLD_ON_READ`]", and counting further would cost the read).
    pub(crate) async fn current_tally(&self, project_id: i64) -> Result<(Tally, i64), AppError> {
        let backlog = || self.primary().tally_backlog(project_id, FOLD_ON_READ + 1);
        let mut waiting = backlog().await?;
        for _ in 0..(FOLD_ON_READ / FOLD_ITEMS + 2) {
            if waiting == 0 || waiting > FOLD_ON_READ {
                break;
            }
            self.fold_tally(project_id).await?;
            waiting = backlog().await?;
        }
        let saved = self.primary().tally(project_id).await?;
        Ok((Tally::parse(saved.map(|s| s.1).as_deref())?, waiting))
    }

    /// Folds queued responses every `poll` until `stopped` says so (every server runs one;
    /// the tally's version keeps two from folding the same responses twice).
    pub(crate) async fn run_tallier(
        self,
        poll: Duration,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(error) = self.fold_tallies().await {
                tracing::warn!(%error, "could not fold answers into a tally");
            }
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}
