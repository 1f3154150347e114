//! Quality control in the loop: which pool a rater's next item comes from (gold mixed in at the
//! project's rate, gold only while qualifying), scoring answers as they arrive, and the
//! auto-pause rules, with a manager's overrides. Every change to a rater's standing is logged.
//!
//! A project without gold routing or pause rules reads nothing extra on the rater loop.

use quorum_core::Role;
use quorum_stats::rng::SplitMix64;
use quorum_stats::special::beta_quantile;
use quorum_store::{
    PauseRules, Pool, Project, QualityPolicy, RaterChange, RaterEvent, RaterRecord, Store,
};
use serde::Deserialize;
use serde_json::json;

use crate::{App, AppError, Caller};

/// Auto-pause looks at this many of a rater's latest answers for their median time.
pub const RECENT_ANSWERS: usize = 25;
/// The fewest answers (or, for skips, items) a time or skip rule judges.
pub const MIN_EVIDENCE: i64 = 10;

/// Checks a policy; the error names the offending field.
pub fn validate_quality(policy: &QualityPolicy) -> Result<(), AppError> {
    let share = |value: f64| (0.0..=1.0).contains(&value);
    let bad = |field: &str, message: &str| AppError::Invalid {
        message: format!("{field} {message}"),
        details: json!({"field": field}),
    };
    if !share(policy.gold_rate) || policy.gold_rate >= 1.0 {
        return Err(bad("gold_rate", "must be at least 0 and below 1"));
    }
    if let Some(q) = &policy.qualification {
        if !(1..=1000).contains(&q.gold_items) {
            return Err(bad("qualification.gold_items", "must be 1 to 1000"));
        }
        if !share(q.min_accuracy) {
            return Err(bad("qualification.min_accuracy", "must be 0 to 1"));
        }
        if q.skill
            .as_ref()
            .is_some_and(|s| s.trim().is_empty() || s.len() > 100)
        {
            return Err(bad("qualification.skill", "must be 1 to 100 characters"));
        }
    }
    let pause = &policy.pause;
    if pause.min_accuracy_upper.is_some_and(|v| !share(v)) {
        return Err(bad("pause.min_accuracy_upper", "must be 0 to 1"));
    }
    if pause
        .min_median_ms
        .is_some_and(|v| !(1..=3_600_000).contains(&v))
    {
        return Err(bad("pause.min_median_ms", "must be 1 to 3600000"));
    }
    if pause.max_skip_rate.is_some_and(|v| !share(v)) {
        return Err(bad("pause.max_skip_rate", "must be 0 to 1"));
    }
    let review = &policy.review;
    if review.below_confidence.is_some_and(|v| !share(v)) {
        return Err(bad("review.below_confidence", "must be 0 to 1"));
    }
    if !share(review.sample_rate) {
        return Err(bad("review.sample_rate", "must be 0 to 1"));
    }
    Ok(())
}

/// The 95% credible interval's upper end of a rater's accuracy, from their gold answers and
/// reviewed responses under a uniform prior, with the number of checked answers.
pub fn accuracy_upper(record: &RaterRecord) -> (f64, i64) {
    let right = record.gold_correct + record.accepted;
    let wrong = record.gold_answered - record.gold_correct + record.rejected;
    (
        beta_quantile(0.975, 1.0 + right as f64, 1.0 + wrong as f64),
        right + wrong,
    )
}

/// Why the rules pause a rater with this record, if they do.
pub fn pause_reason(rules: &PauseRules, record: &RaterRecord) -> Option<String> {
    if let Some(min) = rules.min_accuracy_upper {
        let (upper, checked) = accuracy_upper(record);
        if upper < min {
            return Some(format!(
                "accuracy on {checked} checked answers is at most {upper:.2} (95% credible bound), below the project's {min:.2}"
            ));
        }
    }
    if let Some(min) = rules.min_median_ms
        && record.recent_times_ms.len() as i64 >= MIN_EVIDENCE
    {
        let mut times = record.recent_times_ms.clone();
        times.sort_unstable();
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2
        };
        if median < min {
            return Some(format!(
                "median time on the last {n} answers is {median} ms, under the project's minimum of {min} ms"
            ));
        }
    }
    if let Some(max) = rules.max_skip_rate {
        let seen = record.responses + record.skips;
        if seen >= MIN_EVIDENCE && record.skips as f64 > max * seen as f64 {
            return Some(format!(
                "skipped {} of {seen} items, over the project's limit of {:.0}%",
                record.skips,
                max * 100.0
            ));
        }
    }
    None
}

/// A manager's change to a rater's standing.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, tag = "action", rename_all = "snake_case")]
pub enum StandingChange {
    Reinstate {
        #[serde(default)]
        reason: String,
    },
    /// Decide the project's qualification for the rater, whatever their gold answers.
    Qualify {
        passed: bool,
        #[serde(default)]
        reason: String,
    },
}

