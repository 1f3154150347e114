//! Consensus, agreement, rater standing, the review queue and reviews.

use quorum_app::quality::review::ReviewTask;
use quorum_app::quality::{ItemConsensus, QuestionAgreement, RaterReliability};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsensusList {
    pub consensus: Vec<ItemConsensus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgreementList {
    pub agreement: Vec<QuestionAgreement>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RaterList {
    pub raters: Vec<RaterReliability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewQueue {
    pub items: Vec<ReviewTask>,
}

/// A change to a rater's standing, as the audit log keeps it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RaterChange {
    Paused {
        reason: String,
    },
    Reinstated {
        reason: String,
    },
    /// A qualification decided (by the rules, or by a manager) under a skill key
    /// (`skill:NAME`, or `project:ID` for the project's own).
    Qualified {
        skill: String,
        reason: String,
    },
    NotQualified {
        skill: String,
        reason: String,
    },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RaterEvent {
    pub id: i64,
    pub project_id: i64,
    pub user_id: i64,
    #[serde(flatten)]
    pub change: RaterChange,
    /// The manager who made it; null for the automatic rules.
    pub actor_id: Option<i64>,
    pub at: i64,
}

impl From<quorum_store::RaterEvent> for RaterEvent {
    fn from(event: quorum_store::RaterEvent) -> Self {
        use quorum_store::RaterChange as Stored;
        let change = match event.change {
            Stored::Paused { reason } => RaterChange::Paused { reason },
            Stored::Reinstated { reason } => RaterChange::Reinstated { reason },
            Stored::Qualified { skill, reason } => RaterChange::Qualified { skill, reason },
            Stored::NotQualified { skill, reason } => RaterChange::NotQualified { skill, reason },
        };
        Self {
            id: event.id,
            project_id: event.project_id,
            user_id: event.user_id,
            change,
            actor_id: event.actor_id,
            at: event.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RaterEvents {
    pub events: Vec<RaterEvent>,
}

/// Whether the change altered the rater's standing (false when it was already so).
#[derive(Debug, Serialize, ToSchema)]
pub struct StandingChanged {
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    Reject,
    /// With the corrected answers.
    Correct,
}

impl From<Verdict> for quorum_store::Verdict {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Accept => quorum_store::Verdict::Accept,
            Verdict::Reject => quorum_store::Verdict::Reject,
            Verdict::Correct => quorum_store::Verdict::Correct,
        }
    }
}

impl From<quorum_store::Verdict> for Verdict {
    fn from(verdict: quorum_store::Verdict) -> Self {
        match verdict {
            quorum_store::Verdict::Accept => Verdict::Accept,
            quorum_store::Verdict::Reject => Verdict::Reject,
            quorum_store::Verdict::Correct => Verdict::Correct,
        }
    }
}

/// A reviewer's verdicts on the responses to one item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    pub item_id: i64,
    pub verdicts: Vec<VerdictInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerdictInput {
    pub response_id: i64,
    pub verdict: Verdict,
    /// The corrected answers (only with `correct`): every required question.
    #[serde(default)]
    pub answers: Option<Map<String, Value>>,
}

impl From<ReviewInput> for quorum_app::quality::review::ReviewInput {
    fn from(input: ReviewInput) -> Self {
        Self {
            item_id: input.item_id,
            verdicts: input
                .verdicts
                .into_iter()
                .map(|v| quorum_app::quality::review::VerdictInput {
                    response_id: v.response_id,
                    verdict: v.verdict.into(),
                    answers: v.answers,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Review {
    pub response_id: i64,
    pub project_id: i64,
    pub item_id: i64,
    pub rater_id: i64,
    pub reviewer_id: i64,
    pub verdict: Verdict,
    /// The adjudicated answers of a correction.
    pub answers: Option<Value>,
    pub created_at: i64,
}

impl From<quorum_store::Review> for Review {
    fn from(review: quorum_store::Review) -> Self {
        Self {
            response_id: review.response_id,
            project_id: review.project_id,
            item_id: review.item_id,
            rater_id: review.rater_id,
            reviewer_id: review.reviewer_id,
            verdict: review.verdict.into(),
            answers: review.answers,
            created_at: review.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reviews {
    pub reviews: Vec<Review>,
}
