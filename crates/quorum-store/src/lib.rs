//! The storage port. The application is generic over [`Store`]; `quorum-store-sqlite` and
//! `quorum-store-postgres` implement it, and `conformance` (behind the feature of that name,
//! which the backends turn on for their tests) holds the one test suite both run.
//!
//! Times are Unix milliseconds passed in by the caller (`now`), so storage never reads a clock
//! and tests control expiry exactly.

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use quorum_core::Role;
use quorum_core::item::Item;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or state rule refused the write; the message says which.
    #[error("{0}")]
    Conflict(String),
    /// The lease has expired and its slot was taken by someone else.
    #[error("the lease expired and the item has since been given to other raters")]
    LeaseExpired,
    #[error("the store is shutting down")]
    Closed,
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
    /// When an administrator disabled the account (it cannot sign in or use a token).
    pub disabled_at: Option<i64>,
}

/// An API token or web session (a token named `web session`), without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: i64,
    pub name: String,
    /// SHA-256 of the secret; the secret itself is never stored.
    pub hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

/// How items with a locale are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LocalePolicy {
    /// Any rater may take any item.
    #[default]
    Any,
    /// An item with a locale goes only to raters with that locale (or its language alone).
    Match,
}

impl LocalePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalePolicy::Any => "any",
            LocalePolicy::Match => "match",
        }
    }
    pub fn parse(text: &str) -> LocalePolicy {
        if text == "match" {
            LocalePolicy::Match
        } else {
            LocalePolicy::Any
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub instructions: String,
    /// The validated schema, as JSON.
    pub schema: Value,
    pub overlap: i32,
    pub lease_seconds: i64,
    pub locale_policy: LocalePolicy,
    /// Dynamic overlap: answers before an item may settle, and the consensus confidence at
    /// which it does (`overlap` is then the most answers an item gets).
    pub min_overlap: Option<i32>,
    pub target_confidence: Option<f64>,
    /// Gold mixing, qualification, auto-pause and review rules.
    pub quality: QualityPolicy,
    pub created_at: i64,
}

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

#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    pub instructions: String,
    pub schema: Value,
    pub overlap: i32,
    pub lease_seconds: i64,
    pub locale_policy: LocalePolicy,
    pub min_overlap: Option<i32>,
    pub target_confidence: Option<f64>,
    pub quality: QualityPolicy,
    /// Made the project's first manager.
    pub created_by: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub project_id: i64,
    pub user_id: i64,
    pub role: Role,
    pub locales: Vec<String>,
    pub skills: Vec<String>,
}

/// Items ready to store: validated, their JSON parts serialised and packed into one text
/// arena. A million small items take tens of megabytes here, where a million parsed JSON trees
/// (or a million separately allocated strings) would take hundreds.
#[derive(Debug, Clone, Default)]
pub struct ItemBatch {
    text: String,
    rows: Vec<PackedItem>,
}

/// Offsets into the arena: where each of the seven text parts ends (external id, fields,
/// metadata, locale, category, suggestions, gold), which optional parts are present, and the
/// priority.
#[derive(Debug, Clone, Copy)]
struct PackedItem {
    ends: [u32; 7],
    present: u8,
    priority: i32,
}

/// One item of an [`ItemBatch`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRef<'a> {
    pub external_id: Option<&'a str>,
    pub fields: &'a str,
    pub metadata: &'a str,
    pub locale: Option<&'a str>,
    pub category: Option<&'a str>,
    pub suggestions: Option<&'a str>,
    pub gold: Option<&'a str>,
    pub priority: i32,
}

/// An [`ItemBatch`] holds at most 4 GiB of text (its offsets are 32-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the import holds more than 4 GiB of item text; split it into several imports")]
pub struct BatchFull;

