//! `quorum`: parse the command line, run the command, print the error chain, set the exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod tables;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[expect(
                clippy::print_stderr,
                reason = "the binary's one place that reports errors"
            )]
            {
                eprintln!("error: {error}");
                for cause in error.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            }
            // Bad input (a malformed file, an impossible option) is the user's to fix: exit 2.
            if error.chain().any(|cause| cause.is::<tables::InputError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
