//! A rater's loop: next item, answer, skip.

pub(crate) mod after_answer;

use quorum_core::Role;
use quorum_core::answer::{self, Completeness};
use quorum_core::schema::QuestionKind;
use quorum_store::{
    Lease, NextRequest, Pool, Response, Store, StoredItem, Submission, SubmitOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::work::after_answer::WorkDone;
use crate::{App, AppError, Caller};

/// An item as a rater sees it: never the gold answer, and not its id either — gold items are
/// often imported apart, so their ids would mark them. The lease is the rater's handle on it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub fields: Value,
    pub metadata: Value,
    pub suggestions: Option<Value>,
}

impl From<StoredItem> for ItemView {
    fn from(item: StoredItem) -> Self {
        Self {
            fields: item.fields,
            metadata: item.metadata,
            suggestions: item.suggestions,
        }
    }
}

/// A lease as its rater sees it: which lease and until when, not which item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LeaseView {
    pub id: i64,
    pub project_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

impl From<Lease> for LeaseView {
    fn from(lease: Lease) -> Self {
        Self {
            id: lease.id,
            project_id: lease.project_id,
            created_at: lease.created_at,
            expires_at: lease.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Assignment {
    pub lease: LeaseView,
    pub item: ItemView,
}

/// A stored response as its rater sees it (no item id, as for [`ItemView`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResponseView {
    pub id: i64,
    pub project_id: i64,
    pub lease_id: i64,
    pub answers: Value,
    pub time_spent_ms: i64,
    pub created_at: i64,
}

impl From<Response> for ResponseView {
    fn from(response: Response) -> Self {
        Self {
            id: response.id,
            project_id: response.project_id,
            lease_id: response.lease_id,
            answers: response.answers,
            time_spent_ms: response.time_spent_ms,
            created_at: response.created_at,
        }
    }
}

/// A stored (or replayed) response, with the expected answers when the item was gold and the
/// project shows feedback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Submitted {
    /// False when an idempotency key replayed an earlier response.
    pub created: bool,
    pub response: ResponseView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitAnswers {
    pub answers: Map<String, Value>,
    #[serde(default)]
    pub time_spent_ms: i64,
}

/// The immutable facts of a lease: where it was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KnownLease {
    pub(crate) project_id: i64,
    pub(crate) user_id: i64,
    pub(crate) item_id: i64,
}

impl<S: Store> App<S> {
    fn remember_lease(&self, lease: &Lease) {
        let known = KnownLease {
            project_id: lease.project_id,
            user_id: lease.user_id,
            item_id: lease.item_id,
        };
        if let Ok(mut leases) = self.caches().leases.lock() {
            // Bounded: forgetting costs one read later, never a wrong answer.
            if leases.len() >= 100_000 {
                leases.clear();
            }
            leases.insert(lease.id, known);
        }
    }

    /// Where a lease was granted: remembered if this server granted it, else read.
    async fn lease_facts(&self, lease_id: i64) -> Result<Option<KnownLease>, AppError> {
        let known = self
            .caches()
            .leases
            .lock()
            .ok()
            .and_then(|leases| leases.get(&lease_id).copied());
        Ok(match known {
            Some(known) => Some(known),
            None => self.store().lease(lease_id).await?.map(|l| KnownLease {
                project_id: l.project_id,
                user_id: l.user_id,
                item_id: l.item_id,
            }),
        })
    }

    pub async fn next(
        &self,
        caller: &Caller,
        project_id: i64,
    ) -> Result<Option<Assignment>, AppError> {
        let (project, _) = self.role_in(caller, project_id).await?;
        let member = self.cached_member(project_id, caller.user.id).await?;
        let locales = match project.locale_policy {
            quorum_store::LocalePolicy::Any => None,
            quorum_store::LocalePolicy::Match => Some(quorum_core::LocaleFilter::new(
                &member.map(|m| m.locales).unwrap_or_default(),
            )),
        };
        let pool = self.pool_for(&project, caller.user.id).await?;
        let mut request = NextRequest {
            project_id,
            user_id: caller.user.id,
            overlap: project.overlap,
            lease_seconds: project.lease_seconds,
            locales,
            pool,
            now: self.now(),
        };
        let mut assignment = self.store().next_lease(request.clone()).await?;
        // Out of gold at the mixing rate: the ordinary stream goes on.
        if assignment.is_none() && pool == Pool::Gold && project.quality.qualification.is_none() {
            request.pool = Pool::Regular;
            assignment = self.store().next_lease(request).await?;
        }
        if let Some((lease, _)) = &assignment {
            self.remember_lease(lease);
        }
        Ok(assignment.map(|(lease, item)| Assignment {
            lease: lease.into(),
            item: item.into(),
        }))
    }

