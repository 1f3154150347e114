//! Quality: rules, rater standing, reviews, and the answers consensus reads.

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;
use serde_json::Value;

/// A project's quality-control rules; the default has every rule off.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct QualityPolicy {
    /// The share of a rater's items drawn from the gold items (0 to 1). Above 0 (or with a
    /// qualification), gold items leave the ordinary stream: each rater may get each gold item
    /// once, whatever the overlap.
    pub gold_rate: f64,
    /// After answering a gold item, the rater is shown the expected answer.
    pub gold_feedback: bool,
    pub qualification: Option<Qualification>,
    pub pause: PauseRules,
    pub review: ReviewPolicy,
}

impl QualityPolicy {
    /// Whether gold items are served from their own pool (not as ordinary items).
    pub fn gold_pool(&self) -> bool {
        self.gold_rate > 0.0 || self.qualification.is_some()
    }

    /// Whether submissions must be scored and raters checked as answers arrive.
    pub fn scores_answers(&self) -> bool {
        self.gold_pool() || self.gold_feedback || self.pause.any()
    }
}

/// A rater must answer `gold_items` gold items with at least `min_accuracy` correct before they
/// get ordinary items. With a `skill`, passing counts for every project that names that skill.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qualification {
    pub gold_items: u32,
    pub min_accuracy: f64,
    #[serde(default)]
    pub skill: Option<String>,
}

impl Qualification {
    /// The name a pass is recorded under: the skill, or this project alone.
    pub fn skill_key(&self, project_id: i64) -> String {
        match &self.skill {
            Some(skill) => format!("skill:{skill}"),
            None => format!("project:{project_id}"),
        }
    }
}

/// Auto-pause rules; each is off when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
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

impl PauseRules {
    pub fn any(&self) -> bool {
        self.min_accuracy_upper.is_some()
            || self.min_median_ms.is_some()
            || self.max_skip_rate.is_some()
    }
}

/// What feeds the review queue (items that are done collecting, gold items aside).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewPolicy {
    /// Items whose consensus confidence on some question is below this.
    pub below_confidence: Option<f64>,
    /// Items whose raters did not all give the same answer.
    pub disagreement: bool,
    /// A random share of the remaining items (0 to 1).
    pub sample_rate: f64,
}
/// One response to an item, as consensus and review read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemAnswer {
    pub response_id: i64,
    pub user_id: i64,
    pub answers: Value,
}

/// What the auto-pause and qualification rules read of one rater in one project.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RaterRecord {
    pub responses: i64,
    pub skips: i64,
    pub gold_answered: i64,
    pub gold_correct: i64,
    /// Their responses reviewers accepted, and rejected or corrected.
    pub accepted: i64,
    pub rejected: i64,
    /// Time spent on their last 25 answers, newest first.
    pub recent_times_ms: Vec<i64>,
}

/// A rater's standing in a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaterState {
    pub user_id: i64,
    /// Why they are paused, while they are.
    pub paused: Option<String>,
    /// When a manager last reinstated them: the rules judge only what came after.
    pub reinstated_at: i64,
}

/// A change to a rater's standing, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RaterChange {
    Paused {
        reason: String,
    },
    Reinstated {
        reason: String,
    },
    /// A qualification decided (by the rules, or by a manager) under a skill key.
    Qualified {
        skill: String,
        reason: String,
    },
    NotQualified {
        skill: String,
        reason: String,
    },
}

impl RaterChange {
    /// The skill name of a qualification decision that counts in every project naming that
    /// skill (recorded under `skill:NAME`); `None` for a project's own qualification and for
    /// pauses.
    pub fn shared_skill(&self) -> Option<&str> {
        match self {
            RaterChange::Qualified { skill, .. } | RaterChange::NotQualified { skill, .. } => {
                skill.strip_prefix("skill:")
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaterEvent {
    pub id: i64,
    pub project_id: i64,
    pub user_id: i64,
    #[serde(flatten)]
    pub change: RaterChange,
    /// The manager who made it; `None` for the automatic rules.
    pub actor_id: Option<i64>,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    Reject,
    Correct,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
            Verdict::Correct => "correct",
        }
    }
    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "accept" => Some(Verdict::Accept),
            "reject" => Some(Verdict::Reject),
            "correct" => Some(Verdict::Correct),
            _ => None,
        }
    }
}

/// A reviewer's verdict on one response; a correction carries the adjudicated answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub response_id: i64,
    pub project_id: i64,
    pub item_id: i64,
    pub rater_id: i64,
    pub reviewer_id: i64,
    pub verdict: Verdict,
    pub answers: Option<Value>,
    pub created_at: i64,
}

#[async_trait]
pub trait Quality {
    /// Closes an item for good: it takes no more answers (its consensus is confident).
    async fn settle_item(&self, item_id: i64, now: i64) -> Result<()>;
    /// Every response to an item, oldest first.
    async fn item_answers(&self, item_id: i64) -> Result<Vec<ItemAnswer>>;
    /// Replaces a project's quality rules.
    async fn set_quality(&self, project_id: i64, quality: QualityPolicy) -> Result<()>;
    /// A rater's answers, skips, gold score and review verdicts in a project, counting only
    /// what happened at or after `since`.
    async fn rater_record(&self, project_id: i64, user_id: i64, since: i64) -> Result<RaterRecord>;
    /// A rater's standing (`None`: never paused or reinstated).
    async fn rater_state(&self, project_id: i64, user_id: i64) -> Result<Option<RaterState>>;
    async fn rater_states(&self, project_id: i64) -> Result<Vec<RaterState>>;
    /// Applies a change to a rater's standing and logs it, in one transaction. A pause of a
    /// paused rater, or a reinstatement of one who is not, changes nothing and returns `false`.
    /// A qualification decided under a shared skill is logged in every project naming it.
    async fn change_rater(
        &self,
        project_id: i64,
        user_id: i64,
        change: RaterChange,
        actor_id: Option<i64>,
        now: i64,
    ) -> Result<bool>;
    /// A project's audit log of rater changes, oldest first.
    async fn rater_events(&self, project_id: i64) -> Result<Vec<RaterEvent>>;
    /// Whether the user passed (`true`) or failed the qualification recorded under `skill`.
    async fn qualification(&self, user_id: i64, skill: &str) -> Result<Option<bool>>;
    /// Stores reviews (replacing earlier ones of the same responses) in one transaction.
    async fn put_reviews(&self, reviews: Vec<Review>) -> Result<()>;
    /// A project's reviews, by response.
    async fn reviews(&self, project_id: i64) -> Result<Vec<Review>>;
}
