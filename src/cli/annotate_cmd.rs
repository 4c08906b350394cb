//! `hearth annotate`: hand a run's answers to people as a spreadsheet-ready file, and merge
//! their scores back into the run (all rows or none), refreshing the run's reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;

use hearth::eval::annotate::{self, AnnotationFile};

use super::Context;

#[derive(Debug, Subcommand)]
pub enum AnnotateCommand {
    /// Write the run's distinct answers to annotations-RUN.csv and .json, with empty `score`
    /// (1–5) and `comment` columns to fill.
    Export {
        /// Run id, unique prefix, `latest` or `latest~N`.
        run: String,
        /// Folder to write into (default: the current folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Merge a filled annotation file (CSV or JSON) into its run. Bad rows (unknown ids,
    /// scores outside 1–5) are listed by line and nothing is imported.
    Import {
        /// The filled file.
        file: PathBuf,
        /// Who scored (default: $USER).
        #[arg(long)]
        annotator: Option<String>,
        /// The run (default: the `run` column of the file).
        #[arg(long)]
        run: Option<String>,
    },
}

pub fn annotate(ctx: &Context, cmd: AnnotateCommand) -> Result<ExitCode> {
    let mut store = ctx.open_store()?;
    match cmd {
        AnnotateCommand::Export { run, out } => {
            let id = store.resolve(&run)?;
            let data = store.load_run(&id)?;
            let rows = annotate::export_rows(&data);
            if rows.is_empty() {
                bail!("run {id} has no successful answers to annotate");
            }
            let dir = out.unwrap_or_else(|| PathBuf::from("."));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let csv_path = dir.join(format!("annotations-{id}.csv"));
            let json_path = dir.join(format!("annotations-{id}.json"));
            write(&csv_path, &annotate::to_csv(&rows)?)?;
            let file = AnnotationFile {
                format: annotate::FORMAT.into(),
                run: id.clone(),
                rows,
            };
            write(&json_path, &serde_json::to_string_pretty(&file)?)?;
            eprintln!(
                "{} distinct answers of run {id}: fill `score` (1–5) and `comment`, then `hearth annotate import FILE`",
                file.rows.len()
            );
            outln!("{}", csv_path.display());
            outln!("{}", json_path.display());
            Ok(ExitCode::SUCCESS)
        }
        AnnotateCommand::Import {
            file,
            annotator,
            run,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let rows = annotate::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}; nothing imported", file.display()))?;
            let run = match run {
                Some(r) => r,
                None => {
                    let mut runs: Vec<&str> = rows
                        .iter()
                        .map(|(_, r)| r.run.trim())
                        .filter(|r| !r.is_empty())
                        .collect();
                    runs.dedup();
                    match runs.as_slice() {
                        [one] => one.to_string(),
                        [] => bail!("{} names no run: give --run RUN", file.display()),
                        _ => bail!(
                            "{} mixes rows of several runs; import one run at a time (--run RUN)",
                            file.display()
                        ),
                    }
                }
            };
            let id = store.resolve(&run)?;
            let data = store.load_run(&id)?;
            let annotator = annotator
                .or_else(|| std::env::var("USER").ok())
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| "human".into());
            let scores =
                match annotate::import_scores(&data, &rows, &annotator, hearth::store::unix_ms()) {
                    Ok(scores) => scores,
                    Err(errors) => {
                        eprintln!(
                            "{}: {} bad row(s), nothing imported:",
                            file.display(),
                            errors.len()
                        );
                        for e in &errors {
                            eprintln!("  {e}");
                        }
                        return Ok(ExitCode::FAILURE);
                    }
                };
            store.upsert_scores(&id, &scores)?;
            let scored_rows = rows
                .iter()
                .filter(|(_, r)| !r.score.trim().is_empty())
                .count();
            eprintln!(
                "imported {scored_rows} scored row(s) by {annotator} into run {id} ({} answers)",
                scores.len()
            );
            // Refresh the run's reports where the bench wrote them.
            let data = store.load_run(&id)?;
            if let Some(dir) = data.run.options.out.as_deref().map(Path::new) {
                if dir.is_dir() {
                    for path in hearth::report::write_all(&data, dir)? {
                        outln!("{}", path.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
