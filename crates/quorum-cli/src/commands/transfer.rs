//! `quorum import` and `quorum export`: items in, responses out, straight against the database.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use quorum_app::export::Export;
use quorum_app::{App, ImportFormat, SystemClock};
use quorum_store::Store;

use super::{AnyStore, caller, open_store};
use crate::cli::{ExportArgs, ImportArgs, ItemFormat};
use crate::tables::InputError;

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    match open_store(&args.database).await? {
        AnyStore::Sqlite(store) => import_with(store, args).await,
        AnyStore::Postgres(store) => import_with(store, args).await,
    }
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    match open_store(&args.database).await? {
        AnyStore::Sqlite(store) => export_with(store, args).await,
        AnyStore::Postgres(store) => export_with(store, args).await,
    }
}

#[expect(clippy::print_stderr, reason = "the import's report")]
async fn import_with<S: Store>(store: S, args: ImportArgs) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let app = App::new(Arc::clone(&store), Arc::new(SystemClock));
    let result = async {
        let caller = caller(&app, &args.user).await?;
        let body = std::fs::read(&args.file)
            .map_err(|e| InputError::new(&args.file, None, format!("cannot read: {e}")))?;
        let extension = |wanted: &str| {
            args.file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case(wanted))
        };
        let format = match args.format {
            Some(ItemFormat::Csv) => Some(ImportFormat::Csv),
            Some(ItemFormat::Json) => Some(ImportFormat::Json),
            Some(ItemFormat::Dpo) => Some(ImportFormat::Dpo),
            Some(ItemFormat::Parquet) => None,
            None if extension("parquet") => None,
            None if extension("csv") => Some(ImportFormat::Csv),
            None => Some(ImportFormat::Json),
        };
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(format!("importing {}", args.file.display()));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let outcome = match format {
            None => app.import_parquet(&caller, args.project, body).await,
            Some(format) => {
                let text = String::from_utf8(body).map_err(|_| {
                    InputError::new(&args.file, None, "the file is not UTF-8 text".to_string())
                })?;
                app.import(&caller, args.project, format, &text).await
            }
        };
        spinner.finish_and_clear();
        let outcome = outcome.map_err(|e| match e {
            quorum_app::AppError::Invalid { message, details } => {
                let line = details.get("line").and_then(serde_json::Value::as_u64);
                anyhow::Error::new(InputError::new(&args.file, line, message))
            }
            other => anyhow::Error::new(other),
        })?;
        if !outcome.rejected.is_empty() {
            for rejected in &outcome.rejected {
                eprintln!(
                    "{}:{}: {}",
                    args.file.display(),
                    rejected.row,
                    rejected.error
                );
            }
            return Err(InputError::new(
                &args.file,
                None,
                quorum_app::rejected_summary(
                    outcome.rejected_total,
                    outcome.rejected.len(),
                    "rows",
                    "imported",
                ),
            )
            .into());
        }
        eprintln!(
            "imported {}: {} created, {} updated",
            args.file.display(),
            outcome.created,
            outcome.updated
        );
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn export_with<S: Store>(store: S, args: ExportArgs) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let app = App::new(Arc::clone(&store), Arc::new(SystemClock));
    let result = async {
        let caller = caller(&app, &args.user).await?;
        let export = Export::parse(&args.format, args.file.as_deref())?;
        // The card first: a refused licence leaves no half-written export behind.
        let card = match (&args.output, args.card) {
            (Some(path), true) => {
                let file = path.file_name().map(|n| n.to_string_lossy().to_string());
                let card = app
                    .dataset_card(
                        &caller,
                        args.project,
                        export,
                        &args.license,
                        file.as_deref(),
                    )
                    .await?;
                let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
                Some((
                    folder
                        .unwrap_or(std::path::Path::new("."))
                        .join("README.md"),
                    card,
                ))
            }
            _ => None,
        };
        let write_card = || -> anyhow::Result<()> {
            if let Some((path, card)) = &card {
                std::fs::write(path, card)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        };
        // An aggregate is computed whole before anything is written: a refused one leaves no
        // file behind.
        let (format, aggregate) = match export {
            Export::Responses(format) => (format, None),
            Export::Aggregate(aggregate, file) => (
                file,
                Some(
                    app.export_aggregate_pages(&caller, args.project, aggregate, file)
                        .await?,
                ),
            ),
        };
        let mut out: Box<dyn Write> = match &args.output {
            Some(path) => Box::new(std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::with_capacity(
                1 << 20,
                std::io::stdout().lock(),
            )),
        };
        if let Some(mut pages) = aggregate {
            while let Some(bytes) = pages.next_page()? {
                out.write_all(&bytes)?;
            }
            out.flush()?;
            write_card()?;
            return anyhow::Ok(());
        }
        let (mut pages, total) = app.export_responses(&caller, args.project, format).await?;
        let bar = ProgressBar::new(total.max(0) as u64);
        bar.set_style(
            ProgressStyle::with_template("{wide_bar} {pos}/{len} responses ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        while let Some(bytes) = pages.next_page().await? {
            out.write_all(&bytes)?;
            bar.set_position(pages.read());
        }
        out.flush()?;
        bar.finish_and_clear();
        write_card()?;
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}
