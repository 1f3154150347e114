//! Projects, their quality rules, members, imports and counts.

use quorum_core::Role;
use quorum_core::schema::Schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// How items with a locale are routed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocalePolicy {
    /// Any rater may take any item.
    #[default]
    Any,
    /// An item with a locale goes only to raters with that locale (or its language alone).
    Match,
}

impl From<quorum_store::LocalePolicy> for LocalePolicy {
    fn from(policy: quorum_store::LocalePolicy) -> Self {
        match policy {
            quorum_store::LocalePolicy::Any => LocalePolicy::Any,
            quorum_store::LocalePolicy::Match => LocalePolicy::Match,
        }
    }
}

impl From<LocalePolicy> for quorum_store::LocalePolicy {
    fn from(policy: LocalePolicy) -> Self {
        match policy {
            LocalePolicy::Any => quorum_store::LocalePolicy::Any,
            LocalePolicy::Match => quorum_store::LocalePolicy::Match,
        }
    }
}

/// Quality-control rules; every rule is off by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QualityPolicy {
    /// The share of a rater's items drawn from the gold items (0 to 1, 1 excluded). Above 0
    /// (or with a qualification) gold items leave the ordinary stream: each rater may get each
    /// gold item once, whatever the overlap.
    pub gold_rate: f64,
    /// After a gold item, the submit reply carries `feedback: {expected, correct}`.
    pub gold_feedback: bool,
    pub qualification: Option<Qualification>,
    pub pause: PauseRules,
    pub review: ReviewPolicy,
}

/// A rater must answer `gold_items` gold items with at least `min_accuracy` correct before they
/// get ordinary items. With a `skill`, a pass counts for every project naming that skill.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Qualification {
    pub gold_items: u32,
    pub min_accuracy: f64,
    #[serde(default)]
    pub skill: Option<String>,
}

/// Auto-pause rules; each is off when null.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PauseRules {
    /// Pause when the upper end of the 95% credible interval of the rater's accuracy (gold
    /// answers and reviewed responses) falls below this.
    pub min_accuracy_upper: Option<f64>,
    /// Pause when the median time of the rater's last 25 answers (at least 10) is below this.
    pub min_median_ms: Option<i64>,
    /// Pause when skips exceed this share of the rater's items (after at least 10).
    pub max_skip_rate: Option<f64>,
}

/// What feeds the review queue (items done collecting, gold items aside).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewPolicy {
    /// Items whose consensus confidence on some question is below this.
    pub below_confidence: Option<f64>,
    /// Items whose raters did not all give the same answer.
    pub disagreement: bool,
    /// A random share of the remaining items (0 to 1).
    pub sample_rate: f64,
}

impl From<quorum_store::QualityPolicy> for QualityPolicy {
    fn from(policy: quorum_store::QualityPolicy) -> Self {
        Self {
            gold_rate: policy.gold_rate,
            gold_feedback: policy.gold_feedback,
            qualification: policy.qualification.map(|q| Qualification {
                gold_items: q.gold_items,
                min_accuracy: q.min_accuracy,
                skill: q.skill,
            }),
            pause: PauseRules {
                min_accuracy_upper: policy.pause.min_accuracy_upper,
                min_median_ms: policy.pause.min_median_ms,
                max_skip_rate: policy.pause.max_skip_rate,
            },
            review: ReviewPolicy {
                below_confidence: policy.review.below_confidence,
                disagreement: policy.review.disagreement,
                sample_rate: policy.review.sample_rate,
            },
        }
    }
}

