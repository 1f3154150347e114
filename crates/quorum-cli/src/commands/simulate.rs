//! `quorum simulate`: replays a crowd data set (`labels.csv`, `gold.csv`) through a real
//! project — the real assignment and submission path on a temporary SQLite database — with
//! answers arriving in a random order, and reports the answers used and the accuracy of the
//! consensus against gold. With `--target`, items settle by dynamic overlap.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use quorum_app::{App, Caller, CreateProject, ImportFormat, SubmitAnswers, SystemClock};
use quorum_stats::classification::Method;
use quorum_stats::rng::SplitMix64;
use quorum_store::{Accounts, Member, NewUser, Projects, Store};
use quorum_store_sqlite::SqliteStore;
use serde_json::{Map, Value, json};

use crate::cli::SimulateArgs;
use crate::tables::{InputError, for_each_row};

/// What a run came to.
#[derive(Debug)]
struct Outcome {
    answers_used: i64,
    answers_available: usize,
    accuracy: f64,
    gold_items: usize,
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let labels_path = args.dataset.join("labels.csv");
    let gold_path = args.dataset.join("gold.csv");
    // The data set: each task's answers by worker, and the gold labels.
    let mut answers: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut label_set = std::collections::BTreeSet::new();
    for_each_row(&labels_path, &["task", "worker", "label"], |_, f| {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        label_set.insert(text(f[2]));
        answers
            .entry(text(f[0]))
            .or_default()
            .insert(text(f[1]), text(f[2]));
        Ok(())
    })?;
    let mut gold: HashMap<String, String> = HashMap::new();
    for_each_row(&gold_path, &["task", "label"], |_, f| {
        gold.insert(
            String::from_utf8_lossy(f[0]).into_owned(),
            String::from_utf8_lossy(f[1]).into_owned(),
        );
        Ok(())
    })?;
    if answers.is_empty() {
        return Err(InputError::new(&labels_path, None, "no answers").into());
    }
    // A random sample of tasks: every rater walks the whole queue (skipping what their worker
    // never answered), so the replay's work grows with tasks × workers.
    if let Some(n) = args.sample.filter(|n| *n < answers.len()) {
        let mut tasks: Vec<String> = answers.keys().cloned().collect();
        tasks.sort();
        let mut rng = SplitMix64::stream(args.seed, 1);
        for i in (1..tasks.len()).rev() {
            tasks.swap(i, rng.below(i + 1));
        }
        let keep: std::collections::HashSet<String> = tasks.into_iter().take(n).collect();
        answers.retain(|task, _| keep.contains(task));
        gold.retain(|task, _| keep.contains(task));
    }
    let outcome = replay(
        &args,
        &answers,
        &label_set.into_iter().collect::<Vec<_>>(),
        &gold,
    )
    .await?;
    let policy = match (args.min_overlap, args.target) {
        (Some(min), Some(target)) => format!("dynamic (min {min}, target {target})"),
        _ => "every answer".to_string(),
    };
    let mut name = args
        .dataset
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(n) = args.sample {
        name.push_str(&format!(" (sample of {n} tasks)"));
    }
    report(&format!(
        "{name}\t{policy}\tanswers used {} of {} ({:.1}%)\taccuracy {:.4} on {} gold items",
        outcome.answers_used,
        outcome.answers_available,
        100.0 * outcome.answers_used as f64 / outcome.answers_available as f64,
        outcome.accuracy,
        outcome.gold_items
    ));
    Ok(())
}

#[expect(clippy::print_stdout, reason = "the command's report")]
fn report(line: &str) {
    println!("{line}");
}

