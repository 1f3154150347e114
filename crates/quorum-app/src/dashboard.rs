//! What the manager dashboard and the rater home show.

use std::collections::HashMap;

use quorum_core::Role;
use quorum_store::{ProjectStats, RaterActivity, Store};
use serde::Serialize;

use crate::quality::RaterTally;
use crate::{App, AppError, Caller};

/// Rater reliability (gold, reviews, agreement with the Dawid–Skene consensus) reads every
/// response: the dashboard shows it for projects of up to this many responses.
pub const LIVE_RELIABILITY: i64 = 1_000_000;

pub use crate::quality::FOLD_ON_READ;

/// A project's progress and its raters' work.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub stats: ProjectStats,
    pub raters: Vec<RaterRow>,
    /// Responses per hour (start of the hour in Unix ms, count), oldest first.
    pub per_hour: Vec<(i64, i64)>,
    /// Responses by time on item: (a bucket's middle in ms, count), shortest first.
    pub time_histogram: Vec<(i64, i64)>,
    /// Responses stored but not yet in the tally these figures come from (above
    /// [`FOLD_ON_READ`]: more than that many).
    pub uncounted: i64,
    /// Empty above [`LIVE_RELIABILITY`] responses.
    pub reliability: Vec<crate::quality::RaterReliability>,
    pub agreement: Vec<crate::quality::QuestionAgreement>,
    /// Model runs on the project's prompts (judges' outputs aside).
    pub models: Vec<crate::evaluation::runs::ModelProgress>,
    pub judges: Vec<crate::evaluation::judges::JudgeReport>,
    /// The audit log of rater standing, oldest first.
    pub events: Vec<quorum_store::RaterEvent>,
    /// The project's webhook subscriptions (managers only; empty for reviewers).
    pub webhooks: Vec<crate::webhooks::WebhookView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RaterRow {
    pub activity: RaterActivity,
    pub median_time_ms: Option<i64>,
}

/// A project on a person's home page.
#[derive(Debug, Clone, Serialize)]
pub struct HomeProject {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub open_items: i64,
    pub mine_total: i64,
    pub mine_since: i64,
}

impl<S: Store> App<S> {
    /// The dashboard of a project (reviewers and managers): progress, activity and agreement
    /// from the project's tally (see `quality::Tally`), reliability from every response while
    /// the project holds at most [`LIVE_RELIABILITY`] of them.
    pub async fn dashboard(&self, caller: &Caller, project_id: i64) -> Result<Dashboard, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let stats = self
            .store()
            .stats(project_id, project.overlap, self.now())
            .await?;
        let (tally, uncounted) = self.current_tally(project_id).await?;
        let roster = self
            .store()
            .roster(project_id, tally.raters.keys().copied().collect())
            .await?;
        let names: HashMap<i64, String> =
            roster.iter().map(|a| (a.user_id, a.name.clone())).collect();
        let reliability = if stats.responses <= LIVE_RELIABILITY {
            self.reliability_report(&project).await?
        } else {
            Vec::new()
        };
        let agreement = tally.agreement(&project.schema, &names);
        let raters = roster
            .into_iter()
            .map(|mut activity| {
                let kept = tally.raters.get(&activity.user_id);
                if let Some(kept) = kept {
                    activity.responses = kept.responses;
                    activity.last_active = Some(kept.last_active);
                }
                RaterRow {
                    median_time_ms: kept.and_then(RaterTally::median_time_ms),
                    activity,
                }
            })
            .collect();
        // Judges' outputs are kept as `judge:` generations: they are not models of the project.
        let models = self
            .run_progress(caller, project_id)
            .await?
            .into_iter()
            .filter(|m| !m.model.starts_with("judge:"))
            .collect();
        let judges = self.judge_reports(caller, project_id).await?;
        let events = self.store().rater_events(project_id).await?;
        let webhooks = if self
            .require(caller, project_id, Role::Manager)
            .await
            .is_ok()
        {
            self.webhooks(caller, Some(project_id)).await?
        } else {
            Vec::new()
        };
        Ok(Dashboard {
            stats,
            raters,
            per_hour: tally.hours.iter().map(|(&h, &n)| (h, n)).collect(),
            time_histogram: tally.time_histogram(),
            uncounted,
            reliability,
            agreement,
            models,
            judges,
            events,
            webhooks,
        })
    }

    /// The caller's projects with what is left and what they did since `since`.
    pub async fn home(&self, caller: &Caller, since: i64) -> Result<Vec<HomeProject>, AppError> {
        let mut home = Vec::new();
        for project in self.list_projects(caller, 0, 200).await? {
            let (project, role) = self.role_in(caller, project.id).await?;
            let stats = self
                .store()
                .stats(project.id, project.overlap, self.now())
                .await?;
            // The caller's own counts only: one rater's entries of the (user, project) index.
            let mine = |since| self.store().rater_record(project.id, caller.user.id, since);
            let (total, recent) = (mine(0).await?, mine(since).await?);
            home.push(HomeProject {
                id: project.id,
                name: project.name,
                role,
                open_items: stats.items - stats.items_complete,
                mine_total: total.responses,
                mine_since: recent.responses,
            });
        }
        Ok(home)
    }
}