impl ItemBatch {
    /// Adds an item, or refuses it (leaving the batch as it was) when the arena would pass
    /// 4 GiB.
    pub fn push(&mut self, item: &Item) -> std::result::Result<(), BatchFull> {
        let object = |map: &serde_json::Map<String, Value>| {
            serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
        };
        let parts: [Option<String>; 7] = [
            item.external_id.clone(),
            Some(object(&item.fields)),
            Some(object(&item.metadata)),
            item.locale.clone(),
            item.category.clone(),
            item.suggestions.as_ref().map(object),
            item.gold.as_ref().map(object),
        ];
        let added: usize = parts.iter().flatten().map(String::len).sum();
        if !arena_fits(self.text.len(), added) {
            return Err(BatchFull);
        }
        let mut ends = [0u32; 7];
        let mut present = 0u8;
        for (i, part) in parts.iter().enumerate() {
            if let Some(text) = part {
                self.text.push_str(text);
                present |= 1 << i;
            }
            ends[i] = self.text.len() as u32;
        }
        self.rows.push(PackedItem {
            ends,
            present,
            priority: item.priority,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = ItemRef<'_>> + '_ {
        let mut start = 0usize;
        self.rows.iter().map(move |row| {
            let mut parts: [Option<&str>; 7] = [None; 7];
            for (i, part) in parts.iter_mut().enumerate() {
                let end = row.ends[i] as usize;
                if row.present & (1 << i) != 0 {
                    *part = Some(&self.text[start..end]);
                }
                start = end;
            }
            ItemRef {
                external_id: parts[0],
                fields: parts[1].unwrap_or("{}"),
                metadata: parts[2].unwrap_or("{}"),
                locale: parts[3],
                category: parts[4],
                suggestions: parts[5],
                gold: parts[6],
                priority: row.priority,
            }
        })
    }
}

/// Whether `added` more bytes keep an arena of `used` bytes addressable by 32-bit offsets.
fn arena_fits(used: usize, added: usize) -> bool {
    used.checked_add(added)
        .is_some_and(|total| total <= u32::MAX as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_stops_at_four_gibibytes() {
        let limit = u32::MAX as usize;
        assert!(arena_fits(0, 10));
        assert!(arena_fits(limit - 10, 10));
        assert!(!arena_fits(limit - 10, 11));
        assert!(!arena_fits(usize::MAX, 1), "no overflow");
        // An item that fits is packed as before.
        let mut batch = ItemBatch::default();
        let item = Item {
            external_id: Some("x".into()),
            fields: serde_json::Map::new(),
            metadata: serde_json::Map::new(),
            locale: None,
            category: None,
            suggestions: None,
            gold: None,
            priority: 0,
        };
        batch.push(&item).expect("fits");
        assert_eq!(batch.len(), 1);
    }
}

impl FromIterator<Item> for ItemBatch {
    fn from_iter<T: IntoIterator<Item = Item>>(items: T) -> Self {
        let mut batch = ItemBatch::default();
        for item in items {
            // Collected batches are built from a few items in code and tests.
            batch
                .push(&item)
                .expect("an ItemBatch collected from items stays under 4 GiB");
        }
        batch
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredItem {
    pub id: i64,
    pub project_id: i64,
    pub external_id: Option<String>,
    pub fields: Value,
    pub metadata: Value,
    pub locale: Option<String>,
    pub category: Option<String>,
    pub suggestions: Option<Value>,
    pub gold: Option<Value>,
    pub priority: i32,
    pub responses: i32,
    pub active_leases: i32,
    pub created_at: i64,
}

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

/// One response to an item, as consensus and review read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemAnswer {
    pub response_id: i64,
    pub user_id: i64,
    pub answers: Value,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ProjectStats {
    pub items: i64,
    /// Items with `overlap` responses.
    pub items_complete: i64,
    /// Items with some responses, not yet complete.
    pub items_in_progress: i64,
    pub items_untouched: i64,
    pub responses: i64,
    pub active_leases: i64,
    pub raters: i64,
}

/// What one rater has done in a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaterActivity {
    pub user_id: i64,
    pub name: String,
    pub responses: i64,
    /// Responses created at or after the `since` asked for.
    pub responses_since: i64,
    pub skips: i64,
    /// When their last response was created.
    pub last_active: Option<i64>,
    /// Their role in the project (`None` for a past responder who is no longer a member).
    pub role: Option<String>,
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

/// One run of an evaluation standard: the projects it made and the models it compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandardRun {
    pub hash: String,
    pub prompts_project_id: i64,
    pub battles_project_id: i64,
    pub models: Vec<String>,
    /// The standard's items are held out: their text is never exported.
    pub private: bool,
    /// The standard itself (spec and items), so it can be reported without its file.
    pub standard: Value,
    pub created_at: i64,
}

/// A registered model: how to call it (an OpenAI-compatible chat-completions endpoint), or
/// nothing when its answers are imported. The API key is never stored: only the name of the
/// environment variable that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub name: String,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The provider's model id (defaults to `name` when calling).
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Generation parameters sent with every request (temperature, max_tokens, …).
    #[serde(default = "empty_object")]
    pub parameters: Value,
    #[serde(default)]
    pub created_at: i64,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A model's answer to one prompt item (or the error of its last attempt).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub project_id: i64,
    pub item_id: i64,
    pub model: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub attempts: i64,
    pub created_at: i64,
}

/// Which model is behind each side of a pairwise battle item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BattleSides {
    pub model_a: String,
    pub model_b: String,
    /// The prompt item the two answers respond to.
    pub prompt_item_id: Option<i64>,
}

/// One response to a battle item, with what a leaderboard slices by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BattleVote {
    pub response_id: i64,
    pub item_id: i64,
    pub model_a: String,
    pub model_b: String,
    pub user_name: String,
    pub answers: Value,
    pub category: Option<String>,
    pub item_locale: Option<String>,
    /// The rater's locales in this project (first = primary).
    pub rater_locales: Vec<String>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user_by_name(&self, name: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn create_token(&self, token: NewToken) -> Result<i64>;
    /// The owner of a token that has not expired at `now`, if the owner is not disabled.
    async fn user_by_token_hash(&self, token_hash: &str, now: i64)
    -> Result<Option<(User, Token)>>;
    /// Records a token's use, and moves its expiry (a web session's sliding expiry).
    async fn touch_token(&self, token_id: i64, now: i64, expires_at: Option<i64>) -> Result<()>;
    /// A user's tokens and sessions, oldest first (expired ones included until revoked).
    async fn tokens(&self, user_id: i64) -> Result<Vec<Token>>;
    /// Revokes one of a user's tokens; `false` when the user has no such token.
    async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool>;
    /// Revokes all of a user's tokens, or only those with this name; returns how many.
    async fn revoke_tokens(&self, user_id: i64, named: Option<&str>) -> Result<u64>;
    /// Revokes a token (a signed-out session); revoking an unknown token is not an error.
    async fn delete_token(&self, token_hash: &str) -> Result<()>;
    /// Disables an account (`Some(now)`: every token and session of it revoked in the same
    /// transaction) or enables it again (`None`); `false` when the user does not exist.
    async fn set_user_disabled(&self, user_id: i64, disabled_at: Option<i64>) -> Result<bool>;
    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<bool>;

    async fn create_project(&self, project: NewProject, now: i64) -> Result<Project>;
    async fn project(&self, id: i64) -> Result<Option<Project>>;
    /// Projects with `id > after` in id order: all of them when `member` is `None`, else
    /// those where that user is a member.
    async fn list_projects(
        &self,
        member: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Project>>;
    async fn upsert_member(&self, member: Member) -> Result<()>;
    async fn member(&self, project_id: i64, user_id: i64) -> Result<Option<Member>>;

    /// Creates or (by external id) updates items, all in one transaction.
    async fn import_items(
        &self,
        project_id: i64,
        items: ItemBatch,
        now: i64,
    ) -> Result<ImportReport>;
    async fn item(&self, id: i64) -> Result<Option<StoredItem>>;
    /// Closes an item for good: it takes no more answers (its consensus is confident).
    async fn settle_item(&self, item_id: i64) -> Result<()>;
    /// Every response to an item, oldest first.
    async fn item_answers(&self, item_id: i64) -> Result<Vec<ItemAnswer>>;
    /// A project's items with `id > after`, in id order.
    async fn items(&self, project_id: i64, after: i64, limit: i64) -> Result<Vec<StoredItem>>;
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
    async fn stats(&self, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats>;
    /// Each member's (and each past responder's) activity in a project, by name.
    async fn rater_activity(&self, project_id: i64, since: i64) -> Result<Vec<RaterActivity>>;

    /// Registers a model, or updates the one of that name.
    async fn upsert_model(&self, model: ModelSpec) -> Result<()>;
    async fn models(&self) -> Result<Vec<ModelSpec>>;
    /// Stores models' answers to prompt items, replacing earlier attempts', in one transaction.
    async fn put_generations(&self, generations: Vec<Generation>) -> Result<()>;
    /// A project's generations, by item then model.
    async fn generations(&self, project_id: i64) -> Result<Vec<Generation>>;
    /// Imports battle items and records the models behind their sides, all in one transaction.
    /// `sides[i]` belongs to the i-th item, which must have an external id.
    async fn import_battles(
        &self,
        project_id: i64,
        items: ItemBatch,
        sides: Vec<BattleSides>,
        now: i64,
    ) -> Result<ImportReport>;
    /// Responses to battle items with `id > after`, in id order.
    async fn battle_votes(
        &self,
        project_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BattleVote>>;

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

    async fn put_standard_run(&self, run: StandardRun) -> Result<()>;
    /// The runs of the standard with this hash, oldest first.
    async fn standard_runs(&self, hash: &str) -> Result<Vec<StandardRun>>;
    /// Every standard run, newest first.
    async fn all_standard_runs(&self) -> Result<Vec<StandardRun>>;
    /// The standard run that made this project (its prompts or its battles), if one did.
    async fn standard_run_of(&self, project_id: i64) -> Result<Option<StandardRun>>;
    /// The instance's setting `name`, set to `value` first if it has none (the first writer
    /// wins, on every server).
    async fn instance_setting(&self, name: &str, value: String) -> Result<String>;

    /// Waits until every acknowledged write is durable and stops accepting new ones.
    async fn close(&self);
}