async fn replay(
    args: &SimulateArgs,
    answers: &HashMap<String, HashMap<String, String>>,
    labels: &[String],
    gold: &HashMap<String, String>,
) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let store = Arc::new(
        SqliteStore::open(
            dir.path()
                .join("simulate.sqlite3")
                .to_str()
                .unwrap_or_default(),
        )
        .await?,
    );
    let app = App::new(Arc::clone(&store), Arc::new(SystemClock));
    let result = async {
        let (admin, _) = app
            .bootstrap_admin(Some("simulation".into()))
            .await?
            .context("a fresh database has no users")?;
        let admin = Caller { user: admin };
        let most = answers.values().map(HashMap::len).max().unwrap_or(1) as i32;
        let project = app
            .create_project(
                &admin,
                CreateProject {
                    name: "simulation".into(),
                    instructions: String::new(),
                    schema: json!({
                        "fields": [{"name": "task", "kind": "text"}],
                        "questions": [{"name": "label", "kind": "label", "options": labels, "required": true}]
                    }),
                    overlap: most,
                    lease_seconds: 3600,
                    locale_policy: Default::default(),
                    min_overlap: args.min_overlap,
                    target_confidence: args.target,
                    quality: Default::default(),
                },
            )
            .await?;
        // Items in a random order (random priorities), so raters meet them in no set order.
        let mut rng = SplitMix64::new(args.seed);
        let mut tasks: Vec<&String> = answers.keys().collect();
        tasks.sort();
        let lines: String = tasks
            .iter()
            .map(|t| {
                format!(
                    "{}\n",
                    json!({"external_id": t, "fields": {"task": t}, "priority": rng.below(1_000_000) as i64})
                )
            })
            .collect();
        app.import(&admin, project.id, ImportFormat::Json, &lines).await?;
        // One rater per worker.
        let mut workers: Vec<&String> = answers.values().flat_map(HashMap::keys).collect();
        workers.sort();
        workers.dedup();
        let mut raters = Vec::with_capacity(workers.len());
        for (i, worker) in workers.iter().enumerate() {
            let user = app
                .store()
                .create_user(NewUser {
                    name: format!("w{i}"),
                    // No password can match this hash: simulated raters cannot sign in.
                    password_hash: "!".into(),
                    is_admin: false,
                    created_at: 0,
                })
                .await?;
            app.store()
                .upsert_member(Member {
                    project_id: project.id,
                    user_id: user.id,
                    role: quorum_core::Role::Annotator,
                    locales: vec![],
                    skills: vec![],
                })
                .await?;
            raters.push((Caller { user }, worker.as_str()));
        }
        // Raters arrive in a random order; each takes the item assignment gives them and
        // answers it as the data set says, or skips it if they never answered it.
        let mut active: Vec<usize> = (0..raters.len()).collect();
        while !active.is_empty() {
            let pick = rng.below(active.len());
            let (caller, worker) = &raters[active[pick]];
            let Some(assignment) = app.next(caller, project.id).await? else {
                active.swap_remove(pick);
                continue;
            };
            let task = assignment.item.fields["task"].as_str().unwrap_or_default();
            match answers.get(task).and_then(|a| a.get(*worker)) {
                Some(label) => {
                    let mut answer = Map::new();
                    answer.insert("label".into(), Value::String(label.clone()));
                    app.submit(
                        caller,
                        assignment.lease.id,
                        SubmitAnswers {
                            answers: answer,
                            time_spent_ms: 0,
                        },
                        None,
                    )
                    .await?;
                }
                None => app.skip(caller, assignment.lease.id).await?,
            }
        }
        let consensus = app.consensus(&admin, project.id, Method::DawidSkene).await?;
        let (mut right, mut judged) = (0usize, 0usize);
        for c in &consensus {
            if let Some(truth) = c.external_id.as_ref().and_then(|t| gold.get(t)) {
                judged += 1;
                right += usize::from(c.answer.as_str() == Some(truth.as_str()));
            }
        }
        let stats = app.stats(&admin, project.id).await?;
        anyhow::Ok(Outcome {
            answers_used: stats.responses,
            answers_available: answers.values().map(HashMap::len).sum(),
            accuracy: right as f64 / judged.max(1) as f64,
            gold_items: judged,
        })
    }
    .await;
    store.close().await;
    result
}
