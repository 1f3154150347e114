//! `quorum standard`: hash, validate, run, report, verify and compare evaluation standards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quorum_app::evaluation::llm::RetryPolicy;
use quorum_app::standards::report::SignedReport;
use quorum_app::standards::run::RunOptions;
use quorum_app::standards::{self, Standard};

use quorum_store::Store;

use super::{AnyStore, caller, open_store};
use crate::cli::StandardCommand;
use crate::tables::InputError;

/// Loads a standard; its problems, one per line, as the user's input error.
fn load(path: &Path) -> anyhow::Result<Standard> {
    standards::load(path).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        InputError::new(
            path,
            None,
            format!("{} problem(s):\n  {}", problems.len(), list.join("\n  ")),
        )
        .into()
    })
}

fn read_report(path: &Path) -> anyhow::Result<SignedReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        InputError::new(
            path,
            Some(e.line() as u64),
            format!("not a signed Quorum report: {e}"),
        )
        .into()
    })
}

#[expect(clippy::print_stdout, reason = "the command's output")]
pub async fn run(command: StandardCommand) -> anyhow::Result<()> {
    match command {
        StandardCommand::Hash { file } => {
            let standard = load(&file)?;
            println!("{}", standard.hash);
            for (id, hash) in &standard.spec.items {
                println!("{hash}\t{id}");
            }
            Ok(())
        }
        StandardCommand::Validate { file } => {
            let standard = load(&file)?;
            println!(
                "{} {}: valid, {} items, {}",
                standard.spec.standard.name,
                standard.spec.standard.version,
                standard.items.len(),
                standard.hash
            );
            Ok(())
        }
        StandardCommand::Verify { report, standard } => {
            let signed = read_report(&report)?;
            if let Err(problems) = signed.verify() {
                anyhow::bail!(
                    "{} does not verify:\n  {}",
                    report.display(),
                    problems.join("\n  ")
                );
            }
            if let Some(file) = standard {
                let standard = load(&file)?;
                anyhow::ensure!(
                    standard.hash == signed.report.standard_hash,
                    "the report is of standard {}, not of {} ({})",
                    signed.report.standard_hash,
                    file.display(),
                    standard.hash
                );
            }
            println!(
                "verified: {} {} ({}), signed by {}",
                signed.report.spec.standard.name,
                signed.report.spec.standard.version,
                signed.report.standard_hash,
                signed.signature.public_key
            );
            Ok(())
        }
        StandardCommand::Compare { a, b } => {
            let (first, second) = (read_report(&a)?, read_report(&b)?);
            let comparison = first.compare(&second)?;
            println!("standard {}", comparison.standard_hash);
            println!("model\tA\tA interval\tB\tB interval\tB − A\twithin intervals");
            let show = |r: Option<(f64, Option<f64>, Option<f64>)>| match r {
                Some((v, lo, hi)) => (
                    format!("{v:.2}"),
                    format!(
                        "{} – {}",
                        lo.map_or("–".into(), |l| format!("{l:.2}")),
                        hi.map_or("–".into(), |h| format!("{h:.2}"))
                    ),
                ),
                None => ("absent".into(), String::new()),
            };
            for m in &comparison.models {
                let ((a, ai), (b, bi)) = (show(m.a), show(m.b));
                println!(
                    "{}\t{a}\t{ai}\t{b}\t{bi}\t{}\t{}",
                    m.model,
                    m.difference.map_or("–".into(), |d| format!("{d:+.2}")),
                    if m.within_intervals { "yes" } else { "no" }
                );
            }
            println!(
                "{}",
                if comparison.equal {
                    "the boards are equal"
                } else {
                    "the boards differ"
                }
            );
            Ok(())
        }
        StandardCommand::Run {
            file,
            database,
            models,
            concurrency,
            max_attempts,
            timeout,
            user,
        } => {
            let standard = load(&file)?;
            let options = RunOptions {
                models,
                concurrency,
                policy: RetryPolicy {
                    max_attempts,
                    timeout: Duration::from_secs(timeout),
                    ..RetryPolicy::default()
                },
            };
            match open_store(&database).await? {
                AnyStore::Sqlite(store) => {
                    run_with(store, &standard, options, &user, &database).await
                }
                AnyStore::Postgres(store) => {
                    run_with(store, &standard, options, &user, &database).await
                }
            }
        }
        StandardCommand::Report {
            file,
            database,
            out,
            user,
        } => {
            let standard = load(&file)?;
            let signed = match open_store(&database).await? {
                AnyStore::Sqlite(store) => report_with(store, &standard, &user, &database).await?,
                AnyStore::Postgres(store) => {
                    report_with(store, &standard, &user, &database).await?
                }
            };
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let json = serde_json::to_string_pretty(&signed)?;
            std::fs::write(out.join("report.json"), json + "\n")?;
            std::fs::write(
                out.join("report.html"),
                quorum_server::standard_report_html(&signed),
            )?;
            println!(
                "wrote {} and {}",
                out.join("report.json").display(),
                out.join("report.html").display()
            );
            Ok(())
        }
    }
}

#[expect(clippy::print_stdout, reason = "the command's output")]
async fn run_with<S: Store>(
    store: S,
    standard: &Standard,
    options: RunOptions,
    user: &str,
    database: &crate::cli::DatabaseArgs,
) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let app = database.app(Arc::clone(&store))?;
    let result = async {
        let caller = caller(&app, user).await?;
        let run = app.run_standard(&caller, standard, options, &|_| {}).await?;
        println!(
            "ran {} ({}): prompts in project {}, battles in project {} ({})",
            standard.spec.standard.name,
            standard.hash,
            run.prompts_project_id,
            run.battles_project_id,
            run.models.join(", ")
        );
        println!(
            "add raters to project {} and collect answers; `quorum standard report` says what is still missing",
            run.battles_project_id
        );
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn report_with<S: Store>(
    store: S,
    standard: &Standard,
    user: &str,
    database: &crate::cli::DatabaseArgs,
) -> anyhow::Result<SignedReport> {
    let store = Arc::new(store);
    let app = database.app(Arc::clone(&store))?;
    let result = async {
        let caller = caller(&app, user).await?;
        anyhow::Ok(app.report_standard(&caller, standard).await?)
    }
    .await;
    store.close().await;
    result
}
