//! One module per command; each turns parsed arguments into engine calls and output files.

mod aggregate;
mod agreement;
mod generate;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Aggregate(args) => aggregate::run(&args),
        Command::Agreement(args) => agreement::run(&args),
        Command::Generate(command) => generate::run(&command),
    }
}

/// A CSV writer to `path`, or to standard output when `None`.
pub fn csv_output(path: Option<&Path>) -> anyhow::Result<csv::Writer<Box<dyn Write>>> {
    let sink: Box<dyn Write> = match path {
        Some(path) => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
    };
    Ok(csv::Writer::from_writer(sink))
}

/// Formats a float with enough digits to round-trip through the CSV.
pub fn number(value: f64) -> String {
    if value.is_nan() {
        String::new()
    } else {
        format!("{value}")
    }
}
