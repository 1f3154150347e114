//! Work: leases and answers — the rater loop.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::{Result, StoreError, StoredItem};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    Active,
    Submitted,
    Skipped,
    Expired,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Active => "active",
            LeaseState::Submitted => "submitted",
            LeaseState::Skipped => "skipped",
            LeaseState::Expired => "expired",
        }
    }
    pub fn parse(text: &str) -> LeaseState {
        match text {
            "submitted" => LeaseState::Submitted,
            "skipped" => LeaseState::Skipped,
            "expired" => LeaseState::Expired,
            _ => LeaseState::Active,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub id: i64,
    pub project_id: i64,
    pub item_id: i64,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: LeaseState,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub id: i64,
    pub project_id: i64,
    pub item_id: i64,
    pub user_id: i64,
    pub lease_id: i64,
    pub answers: Value,
    pub time_spent_ms: i64,
    pub created_at: i64,
}

/// What a rater needs to get their next item.
#[derive(Debug, Clone)]
pub struct NextRequest {
    pub project_id: i64,
    pub user_id: i64,
    pub overlap: i32,
    pub lease_seconds: i64,
    /// `Some` when the project routes by locale: the rater's locales as routing keys.
    pub locales: Option<quorum_core::LocaleFilter>,
    pub pool: Pool,
    pub now: i64,
}

/// Which items a new lease may be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pool {
    /// Every item, gold or not, within the overlap.
    #[default]
    Any,
    /// Items without gold, within the overlap.
    Regular,
    /// Gold items the rater has not had, in random order, whatever the overlap.
    Gold,
}

#[derive(Debug, Clone)]
pub struct Submission {
    pub lease_id: i64,
    pub user_id: i64,
    pub overlap: i32,
    /// Already validated against the schema.
    pub answers: Value,
    pub time_spent_ms: i64,
    pub idempotency_key: Option<String>,
    /// Gold items have their own pool (a late answer to a gold item is never refused for
    /// lack of a slot).
    pub gold_pool: bool,
    /// Whether the answer matched the item's gold, when it has one.
    pub gold_correct: Option<bool>,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    Created(Response),
    /// The idempotency key was seen before: the original response, nothing written.
    Replayed(Response),
}

/// The lease state machine both backends follow: each backend reads the rows, asks these
/// functions what to do, and writes the result (so the rules and their messages live here
/// once).
///
/// A lease is the caller's own or, to them, does not exist: someone else's lease is reported
/// exactly like a missing one.
pub fn own_lease(lease: Option<Lease>, user_id: i64) -> Result<Lease> {
    match lease {
        Some(lease) if lease.user_id == user_id => Ok(lease),
        _ => Err(StoreError::NotFound("lease")),
    }
}

/// Whether a submission on this lease may be a retry to replay: a live lease has no response
/// yet, so only an answered one can.
pub fn may_replay(lease: &Lease) -> bool {
    lease.state != LeaseState::Active
}

/// What a (non-replayed) submission on the caller's lease does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitStep {
    /// The lease is live: its slot becomes the response.
    Answer,
    /// The lease ran out. When `expire_first`, it is still marked live and must be expired
    /// (freeing its slot) first; then the answer counts only if [`late_answer`] allows it.
    Late { expire_first: bool },
}

impl SubmitStep {
    /// How the item's counters change: (responses, live leases).
    pub fn counts(self) -> (i64, i64) {
        match self {
            SubmitStep::Answer => (1, -1),
            SubmitStep::Late { .. } => (1, 0),
        }
    }
}

/// Decides a submission on the caller's lease at `now`; an answered or skipped lease is refused.
pub fn submit_step(lease: &Lease, now: i64) -> Result<SubmitStep> {
    match lease.state {
        LeaseState::Submitted => Err(StoreError::Conflict(
            "this lease has already been answered".into(),
        )),
        LeaseState::Skipped => Err(StoreError::Conflict("this lease was skipped".into())),
        LeaseState::Active if lease.expires_at <= now => {
            Ok(SubmitStep::Late { expire_first: true })
        }
        LeaseState::Active => Ok(SubmitStep::Answer),
        LeaseState::Expired => Ok(SubmitStep::Late {
            expire_first: false,
        }),
    }
}

/// Whether an answer on an expired lease may still count, given the item's `taken` slots
/// (responses plus live leases): only while a slot is free — or always on a gold item when gold
/// items have their own pool, since there the overlap does not apply.
pub fn late_answer(taken: i64, overlap: i32, item_is_gold: bool, gold_pool: bool) -> Result<()> {
    if taken >= i64::from(overlap) && !(item_is_gold && gold_pool) {
        return Err(StoreError::LeaseExpired);
    }
    Ok(())
}