impl From<QualityPolicy> for quorum_store::QualityPolicy {
    fn from(policy: QualityPolicy) -> Self {
        Self {
            gold_rate: policy.gold_rate,
            gold_feedback: policy.gold_feedback,
            qualification: policy.qualification.map(|q| quorum_store::Qualification {
                gold_items: q.gold_items,
                min_accuracy: q.min_accuracy,
                skill: q.skill,
            }),
            pause: quorum_store::PauseRules {
                min_accuracy_upper: policy.pause.min_accuracy_upper,
                min_median_ms: policy.pause.min_median_ms,
                max_skip_rate: policy.pause.max_skip_rate,
            },
            review: quorum_store::ReviewPolicy {
                below_confidence: policy.review.below_confidence,
                disagreement: policy.review.disagreement,
                sample_rate: policy.review.sample_rate,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub instructions: String,
    pub schema: Schema,
    /// Raters per item (with dynamic overlap: the most an item gets).
    pub overlap: i32,
    pub lease_seconds: i64,
    pub locale_policy: LocalePolicy,
    /// Dynamic overlap: answers before an item may settle, and the consensus confidence at
    /// which it does.
    pub min_overlap: Option<i32>,
    pub target_confidence: Option<f64>,
    pub quality: QualityPolicy,
    pub created_at: i64,
}

impl From<quorum_store::Project> for Project {
    fn from(project: quorum_store::Project) -> Self {
        Self {
            id: project.id,
            name: project.name,
            instructions: project.instructions,
            schema: project.schema,
            overlap: project.overlap,
            lease_seconds: project.lease_seconds,
            locale_policy: project.locale_policy.into(),
            min_overlap: project.min_overlap,
            target_confidence: project.target_confidence,
            quality: project.quality.into(),
            created_at: project.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectEnvelope {
    pub project: Project,
}

impl From<quorum_store::Project> for ProjectEnvelope {
    fn from(project: quorum_store::Project) -> Self {
        Self {
            project: project.into(),
        }
    }
}

/// A project and the caller's role in it (administrators who are not members: `manager`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectWithRole {
    pub project: Project,
    pub role: Role,
}

/// One page of projects, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectPage {
    pub projects: Vec<Project>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub instructions: String,
    /// Checked when the project is made; a problem names the field or question at fault.
    #[schema(value_type = Schema)]
    pub schema: Value,
    /// Raters per item.
    #[serde(default = "default_overlap")]
    #[schema(minimum = 1, default = 1)]
    pub overlap: i32,
    #[serde(default = "default_lease_seconds")]
    #[schema(minimum = 10, default = 1800)]
    pub lease_seconds: i64,
    #[serde(default)]
    pub locale_policy: LocalePolicy,
    /// Dynamic overlap: an item settles once its consensus reaches `target_confidence` after
    /// at least `min_overlap` answers; `overlap` is then the most it gets.
    #[serde(default)]
    pub min_overlap: Option<i32>,
    #[serde(default)]
    pub target_confidence: Option<f64>,
    #[serde(default)]
    pub quality: QualityPolicy,
}

fn default_overlap() -> i32 {
    quorum_app::DEFAULT_OVERLAP
}

fn default_lease_seconds() -> i64 {
    quorum_app::DEFAULT_LEASE_SECONDS
}

impl From<CreateProject> for quorum_app::CreateProject {
    fn from(request: CreateProject) -> Self {
        Self {
            name: request.name,
            instructions: request.instructions,
            schema: request.schema,
            overlap: request.overlap,
            lease_seconds: request.lease_seconds,
            locale_policy: request.locale_policy.into(),
            min_overlap: request.min_overlap,
            target_confidence: request.target_confidence,
            quality: request.quality.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub project_id: i64,
    pub user_id: i64,
    pub role: Role,
    pub locales: Vec<String>,
    pub skills: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberEnvelope {
    pub member: Member,
}

impl From<quorum_store::Member> for MemberEnvelope {
    fn from(member: quorum_store::Member) -> Self {
        Self {
            member: Member {
                project_id: member.project_id,
                user_id: member.user_id,
                role: member.role,
                locales: member.locales,
                skills: member.skills,
            },
        }
    }
}

/// Item counts by state, responses, live leases and raters.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub items: i64,
    /// Items with `overlap` responses (or settled).
    pub items_complete: i64,
    /// Items with some responses, not yet complete.
    pub items_in_progress: i64,
    pub items_untouched: i64,
    pub responses: i64,
    pub active_leases: i64,
    pub raters: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsEnvelope {
    pub stats: Stats,
}

impl From<quorum_store::ProjectStats> for StatsEnvelope {
    fn from(stats: quorum_store::ProjectStats) -> Self {
        Self {
            stats: Stats {
                items: stats.items,
                items_complete: stats.items_complete,
                items_in_progress: stats.items_in_progress,
                items_untouched: stats.items_untouched,
                responses: stats.responses,
                active_leases: stats.active_leases,
                raters: stats.raters,
            },
        }
    }
}
