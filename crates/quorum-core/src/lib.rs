//! Quorum's domain: what a project asks (its [`schema::Schema`]), what an item shows
//! ([`item::ItemInput`]), what a rater answers ([`answer`]) and who may do what ([`Role`]).
//!
//! Everything here is parsed once at the boundary and valid afterwards; nothing here does I/O.

pub mod answer;
pub mod item;
pub mod schema;

use serde::{Deserialize, Serialize};

/// A member's role in a project. Managers can do everything reviewers can, reviewers everything
/// annotators can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Annotator,
    Reviewer,
    Manager,
}

impl Role {
    /// Reviewers and managers: dashboards, consensus, agreement, the review queue.
    pub fn can_review(self) -> bool {
        self >= Role::Reviewer
    }

    /// Managers: imports, exports, members, rules, runs.
    pub fn can_manage(self) -> bool {
        self >= Role::Manager
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Annotator => "annotator",
            Role::Reviewer => "reviewer",
            Role::Manager => "manager",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "annotator" => Some(Role::Annotator),
            "reviewer" => Some(Role::Reviewer),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
}

/// Checks a BCP 47 language tag's shape (`ar`, `ar-QA`, `zh-Hant-TW`): letters and digits in
/// hyphen-separated subtags, a 2–3 letter primary language. Registry membership is not checked.
pub fn valid_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let Some(language) = parts.next() else {
        return false;
    };
    (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// A rater's locales as routing keys (lower-cased): full tags match an item's locale exactly,
/// bare languages (`ar`) match every item in that language (`ar-QA`, `ar-EG`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocaleFilter {
    pub tags: Vec<String>,
    pub languages: Vec<String>,
}

impl LocaleFilter {
    pub fn new(rater_locales: &[String]) -> Self {
        let mut filter = LocaleFilter::default();
        for locale in rater_locales {
            let key = locale.to_ascii_lowercase();
            if key.contains('-') {
                filter.tags.push(key)
            } else {
                filter.languages.push(key)
            }
        }
        filter
    }

    /// Whether an item in `item_locale` passes the filter.
    pub fn admits(&self, item_locale: &str) -> bool {
        let (tag, language) = locale_keys(item_locale);
        self.tags.contains(&tag) || self.languages.contains(&language)
    }
}

/// An item locale's routing keys: the lower-cased tag and its primary language.
pub fn locale_keys(tag: &str) -> (String, String) {
    let tag = tag.to_ascii_lowercase();
    let language = tag.split('-').next().unwrap_or_default().to_string();
    (tag, language)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales() {
        assert!(valid_locale("ar-QA") && valid_locale("en") && valid_locale("zh-Hant-TW"));
        assert!(!valid_locale("") && !valid_locale("english") && !valid_locale("en_GB"));
        let rater = LocaleFilter::new(&["ar".to_string(), "en-GB".to_string()]);
        assert!(rater.admits("ar-QA"));
        assert!(rater.admits("en-gb"));
        assert!(!rater.admits("en-US"));
    }
}