impl<S: Store> App<S> {
    /// Replaces a project's quality rules (managers).
    pub async fn set_quality(
        &self,
        caller: &Caller,
        project_id: i64,
        policy: QualityPolicy,
    ) -> Result<Project, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        validate_quality(&policy)?;
        // A pass under a skill name counts in every project naming it, so naming one shares
        // this project's decisions with others: an administrator's call, never a manager's.
        let skill = |p: &QualityPolicy| p.qualification.as_ref().and_then(|q| q.skill.clone());
        if !caller.user.is_admin && skill(&policy) != skill(&project.quality) {
            return Err(AppError::Forbidden(
                "only administrators set or change qualification.skill: a skill's passes count in every project that names it".into(),
            ));
        }
        self.store().set_quality(project_id, policy).await?;
        self.caches().projects.forget(&project_id);
        self.cached_project(project_id)
            .await?
            .ok_or(AppError::NotFound("project"))
    }

    /// Where the rater's next new item comes from; refuses a paused or unqualified rater with
    /// the reason.
    pub(crate) async fn pool_for(&self, project: &Project, user_id: i64) -> Result<Pool, AppError> {
        let policy = &project.quality;
        // Without gold routing or pause rules nobody is held back: nothing to read.
        if !policy.gold_pool() && !policy.pause.any() {
            return Ok(Pool::Any);
        }
        if let Some(reason) = self
            .store()
            .rater_state(project.id, user_id)
            .await?
            .and_then(|s| s.paused)
        {
            return Err(AppError::Forbidden(format!(
                "You are paused in this project: {reason}. A manager can reinstate you."
            )));
        }
        if let Some(qualification) = &policy.qualification {
            let key = qualification.skill_key(project.id);
            match self.store().qualification(user_id, &key).await? {
                Some(true) => {}
                Some(false) => {
                    return Err(AppError::Forbidden(
                        "You did not pass this project's qualification. A manager can qualify you."
                            .into(),
                    ));
                }
                None => return Ok(Pool::Gold),
            }
        }
        if policy.gold_rate > 0.0 {
            let seed = self
                .caches()
                .draw_seed
                .load(std::sync::atomic::Ordering::Relaxed)
                ^ (user_id as u64).rotate_left(32);
            let draw = SplitMix64::stream(
                seed,
                self.caches()
                    .draws
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            )
            .next_f64();
            if draw < policy.gold_rate {
                return Ok(Pool::Gold);
            }
        }
        Ok(if policy.gold_pool() {
            Pool::Regular
        } else {
            Pool::Any
        })
    }

    /// Applies the project's qualification and pause rules to a rater after an answer or a
    /// skip (`answered_gold`: the answer was to a gold item).
    pub(crate) async fn enforce(
        &self,
        project: &Project,
        user_id: i64,
        answered_gold: bool,
    ) -> Result<(), AppError> {
        let policy = &project.quality;
        let now = self.now();
        if let (Some(qualification), true) = (&policy.qualification, answered_gold) {
            let skill = qualification.skill_key(project.id);
            if self.store().qualification(user_id, &skill).await?.is_none() {
                let record = self.store().rater_record(project.id, user_id, 0).await?;
                if record.gold_answered >= i64::from(qualification.gold_items) {
                    let accuracy = record.gold_correct as f64 / record.gold_answered as f64;
                    let reason = format!(
                        "{} of {} gold items right ({:.0}%; {:.0}% needed)",
                        record.gold_correct,
                        record.gold_answered,
                        accuracy * 100.0,
                        qualification.min_accuracy * 100.0
                    );
                    let reason = shared_reason(project, reason);
                    let change = if accuracy >= qualification.min_accuracy {
                        RaterChange::Qualified { skill, reason }
                    } else {
                        RaterChange::NotQualified { skill, reason }
                    };
                    self.store()
                        .change_rater(project.id, user_id, change, None, now)
                        .await?;
                }
            }
        }
        if policy.pause.any() {
            let state = self.store().rater_state(project.id, user_id).await?;
            if state.as_ref().is_some_and(|s| s.paused.is_some()) {
                return Ok(());
            }
            let since = state.map_or(0, |s| s.reinstated_at);
            let record = self
                .store()
                .rater_record(project.id, user_id, since)
                .await?;
            if let Some(reason) = pause_reason(&policy.pause, &record) {
                self.store()
                    .change_rater(
                        project.id,
                        user_id,
                        RaterChange::Paused { reason },
                        None,
                        now,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// A manager reinstates a paused rater or decides their qualification. Returns whether
    /// anything changed (reinstating a rater who is not paused does not).
    pub async fn change_standing(
        &self,
        caller: &Caller,
        project_id: i64,
        user_id: i64,
        change: StandingChange,
    ) -> Result<bool, AppError> {
        let project = self.require(caller, project_id, Role::Manager).await?;
        if self.store().member(project_id, user_id).await?.is_none() {
            return Err(AppError::NotFound("member"));
        }
        let change = match change {
            StandingChange::Reinstate { reason } => RaterChange::Reinstated { reason },
            StandingChange::Qualify { passed, reason } => {
                let qualification = project
                    .quality
                    .qualification
                    .as_ref()
                    .ok_or_else(|| AppError::invalid("the project has no qualification"))?;
                if let Some(shared) = &qualification.skill {
                    self.require_every_project_naming(caller, shared).await?;
                }
                let skill = qualification.skill_key(project_id);
                let reason = shared_reason(&project, reason);
                if passed {
                    RaterChange::Qualified { skill, reason }
                } else {
                    RaterChange::NotQualified { skill, reason }
                }
            }
        };
        Ok(self
            .store()
            .change_rater(
                project_id,
                user_id,
                change,
                Some(caller.user.id),
                self.now(),
            )
            .await?)
    }

    /// A decision under a shared skill changes a rater's standing in every project naming it,
    /// so only someone who manages all of them (an administrator, say) may make it by hand.
    async fn require_every_project_naming(
        &self,
        caller: &Caller,
        skill: &str,
    ) -> Result<(), AppError> {
        if caller.user.is_admin {
            return Ok(());
        }
        for project in self.all_projects(None).await? {
            let names = project
                .quality
                .qualification
                .as_ref()
                .is_some_and(|q| q.skill.as_deref() == Some(skill));
            if !names {
                continue;
            }
            let member = self.cached_member(project.id, caller.user.id).await?;
            if !member.is_some_and(|m| m.role.can_manage()) {
                return Err(AppError::Forbidden(format!(
                    "the qualification `{skill}` is shared with projects you do not manage; an administrator decides it"
                )));
            }
        }
        Ok(())
    }

    /// The project's audit log of pauses, reinstatements and qualifications.
    pub async fn rater_events(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Vec<RaterEvent>, AppError> {
        self.require(caller, project_id, Role::Reviewer).await?;
        Ok(self.store().rater_events(project_id).await?)
    }
}

/// A decision under a shared skill is logged in every project naming it: the reason says
/// which project it was made in.
fn shared_reason(project: &Project, reason: String) -> String {
    match project
        .quality
        .qualification
        .as_ref()
        .and_then(|q| q.skill.as_ref())
    {
        Some(_) => format!("{reason} (in project {} \"{}\")", project.id, project.name),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(gold: (i64, i64), times: Vec<i64>, skips: i64) -> RaterRecord {
        RaterRecord {
            responses: times.len() as i64,
            skips,
            gold_answered: gold.0,
            gold_correct: gold.1,
            recent_times_ms: times,
            ..RaterRecord::default()
        }
    }

    #[test]
    fn pause_rules_need_evidence_and_name_the_cause() {
        let rules = PauseRules {
            min_accuracy_upper: Some(0.7),
            min_median_ms: Some(1000),
            max_skip_rate: Some(0.3),
        };
        // Nothing known yet: nothing to pause for.
        assert_eq!(pause_reason(&rules, &record((0, 0), vec![], 0)), None);
        // Half right on 40 gold items: the bound is below 0.7.
        let reason = pause_reason(&rules, &record((40, 20), vec![], 0)).unwrap_or_default();
        assert!(reason.contains("40 checked answers"), "{reason}");
        // Half right on 6: too little to tell.
        assert_eq!(
            pause_reason(&rules, &record((6, 3), vec![2000; 6], 0)),
            None
        );
        // Fast answers count from ten on.
        assert_eq!(pause_reason(&rules, &record((0, 0), vec![100; 9], 0)), None);
        let reason = pause_reason(&rules, &record((0, 0), vec![100; 10], 0)).unwrap_or_default();
        assert!(reason.contains("median time"), "{reason}");
        let reason = pause_reason(&rules, &record((0, 0), vec![2000; 10], 5)).unwrap_or_default();
        assert!(reason.contains("skipped 5 of 15"), "{reason}");
        // Rejections count against the rater like wrong gold answers.
        let mut reviewed = record((0, 0), vec![], 0);
        reviewed.rejected = 30;
        reviewed.accepted = 5;
        assert!(pause_reason(&rules, &reviewed).is_some());
    }

    #[test]
    fn policies_are_checked_field_by_field() {
        let mut policy = QualityPolicy {
            gold_rate: 1.5,
            ..QualityPolicy::default()
        };
        let error = validate_quality(&policy).err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("gold_rate must be at least 0 and below 1")
        );
        policy.gold_rate = 0.1;
        policy.pause.max_skip_rate = Some(-0.1);
        assert!(validate_quality(&policy).is_err());
        policy.pause.max_skip_rate = Some(0.5);
        assert!(validate_quality(&policy).is_ok());
    }
}
