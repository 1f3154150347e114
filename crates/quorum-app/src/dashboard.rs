//! What the manager dashboard and the rater home show.

use std::collections::{BTreeMap, HashMap};

use quorum_core::Role;
use quorum_store::{ProjectStats, RaterActivity, Store};
use serde::Serialize;

use crate::{App, AppError, Caller};

const HOUR_MS: i64 = 3_600_000;

/// A project's progress and its raters' work.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub stats: ProjectStats,
    pub raters: Vec<RaterRow>,
    /// Responses per hour (start of the hour in Unix ms, count), oldest first.
    pub per_hour: Vec<(i64, u64)>,
    /// Every response's time on item, in milliseconds.
    pub times_ms: Vec<i64>,
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

fn median(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[values.len() / 2])
}

impl<S: Store> App<S> {
    /// The dashboard of a project (reviewers and managers): progress, activity, reliability and
    /// agreement, all from one read of the project's responses.
    pub async fn dashboard(&self, caller: &Caller, project_id: i64) -> Result<Dashboard, AppError> {
        let project = self.require(caller, project_id, Role::Reviewer).await?;
        let stats = self
            .store()
            .stats(project_id, project.overlap, self.now())
            .await?;
        let activity = self.store().rater_activity(project_id, 0).await?;
        let rows = self.all_responses(project_id).await?;
        let mut times_by_rater: HashMap<String, Vec<i64>> = HashMap::new();
        let mut per_hour: BTreeMap<i64, u64> = BTreeMap::new();
        let mut times_ms = Vec::with_capacity(rows.len());
        for row in &rows {
            *per_hour
                .entry(row.created_at / HOUR_MS * HOUR_MS)
                .or_default() += 1;
            times_ms.push(row.time_spent_ms);
            times_by_rater
                .entry(row.user_name.clone())
                .or_default()
                .push(row.time_spent_ms);
        }
        let schema = &project.schema;
        let reliability = self.reliability_report(&project, &rows).await?;
        let agreement = crate::quality::agreement_of(
            schema,
            &rows,
            &self.rater_locales(project_id, &rows).await?,
        )?;
        let raters = activity
            .into_iter()
            .map(|a| RaterRow {
                median_time_ms: times_by_rater.get_mut(&a.name).and_then(|t| median(t)),
                activity: a,
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
            per_hour: per_hour.into_iter().collect(),
            times_ms,
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
            let mine = self
                .store()
                .rater_activity(project.id, since)
                .await?
                .into_iter()
                .find(|a| a.user_id == caller.user.id);
            home.push(HomeProject {
                id: project.id,
                name: project.name,
                role,
                open_items: stats.items - stats.items_complete,
                mine_total: mine.as_ref().map_or(0, |m| m.responses),
                mine_since: mine.map_or(0, |m| m.responses_since),
            });
        }
        Ok(home)
    }
}
