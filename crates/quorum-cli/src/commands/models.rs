//! `quorum models` (the registry) and `quorum run` (collect models' answers), straight against
//! the database like `import` and `export`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use quorum_app::evaluation::llm::RetryPolicy;
use quorum_app::evaluation::runs::RunRequest;

use quorum_store::{ModelSpec, Store};
use serde_json::Value;

use super::{AnyStore, caller, open_store};
use crate::cli::{ModelsCommand, RunArgs};

pub async fn models(command: ModelsCommand) -> anyhow::Result<()> {
    let database = match &command {
        ModelsCommand::Add { database, .. } | ModelsCommand::List { database } => database,
    };
    match open_store(database).await? {
        AnyStore::Sqlite(store) => models_with(store, command).await,
        AnyStore::Postgres(store) => models_with(store, command).await,
    }
}

/// `key=value` generation parameters; values are read as JSON when they parse, else as text.
fn parameters(pairs: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--param must be KEY=VALUE, got `{pair}`"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        map.insert(key.trim().to_string(), value);
    }
    Ok(Value::Object(map))
}

#[expect(clippy::print_stdout, reason = "the command's output")]
async fn models_with<S: Store>(store: S, command: ModelsCommand) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let app = match &command {
        ModelsCommand::Add { database, .. } | ModelsCommand::List { database } => {
            database.app(Arc::clone(&store))?
        }
    };
    let result = async {
        match command {
            ModelsCommand::Add {
                name,
                base_url,
                model_id,
                api_key_env,
                param,
                user,
                ..
            } => {
                let caller = caller(&app, &user).await?;
                let model = ModelSpec {
                    name: name.clone(),
                    base_url,
                    model_id,
                    api_key_env,
                    parameters: parameters(&param)?,
                    created_at: 0,
                };
                app.register_model(&caller, model).await?;
                println!("registered {name}");
            }
            ModelsCommand::List { .. } => {
                for m in app.store().models().await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        m.name,
                        m.base_url.as_deref().unwrap_or("(imported answers)"),
                        m.model_id.as_deref().unwrap_or(&m.name),
                        m.api_key_env.as_deref().unwrap_or("-"),
                        m.parameters
                    );
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    match open_store(&args.database).await? {
        AnyStore::Sqlite(store) => run_with(store, args).await,
        AnyStore::Postgres(store) => run_with(store, args).await,
    }
}

#[expect(clippy::print_stderr, reason = "the run's report")]
async fn run_with<S: Store>(store: S, args: RunArgs) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let app = args.database.app(Arc::clone(&store))?;
    let result = async {
        let caller = caller(&app, &args.user).await?;
        let request = RunRequest {
            models: args.models.clone(),
            concurrency: args.concurrency,
            policy: RetryPolicy {
                max_attempts: args.max_attempts,
                timeout: Duration::from_secs(args.timeout),
                ..RetryPolicy::default()
            },
        };
        app.check_run(&caller, args.project, &request).await?;
        // One bar per model, from what is already answered.
        let before = app.run_progress(&caller, args.project).await?;
        let prompts = app.stats(&caller, args.project).await?.items.max(0) as u64;
        let bars = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>20} {wide_bar} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar_of: Vec<(String, ProgressBar)> = args
            .models
            .iter()
            .map(|name| {
                let bar = bars.add(ProgressBar::new(prompts));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                let done = before
                    .iter()
                    .find(|p| &p.model == name)
                    .map_or(0, |p| p.answered as u64);
                bar.set_position(done);
                (name.clone(), bar)
            })
            .collect();
        let on_answer = |model: &str| {
            if let Some((_, bar)) = bar_of.iter().find(|(name, _)| name == model) {
                bar.inc(1);
            }
        };
        let progress = app
            .run_models(&caller, args.project, request, &on_answer)
            .await?;
        for (_, bar) in &bar_of {
            bar.finish_and_clear();
        }
        let mut failed = 0;
        for p in progress.iter().filter(|p| args.models.contains(&p.model)) {
            eprintln!(
                "{}: {}/{} answered, {} failed, {} calls this run",
                p.model, p.answered, p.prompts, p.failed, p.calls
            );
            failed += p.failed;
        }
        if failed > 0 {
            anyhow::bail!(
                "{failed} prompt(s) have no answer; run the same command again to retry only those"
            );
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}
