//! `quorum generate`: seeded synthetic data sets written as the CSVs the other commands read.

use quorum_stats::arena::Winner;
use quorum_stats::synthetic::{self, ArenaSpec, ComparisonSpec, CrowdSpec};

use super::csv_output;
use crate::cli::GenerateCommand;

pub fn run(command: &GenerateCommand) -> anyhow::Result<()> {
    match command {
        GenerateCommand::Labels {
            tasks,
            answers_per_task,
            workers,
            classes,
            spammers,
            seed,
            output,
            gold,
        } => {
            if *workers == 0 || *classes == 0 {
                anyhow::bail!("--workers and --classes must be at least 1");
            }
            let crowd = synthetic::crowd(&CrowdSpec {
                tasks: *tasks,
                answers_per_task: *answers_per_task,
                workers: *workers,
                classes: *classes,
                spammer_share: *spammers,
                seed: *seed,
                ..CrowdSpec::default()
            });
            let mut out = csv_output(Some(output))?;
            out.write_record(["task", "worker", "label"])?;
            for a in &crowd.answers {
                out.write_record([
                    format!("t{}", a.task),
                    format!("w{}", a.worker),
                    a.label.to_string(),
                ])?;
            }
            out.flush()?;
            if let Some(path) = gold {
                let mut out = csv_output(Some(path))?;
                out.write_record(["task", "label"])?;
                for (t, label) in crowd.truth.iter().enumerate() {
                    out.write_record([format!("t{t}"), label.to_string()])?;
                }
                out.flush()?;
            }
        }
        GenerateCommand::Comparisons {
            items,
            comparisons,
            workers,
            noisy,
            seed,
            output,
        } => {
            if *items < 2 || *workers == 0 {
                anyhow::bail!("--items must be at least 2 and --workers at least 1");
            }
            let tournament = synthetic::tournament(&ComparisonSpec {
                items: *items,
                comparisons: *comparisons,
                workers: *workers,
                noisy_share: *noisy,
                seed: *seed,
            });
            let mut out = csv_output(Some(output))?;
            out.write_record(["worker", "left", "right", "label"])?;
            for c in &tournament.comparisons {
                let (left, right) = (format!("i{}", c.left), format!("i{}", c.right));
                let winner = if c.left_won {
                    left.clone()
                } else {
                    right.clone()
                };
                out.write_record([format!("w{}", c.worker), left, right, winner])?;
            }
            out.flush()?;
        }
        GenerateCommand::Battles {
            models,
            battles,
            ties,
            seed,
            output,
            truth,
        } => {
            if *models < 2 {
                anyhow::bail!("--models must be at least 2");
            }
            if !(0.0..=1.0).contains(ties) {
                anyhow::bail!("--ties is a share between 0 and 1, got {ties}");
            }
            let arena = synthetic::arena(&ArenaSpec {
                models: *models,
                battles: *battles,
                tie_share: *ties,
                seed: *seed,
            });
            let mut out = csv_output(Some(output))?;
            out.write_record(["model_a", "model_b", "winner"])?;
            for b in &arena.battles {
                let winner = match b.winner {
                    Winner::A => "model_a",
                    Winner::B => "model_b",
                    Winner::Tie => "tie",
                    Winner::BothBad => "tie (bothbad)",
                };
                out.write_record([format!("m{}", b.a), format!("m{}", b.b), winner.into()])?;
            }
            out.flush()?;
            if let Some(path) = truth {
                let mut out = csv_output(Some(path))?;
                out.write_record(["model", "rating"])?;
                for (m, rating) in arena.ratings.iter().enumerate() {
                    out.write_record([format!("m{m}"), format!("{rating:.4}")])?;
                }
                out.flush()?;
            }
        }
    }
    Ok(())
}
