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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Annotator,
    Reviewer,
    Manager,
}

impl Role {
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

/// Whether a rater with `rater_locales` may take an item in `item_locale`: an exact match
/// (case-insensitive), or a rater locale that is just the item's language (`ar` takes `ar-QA`).
pub fn locale_matches(rater_locales: &[String], item_locale: &str) -> bool {
    let item = item_locale.to_ascii_lowercase();
    let item_language = item.split('-').next().unwrap_or_default();
    rater_locales.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l == item || (!l.contains('-') && l == item_language)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales() {
        assert!(valid_locale("ar-QA") && valid_locale("en") && valid_locale("zh-Hant-TW"));
        assert!(!valid_locale("") && !valid_locale("english") && !valid_locale("en_GB"));
        let rater = vec!["ar".to_string(), "en-GB".to_string()];
        assert!(locale_matches(&rater, "ar-QA"));
        assert!(locale_matches(&rater, "en-gb"));
        assert!(!locale_matches(&rater, "en-US"));
    }
}
