//! Reports of a standard's run: what was evaluated (hashes), by whom (raters per locale, judges),
//! with what agreement, and the boards; signed with the instance's Ed25519 key. A report is
//! verified against its own content (signature, the standard's hash recomputed from the spec
//! and item hashes, each public item's hash) and two reports of one standard are compared.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use quorum_core::Role;
use quorum_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ExposurePolicy, JudgePolicy, Spec, Standard, StandardItem, canonical_json, hash_of};
use crate::evaluation::SliceBy;
use crate::evaluation::arena::{Report as ArenaReport, ReportOptions};
use crate::evaluation::judges::JudgeReport;
use crate::quality::QuestionAgreement;
use crate::{App, AppError, Caller};
use quorum_core::schema::QuestionKind;
use quorum_stats::classification::Method;

pub const FORMAT: &str = "quorum-standard-report/1";

/// One item as the report names it: always its hash, its content only when public.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportItem {
    pub id: String,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<StandardItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportModel {
    pub name: String,
    pub model_id: Option<String>,
    pub parameters: Value,
}

/// The report itself (what is signed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StandardReport {
    pub format: String,
    pub standard_hash: String,
    pub spec: Spec,
    pub items: Vec<ReportItem>,
    pub quorum_version: String,
    pub models: Vec<ReportModel>,
    /// Distinct human raters per rater locale (their first in the project).
    pub raters_by_locale: BTreeMap<String, usize>,
    pub human_ratings: usize,
    pub judges: Vec<String>,
    /// Krippendorff's alpha per question, overall and per rater locale.
    pub agreement: Vec<QuestionAgreement>,
    /// The arena board of the first pairwise question, with bootstrap intervals.
    pub leaderboard: ArenaReport,
    /// Per slice named by the standard: its boards and where they diverge.
    pub slices: BTreeMap<String, ArenaReport>,
    /// Each LLM judge against the human consensus.
    pub judge_agreement: Vec<JudgeReport>,
    /// Per label and rating question: how many battles' consensus gave each answer, by the
    /// standard's method for the question (labels), or the median (ratings).
    pub consensus: BTreeMap<String, BTreeMap<String, usize>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportSignature {
    pub algorithm: String,
    /// Hex of the instance's Ed25519 public key.
    pub public_key: String,
    /// Hex of the signature over the report's canonical JSON.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedReport {
    pub report: StandardReport,
    pub signature: ReportSignature,
}

/// A model's place on two boards of the same standard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedModel {
    pub model: String,
    pub a: Option<(f64, Option<f64>, Option<f64>)>,
    pub b: Option<(f64, Option<f64>, Option<f64>)>,
    pub difference: Option<f64>,
    /// Each board's rating lies within the other's interval.
    pub within_intervals: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub standard_hash: String,
    pub models: Vec<ComparedModel>,
    /// Every rating, interval and battle count is the same.
    pub equal: bool,
}

const KEY_SETTING: &str = "report-signing-key";

/// What checking a standard's requirements read, kept for its report.
struct Checked {
    run: quorum_store::StandardRun,
    missing: Vec<String>,
    raters_by_locale: BTreeMap<String, usize>,
    human_ratings: usize,
    judges: Vec<JudgeReport>,
}

/// The model rows of a report's overall board: name → (rating, lower, upper, battles).
fn board_rows(report: &ArenaReport) -> BTreeMap<String, (f64, Option<f64>, Option<f64>, u64)> {
    report
        .boards
        .first()
        .into_iter()
        .flat_map(|board| &board.models)
        .map(|m| (m.model.clone(), (m.rating, m.lower, m.upper, m.battles)))
        .collect()
}

