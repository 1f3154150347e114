//! Projects: their settings, members and items.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use quorum_core::Role;
use quorum_core::item::Item;
use quorum_core::schema::Schema;

use crate::{QualityPolicy, Result};

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
    /// Validated when the project was made; parsed once when read.
    pub schema: Schema,
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

#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    pub instructions: String,
    /// Validated when the project was made; parsed once when read.
    pub schema: Schema,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
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

/// One rater in a project: who they are, their role and skips (from the store), their answers
/// (from the project's tally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaterActivity {
    pub user_id: i64,
    pub name: String,
    pub responses: i64,
    pub skips: i64,
    /// When their last response was created.
    pub last_active: Option<i64>,
    /// Their role in the project (`None` for a past responder who is no longer a member).
    pub role: Option<String>,
}

#[async_trait]
pub trait Projects {
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
    /// A project's items with `id > after`, in id order.
    async fn items(&self, project_id: i64, after: i64, limit: i64) -> Result<Vec<StoredItem>>;
    async fn stats(&self, project_id: i64, overlap: i32, now: i64) -> Result<ProjectStats>;
    /// The project's members and the given past responders, by name, with their role and
    /// skips; response counts are left at zero (a tally has them).
    async fn roster(&self, project_id: i64, responders: Vec<i64>) -> Result<Vec<RaterActivity>>;
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