    /// Stores the caller's answers on their lease (scored when the item is gold), then runs the
    /// after-answer step.
    pub async fn submit(
        &self,
        caller: &Caller,
        lease_id: i64,
        body: SubmitAnswers,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, AppError> {
        // Where a lease was granted (its project, rater and item) never changes: a lease this
        // server granted needs no read; the store still checks its state and owner when storing.
        let lease = match self.lease_facts(lease_id).await? {
            Some(lease) if lease.user_id == caller.user.id => lease,
            _ => return Err(AppError::NotFound("lease")),
        };
        let (project, role) = self.role_in(caller, lease.project_id).await?;
        if role < Role::Annotator {
            return Err(AppError::Forbidden("not a member of this project".into()));
        }
        if let Some(key) = &idempotency_key
            && (key.is_empty() || key.len() > 200)
        {
            return Err(AppError::invalid(
                "the Idempotency-Key header must be 1 to 200 characters",
            ));
        }
        if !(0..=86_400_000).contains(&body.time_spent_ms) {
            return Err(AppError::Invalid {
                message: "time_spent_ms must be 0 to 86400000".into(),
                details: json!({"field": "time_spent_ms"}),
            });
        }
        let schema = &project.schema;
        // Rankings and spans are checked against the item (its responses, its text), and a
        // project with quality rules scores gold items; other answers need no read of the item.
        // Quality rules read every item, gold or not, so timing never tells them apart.
        let scores = project.quality.scores_answers();
        let needs_item = scores
            || schema.questions.iter().any(|q| {
                matches!(
                    q.kind,
                    QuestionKind::Ranking { .. } | QuestionKind::Spans { .. }
                )
            });
        let (fields, gold) = if needs_item {
            let item = self
                .store()
                .item(lease.item_id)
                .await?
                .ok_or(AppError::NotFound("item"))?;
            (
                item.fields.as_object().cloned().unwrap_or_default(),
                item.gold.filter(|_| scores),
            )
        } else {
            (Map::new(), None)
        };
        answer::validate(&body.answers, schema, &fields, Completeness::Complete).map_err(|e| {
            AppError::Invalid {
                message: e.to_string(),
                details: json!({"question": e.question}),
            }
        })?;
        let answers = Value::Object(body.answers);
        let gold_correct = gold
            .as_ref()
            .map(|g| crate::quality::matches_gold(&answers, g));
        let submission = Submission {
            lease_id,
            user_id: caller.user.id,
            overlap: project.overlap,
            answers,
            time_spent_ms: body.time_spent_ms,
            idempotency_key,
            gold_pool: project.quality.gold_pool(),
            gold_correct,
            now: self.now(),
        };
        let (created, response, gold_correct) = match self.store().submit(submission).await? {
            SubmitOutcome::Created(response) => (true, response, gold_correct),
            // A key names one answer on one lease: used on another lease it is refused, so a
            // replay can never speak about an item the original answer was not on.
            SubmitOutcome::Replayed(response) if response.lease_id != lease_id => {
                return Err(AppError::Invalid {
                    message: "this Idempotency-Key was already used for an answer on another lease; use a new key for each answer".into(),
                    details: json!({"header": "Idempotency-Key"}),
                });
            }
            // A replay says exactly what the original reply said: the score of the answers
            // stored then, not of the body sent now.
            SubmitOutcome::Replayed(response) => {
                let correct = gold
                    .as_ref()
                    .map(|g| crate::quality::matches_gold(&response.answers, g));
                (false, response, correct)
            }
        };
        if created {
            self.after_answer(WorkDone::Answered {
                project: &project,
                user_id: caller.user.id,
                item_id: lease.item_id,
                scored_gold: gold_correct.is_some(),
            })
            .await?;
        }
        let feedback = gold
            .filter(|_| project.quality.gold_feedback)
            .map(|expected| json!({"expected": expected, "correct": gold_correct}));
        Ok(Submitted {
            created,
            response: response.into(),
            feedback,
        })
    }

    pub async fn skip(&self, caller: &Caller, lease_id: i64) -> Result<(), AppError> {
        self.store()
            .skip(lease_id, caller.user.id, self.now())
            .await?;
        if let Some(lease) = self.lease_facts(lease_id).await? {
            let project = self
                .cached_project(lease.project_id)
                .await?
                .ok_or(AppError::NotFound("project"))?;
            self.after_answer(WorkDone::Skipped {
                project: &project,
                user_id: caller.user.id,
            })
            .await?;
        }
        Ok(())
    }
}