impl SignedReport {
    /// Checks the signature, the standard's hash and each item's hash; every failure is listed.
    pub fn verify(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let report = &self.report;
        if report.format != FORMAT {
            problems.push(format!("unknown report format `{}`", report.format));
        }
        let message = canonical_json(&serde_json::to_value(report).unwrap_or(Value::Null));
        let key = hex::decode(&self.signature.public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok());
        let signature = hex::decode(&self.signature.value)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b));
        match (key, signature) {
            (Some(key), Some(signature)) if self.signature.algorithm == "ed25519" => {
                if key.verify(message.as_bytes(), &signature).is_err() {
                    problems.push(
                        "the signature does not match the report: it was changed after signing"
                            .into(),
                    );
                }
            }
            _ => problems.push("the signature or its public key is malformed".into()),
        }
        let hash = report.spec.hash();
        if hash != report.standard_hash {
            problems.push(format!(
                "the standard's hash is {}, but its spec and item hashes hash to {hash}",
                report.standard_hash
            ));
        }
        let listed: Vec<(String, String)> = report
            .items
            .iter()
            .map(|i| (i.id.clone(), i.hash.clone()))
            .collect();
        if listed != report.spec.items {
            problems.push("the items listed differ from the standard's item hashes".into());
        }
        for item in &report.items {
            if let Some(content) = &item.item
                && (hash_of(content) != item.hash || content.id != item.id)
            {
                problems.push(format!("item `{}` does not match its hash", item.id));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Two verified reports of the same standard, board against board.
    pub fn compare(&self, other: &SignedReport) -> Result<Comparison, AppError> {
        for (name, report) in [("the first", self), ("the second", other)] {
            report.verify().map_err(|problems| {
                AppError::invalid(format!(
                    "{name} report does not verify: {}",
                    problems.join("; ")
                ))
            })?;
        }
        if self.report.standard_hash != other.report.standard_hash {
            return Err(AppError::invalid(format!(
                "the reports are of different standards ({} and {}): their numbers are not comparable",
                self.report.standard_hash, other.report.standard_hash
            )));
        }
        let (a, b) = (
            board_rows(&self.report.leaderboard),
            board_rows(&other.report.leaderboard),
        );
        let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        let inside = |value: f64, row: &(f64, Option<f64>, Option<f64>, u64)| {
            row.1.is_some_and(|l| l <= value + 1e-9) && row.2.is_some_and(|u| value <= u + 1e-9)
        };
        let mut equal = a.len() == b.len();
        let models = names
            .into_iter()
            .map(|name| {
                let (ra, rb) = (a.get(name), b.get(name));
                if ra.map(|r| (r.0, r.1, r.2, r.3)) != rb.map(|r| (r.0, r.1, r.2, r.3)) {
                    equal = false;
                }
                ComparedModel {
                    model: name.clone(),
                    a: ra.map(|r| (r.0, r.1, r.2)),
                    b: rb.map(|r| (r.0, r.1, r.2)),
                    difference: ra.zip(rb).map(|(x, y)| y.0 - x.0),
                    within_intervals: ra
                        .zip(rb)
                        .is_some_and(|(x, y)| inside(x.0, y) && inside(y.0, x)),
                }
            })
            .collect();
        Ok(Comparison {
            standard_hash: self.report.standard_hash.clone(),
            models,
            equal,
        })
    }
}

impl<S: Store> App<S> {
    /// The instance's report-signing key: the operator's (from a file or the environment) when
    /// one was given, else one made on first use and kept in the database.
    async fn signing_key(&self) -> Result<SigningKey, AppError> {
        if let Some(seed) = self.operator_signing_key() {
            return Ok(SigningKey::from_bytes(seed));
        }
        let mut fresh = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut fresh);
        let stored = self
            .store()
            .instance_setting(KEY_SETTING, hex::encode(fresh))
            .await?;
        let bytes = hex::decode(stored)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| AppError::Internal("the stored signing key is malformed".into()))?;
        Ok(SigningKey::from_bytes(&bytes))
    }

    /// What the standard still needs before it may be reported (nothing: it may).
    pub async fn standard_missing(
        &self,
        caller: &Caller,
        standard: &Standard,
    ) -> Result<Vec<String>, AppError> {
        Ok(self.check_standard(caller, standard).await?.missing)
    }

    /// The standard's latest run here, what it still needs, and the counts the check read.
    async fn check_standard(
        &self,
        caller: &Caller,
        standard: &Standard,
    ) -> Result<Checked, AppError> {
        let run = self.latest_run(standard).await?;
        // Those who may not read the report are told there is none, as for any id they may not
        // see: a 403 would confirm the standard was run here.
        match self.role_in(caller, run.battles_project_id).await {
            Ok((_, role)) if role >= Role::Reviewer => {}
            Ok(_) | Err(AppError::NotFound(_)) => return Err(AppError::NotFound("standard")),
            Err(error) => return Err(error),
        }
        let spec = &standard.spec;
        let mut missing = Vec::new();
        let min = i32::try_from(spec.raters.min_ratings_per_item).unwrap_or(i32::MAX);
        let items = self.all_items(run.battles_project_id).await?;
        let models = run.models.len();
        let expected = standard.items.len() * models * models.saturating_sub(1) / 2;
        if items.len() < expected {
            missing.push(format!(
                "{} of the {expected} battles exist (every pair of models on every item)",
                items.len()
            ));
        }
        let short = items.iter().filter(|i| i.responses < min).count();
        if short > 0 {
            missing.push(format!(
                "{short} of {} battles have fewer than {min} human ratings",
                items.len()
            ));
        }
        let by_locale = self.raters_by_locale(run.battles_project_id).await?;
        for requirement in &spec.raters.locales {
            let have = by_locale
                .iter()
                .filter(|(l, _)| l.eq_ignore_ascii_case(&requirement.locale))
                .map(|(_, n)| *n)
                .sum::<usize>();
            if have < requirement.min_raters as usize {
                missing.push(format!(
                    "raters of {}: {have} of the {} required",
                    requirement.locale, requirement.min_raters
                ));
            }
        }
        let judges = self.judge_reports(caller, run.battles_project_id).await?;
        if spec.judges.policy != JudgePolicy::Humans
            && let Some(model) = &spec.judges.model
        {
            let judged = judges
                .iter()
                .find(|j| &j.judge == model)
                .map_or(0, |j| j.judged);
            if judged < items.len() {
                missing.push(format!(
                    "the judge {model} has judged {judged} of {} battles",
                    items.len()
                ));
            }
        }
        Ok(Checked {
            human_ratings: items.iter().map(|i| i.responses.max(0) as usize).sum(),
            run,
            missing,
            raters_by_locale: by_locale,
            judges,
        })
    }

    async fn latest_run(&self, standard: &Standard) -> Result<quorum_store::StandardRun, AppError> {
        self.store()
            .standard_runs(&standard.hash)
            .await?
            .pop()
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "this instance has not run the standard {} (quorum standard run)",
                    standard.hash
                ))
            })
    }

    async fn raters_by_locale(&self, project_id: i64) -> Result<BTreeMap<String, usize>, AppError> {
        let rows = self.all_responses(project_id).await?;
        let locales = self.rater_locales(project_id, &rows).await?;
        let mut counts = BTreeMap::new();
        for locale in locales.values() {
            *counts.entry(locale.clone()).or_default() += 1;
        }
        Ok(counts)
    }

    /// The signed report of the standard's latest run here; refuses, saying what is missing,
    /// until the rater requirements are met.
    pub async fn report_standard(
        &self,
        caller: &Caller,
        standard: &Standard,
    ) -> Result<SignedReport, AppError> {
        let Checked {
            run,
            missing,
            raters_by_locale,
            human_ratings,
            judges,
        } = self.check_standard(caller, standard).await?;
        if !missing.is_empty() {
            return Err(AppError::Conflict(format!(
                "the standard's requirements are not met yet: {}",
                missing.join("; ")
            )));
        }
        let spec = &standard.spec;
        let project = run.battles_project_id;
        let options = ReportOptions {
            bootstrap: spec.scoring.bootstrap,
            seed: spec.scoring.seed,
            anchor: None,
            min_battles: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let leaderboard = self
            .project_leaderboard(caller, project, None, options.clone())
            .await?;
        let mut slices = BTreeMap::new();
        for slice in &spec.report.slices {
            let by = match slice.as_str() {
                "rater_locale" => SliceBy::RaterLocale,
                "category" => SliceBy::Category,
                _ => SliceBy::Language,
            };
            let report = self
                .project_leaderboard(caller, project, Some(by), options.clone())
                .await?;
            slices.insert(slice.clone(), report);
        }
        let schema = spec.schema().map_err(AppError::invalid)?;
        let mut consensus: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut by_method: HashMap<&'static str, Vec<crate::quality::ItemConsensus>> =
            HashMap::new();
        for question in &schema.questions {
            let method = match question.kind {
                QuestionKind::Label { .. } => spec.label_method(&question.name),
                QuestionKind::Rating { .. } => Method::DawidSkene,
                _ => continue,
            };
            if !by_method.contains_key(method.short_name()) {
                let all = self.project_consensus(project, &schema, method).await?;
                by_method.insert(method.short_name(), all);
            }
            let counts = consensus.entry(question.name.clone()).or_default();
            for c in by_method[method.short_name()]
                .iter()
                .filter(|c| c.question == question.name)
            {
                let answer = c
                    .answer
                    .as_str()
                    .map_or_else(|| c.answer.to_string(), str::to_string);
                *counts.entry(answer).or_default() += 1;
            }
        }
        let registered: HashMap<String, quorum_store::ModelSpec> = self
            .store()
            .models()
            .await?
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        let public = spec.exposure.policy == ExposurePolicy::Public;
        let content: HashMap<&str, &StandardItem> =
            standard.items.iter().map(|i| (i.id.as_str(), i)).collect();
        let report = StandardReport {
            format: FORMAT.into(),
            standard_hash: standard.hash.clone(),
            spec: spec.clone(),
            items: spec
                .items
                .iter()
                .map(|(id, hash)| ReportItem {
                    id: id.clone(),
                    hash: hash.clone(),
                    item: public
                        .then(|| content.get(id.as_str()).map(|i| (*i).clone()))
                        .flatten(),
                })
                .collect(),
            quorum_version: env!("CARGO_PKG_VERSION").into(),
            models: run
                .models
                .iter()
                .map(|name| ReportModel {
                    name: name.clone(),
                    model_id: registered.get(name).and_then(|m| m.model_id.clone()),
                    parameters: registered
                        .get(name)
                        .map_or(Value::Null, |m| m.parameters.clone()),
                })
                .collect(),
            raters_by_locale,
            human_ratings,
            judges: judges.iter().map(|j| j.judge.clone()).collect(),
            agreement: self.agreement(caller, project).await?,
            leaderboard,
            slices,
            judge_agreement: judges,
            consensus,
        };
        let key = self.signing_key().await?;
        let message = canonical_json(&serde_json::to_value(&report).unwrap_or(Value::Null));
        let signature = ReportSignature {
            algorithm: "ed25519".into(),
            public_key: hex::encode(key.verifying_key().to_bytes()),
            value: hex::encode(key.sign(message.as_bytes()).to_bytes()),
        };
        // Signing is deterministic: the same report gets the same signature, and its event is
        // recorded once, however often the report is asked for.
        let subject = serde_json::json!({
            "standard_hash": standard.hash, "name": spec.standard.name,
            "version": spec.standard.version, "public_key": signature.public_key,
            "signature": signature.value,
        });
        let once = format!("report:{}:{}", standard.hash, signature.value);
        self.store()
            .record_event(
                Some(project),
                "standard.report_signed",
                subject,
                Some(once),
                self.now(),
            )
            .await?;
        Ok(SignedReport { report, signature })
    }
}
