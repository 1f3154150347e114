//! The preference-pair import reader: pairs as the DPO export writes them become items of a
//! pairwise project with the known preference as gold.

use quorum_core::item::ItemInput;
use quorum_core::schema::Schema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{AppError, ParsedRow};

/// FNV-1a: a stable hash (the same on every platform and release) for choosing sides.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One line of a preference-pair file (the DPO layout).
#[derive(Debug, Clone, Deserialize)]
struct PreferencePair {
    #[serde(default)]
    id: Option<String>,
    prompt: Value,
    chosen: String,
    rejected: String,
}

/// Reads preference pairs (JSON Lines of `{id, prompt, chosen, rejected}`, as the DPO export
/// writes them) as items of a pairwise project: the prompt, the two answers as responses A and
/// B — the chosen one on a side drawn from a hash of the id, so position gives nothing away —
/// and the known preference as the item's gold answer. `id` becomes the external id.
pub fn dpo_items<'a>(
    body: &'a str,
    schema: &Schema,
) -> Result<impl Iterator<Item = ParsedRow> + 'a, AppError> {
    let (prompt, _) = schema.prompt_field().ok_or_else(|| {
        AppError::invalid("the project needs a text, markdown or chat field for the prompt")
    })?;
    let prompt = prompt.to_string();
    let responses = schema
        .responses_field()
        .ok_or_else(|| AppError::invalid("the project needs a responses field for the pair"))?
        .to_string();
    let question = schema
        .pairwise_question()
        .ok_or_else(|| AppError::invalid("the project needs a pairwise question"))?
        .to_string();
    Ok(body
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(move |(i, line)| {
            let row = (i + 1) as u64;
            let parsed = serde_json::from_str::<PreferencePair>(line)
                .map_err(|e| format!("not a preference pair (id, prompt, chosen, rejected): {e}"))
                .map(|pair| {
                    let chosen_first = pair.id.as_deref().map_or(row, stable_hash) % 2 == 0;
                    let (a, b, preferred) = if chosen_first {
                        (pair.chosen, pair.rejected, "a")
                    } else {
                        (pair.rejected, pair.chosen, "b")
                    };
                    let mut fields = serde_json::Map::new();
                    fields.insert(prompt.clone(), pair.prompt);
                    fields.insert(
                        responses.clone(),
                        json!([{"name": "A", "content": a}, {"name": "B", "content": b}]),
                    );
                    let mut gold = serde_json::Map::new();
                    gold.insert(question.clone(), json!(preferred));
                    ItemInput {
                        external_id: pair.id,
                        fields,
                        gold: Some(gold),
                        ..ItemInput::default()
                    }
                });
            (row, parsed)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairwise_schema() -> Schema {
        Schema::parse(&json!({
            "fields": [{"name": "q", "kind": "text"}, {"name": "answers", "kind": "responses"}],
            "questions": [{"name": "better", "kind": "pairwise"}]
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn preference_pairs_become_gold_items_with_the_chosen_side_balanced() {
        let body: String = (0..1000)
            .map(|i| format!("{{\"id\": \"x{i}\", \"prompt\": \"p{i}\", \"chosen\": \"good\", \"rejected\": \"bad\"}}\n"))
            .collect();
        let rows: Vec<_> = dpo_items(&body, &pairwise_schema())
            .map(Iterator::collect)
            .unwrap_or_default();
        assert_eq!(rows.len(), 1000);
        let mut first = 0;
        for (_, parsed) in &rows {
            let item = parsed.clone().unwrap_or_default();
            let gold = item.gold.unwrap_or_default();
            let side = gold["better"].as_str().unwrap_or_default().to_string();
            let index = usize::from(side == "b");
            assert_eq!(item.fields["answers"][index]["content"], "good");
            first += usize::from(side == "a");
        }
        assert!(
            (430..=570).contains(&first),
            "chosen first {first} times of 1000"
        );
        let bad: Vec<_> = dpo_items("{\"prompt\": \"p\"}\n", &pairwise_schema())
            .map(Iterator::collect)
            .unwrap_or_default();
        assert!(bad[0].1.as_ref().is_err_and(|e| e.contains("chosen")));
    }
}