/// A skip: only a live lease can be skipped (one past its time included — nobody else has its
/// slot until it is expired).
pub fn skip_step(lease: &Lease) -> Result<()> {
    if lease.state != LeaseState::Active {
        return Err(StoreError::Conflict(format!(
            "this lease is {}, not active",
            lease.state.as_str()
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    pub response_id: i64,
    pub item_id: i64,
    pub external_id: Option<String>,
    pub user_id: i64,
    pub user_name: String,
    pub answers: Value,
    pub time_spent_ms: i64,
    pub created_at: i64,
    /// The item has a gold answer: the response tests its rater and is not data.
    pub gold: bool,
}

/// A response as [`Work::responses_by_item`] reads it: an [`ExportRow`] whose answers are
/// still JSON text, parsed by the caller (off the database's threads, while the next page is
/// read).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemResponse {
    pub response_id: i64,
    pub item_id: i64,
    pub external_id: Option<String>,
    pub user_id: i64,
    pub user_name: String,
    pub answers: String,
    pub time_spent_ms: i64,
    pub created_at: i64,
    pub gold: bool,
}

impl ItemResponse {
    /// The row with its answers parsed.
    pub fn parse(self) -> std::result::Result<ExportRow, serde_json::Error> {
        Ok(ExportRow {
            answers: serde_json::from_str(&self.answers)?,
            response_id: self.response_id,
            item_id: self.item_id,
            external_id: self.external_id,
            user_id: self.user_id,
            user_name: self.user_name,
            time_spent_ms: self.time_spent_ms,
            created_at: self.created_at,
            gold: self.gold,
        })
    }
}

/// A page of a project's items, as [`Work::responses_by_item`] reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemPage {
    /// The responses to the page's items, in item then response order.
    pub rows: Vec<ItemResponse>,
    /// The gold answers of the page's gold items.
    pub gold: Vec<(i64, Value)>,
    /// The page's last item (answered or not); `None` once no item is left.
    pub last_item: Option<i64>,
}

#[async_trait]
pub trait Work {
    /// The rater's current unexpired lease in the project, or a new lease on the best item they
    /// may take: fewer than `overlap` responses plus live leases, never leased to them before,
    /// matching their locales when required; highest priority first, then oldest.
    async fn next_lease(&self, request: NextRequest) -> Result<Option<(Lease, StoredItem)>>;
    async fn lease(&self, id: i64) -> Result<Option<Lease>>;
    /// Stores a response on the caller's lease. Refuses a lease that is not the caller's, not
    /// active, or expired with its slot taken; replays an idempotency key seen before.
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome>;
    async fn skip(&self, lease_id: i64, user_id: i64, now: i64) -> Result<()>;
    /// Responses with `id > after` in id order.
    async fn export_responses(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>>;
    /// The next `items` items of a project by id after `after_item`: a whole project read item
    /// by item, a page at a time (see [`ItemPage`]).
    async fn responses_by_item(
        &self,
        project_id: i64,
        after_item: i64,
        items: i64,
    ) -> Result<ItemPage>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(state: LeaseState, expires_at: i64) -> Lease {
        Lease {
            id: 1,
            project_id: 1,
            item_id: 1,
            user_id: 7,
            created_at: 0,
            expires_at,
            state,
        }
    }

    #[test]
    fn the_lease_state_machine() {
        assert!(matches!(
            own_lease(None, 7),
            Err(StoreError::NotFound("lease"))
        ));
        assert!(matches!(
            own_lease(Some(lease(LeaseState::Active, 10)), 8),
            Err(StoreError::NotFound("lease"))
        ));
        assert!(own_lease(Some(lease(LeaseState::Active, 10)), 7).is_ok());

        let live = lease(LeaseState::Active, 10);
        assert!(!may_replay(&live));
        assert_eq!(submit_step(&live, 9).unwrap(), SubmitStep::Answer);
        assert_eq!(
            submit_step(&live, 10).unwrap(),
            SubmitStep::Late { expire_first: true },
            "a lease ends at its expiry time"
        );
        assert_eq!(
            submit_step(&lease(LeaseState::Expired, 10), 5).unwrap(),
            SubmitStep::Late {
                expire_first: false
            }
        );
        for state in [LeaseState::Submitted, LeaseState::Skipped] {
            let done = lease(state, 10);
            assert!(may_replay(&done));
            assert!(matches!(
                submit_step(&done, 0),
                Err(StoreError::Conflict(_))
            ));
            assert!(matches!(skip_step(&done), Err(StoreError::Conflict(_))));
        }
        assert!(skip_step(&live).is_ok());
        assert_eq!(SubmitStep::Answer.counts(), (1, -1));
        assert_eq!(SubmitStep::Late { expire_first: true }.counts(), (1, 0));

        assert!(late_answer(2, 3, false, false).is_ok());
        assert!(matches!(
            late_answer(3, 3, false, false),
            Err(StoreError::LeaseExpired)
        ));
        assert!(matches!(
            late_answer(3, 3, true, false),
            Err(StoreError::LeaseExpired)
        ));
        assert!(
            late_answer(3, 3, true, true).is_ok(),
            "gold has its own pool"
        );
    }
}
