//! The run history: `runs list`, `runs show`, `report` (re-render a stored run) and `compare`
//! (two runs, with a regression verdict and an exit code CI can gate on).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use hearth::report::{self, CompareOptions, Format};

use super::Context;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Stored benchmark runs, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One run's comparison table, environment and options.
    Show {
        /// Run id, unique prefix, `latest` or `latest~N`.
        run: String,
        /// Print the JSON report instead.
        #[arg(long)]
        json: bool,
        /// Every column of the summary (the default keeps the key figures within 100 columns).
        #[arg(long)]
        wide: bool,
    },
    /// Every request record of a run (all instants, tokens, status, answer), for pandas,
    /// notebooks and spreadsheets.
    Export {
        /// Run id, unique prefix, `latest` or `latest~N`.
        #[arg(default_value = "latest")]
        run: String,
        /// jsonl (the stored records, exactly) or csv (flat, with ttft_ms and e2el_ms).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run id, unique prefix, `latest` or `latest~N`. Several runs make one report that puts
    /// them side by side, the first as the baseline the others are judged against (json, md
    /// or html).
    #[arg(default_value = "latest", num_args = 1..)]
    runs: Vec<String>,
    /// json, csv, md or html.
    #[arg(long, default_value = "md")]
    format: String,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline run, then the run to judge against it. One run alone compares its
    /// configurations (its first model is the baseline): paired round by round when it was an
    /// interleaved session (`bench --interleave`). With --aa: identical runs, in pairs.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<String>,
    /// Smallest change (percent) that can be called a regression.
    #[arg(long, default_value_t = 5.0)]
    threshold: f64,
    /// Confidence required beyond the noise of the replicates.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Run-to-run drift (percent) allowed between separate runs (default: the `run_drift_pct`
    /// setting; `--aa` measures this machine's).
    #[arg(long)]
    run_drift: Option<f64>,
    /// Calibrate the gate: the runs are identical (same build and configuration, back to
    /// back), compared in pairs (1 with 2, 3 with 4, …); prints the false alarms and the
    /// drift, and exits 1 when more pairs failed than the confidence allows.
    #[arg(long)]
    aa: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The history store: `HEARTH_DB_URL` when set, else `$HEARTH_HOME/history.db`.
/// Where the run history is: `HEARTH_DB_URL`, else `$HEARTH_HOME/history.db`.
pub fn runs(ctx: &Context, cmd: RunsCommand) -> Result<ExitCode> {
    let mut store = ctx.open_store()?;
    match cmd {
        RunsCommand::List { json } => {
            let runs = store.list_runs()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = super::shared::table(&[
                "run", "started", "status", "models", "requests", "failed", "commit",
            ]);
            for listing in &runs {
                table.add_row(vec![
                    listing.run.id.clone(),
                    report::format_utc(listing.run.started_unix_ms),
                    format!("{:?}", listing.run.status).to_lowercase(),
                    listing.models.join(", "),
                    listing.requests.to_string(),
                    listing.failed_requests.to_string(),
                    listing
                        .run
                        .environment
                        .git_commit
                        .clone()
                        .unwrap_or_default(),
                ]);
            }
            if runs.is_empty() {
                eprintln!(
                    "no runs stored yet in {} (run `hearth bench`)",
                    store.location()
                );
            } else {
                outln!("{table}");
            }
            let tunes = store.list_tunes()?;
            if !tunes.is_empty() {
                let mut table = super::shared::table(&["tune", "started", "status", "decision"]);
                for t in &tunes {
                    table.add_row(vec![
                        t.id.clone(),
                        report::format_utc(t.started_unix_ms),
                        t.status.clone(),
                        t.summary.clone(),
                    ]);
                }
                outln!("{table}");
            }
        }
        RunsCommand::Export { run, format, out } => {
            let format: report::export::ExportFormat = format.parse()?;
            let id = store.resolve(&run)?;
            let data = store.load_run(&id)?;
            let text = report::export::export_requests(&data, format)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "{} request records of run {id} written to {}",
                        data.requests.len(),
                        path.display()
                    );
                }
                None => out!("{text}"),
            }
        }
        RunsCommand::Show { run, json, wide } => {
            let id = store.resolve(&run)?;
            let data = store.load_run(&id)?;
            if json {
                outln!("{}", report::render(&data, Format::Json)?);
            } else {
                let summary = report::summarize(&data);
                let env = &data.run.environment;
                outln!(
                    "run {} ({}), started {}",
                    data.run.id,
                    format!("{:?}", data.run.status).to_lowercase(),
                    report::format_utc(data.run.started_unix_ms)
                );
                outln!(
                    "{} · {} ({} threads of {} cores) · {} · hearth {} {}",
                    env.hostname,
                    env.cpu_model,
                    env.threads,
                    env.physical_cores,
                    env.os,
                    env.hearth_version,
                    env.git_commit.as_deref().unwrap_or("")
                );
                let width = if wide {
                    report::TerminalWidth::Wide
                } else {
                    report::TerminalWidth::Fit
                };
                outln!("{}", report::terminal_table(&summary, width));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn report(ctx: &Context, args: ReportArgs) -> Result<ExitCode> {
    let format: Format = args.format.parse()?;
    let mut store = ctx.open_store()?;
    // A tune (`tune-…`) is its own report: the decision, the Pareto chart and the trace.
    if let [one] = args.runs.as_slice() {
        if one.starts_with("tune") {
            let tune = store.load_tune(one)?;
            return write_report(report::tune::render(&tune, format)?, args.out);
        }
    }
    let mut runs = Vec::with_capacity(args.runs.len());
    for run in &args.runs {
        let id = store.resolve(run)?;
        runs.push(store.load_run(&id)?);
    }
    let text = match runs.as_slice() {
        [one] => report::render(one, format)?,
        many => report::multi::render_many(many, format)?,
    };
    write_report(text, args.out)
}

/// A report to `out`, else to stdout.
fn write_report(text: String, out: Option<PathBuf>) -> Result<ExitCode> {
    match out {
        Some(path) => {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => out!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `hearth compare`: exit 0 when nothing regressed, 1 on a regression, 2 when the runs could
/// not be compared (unknown run, bad option): as `diff` and `cmp` do, so a CI gate never takes
/// a typo for a regression.
pub fn compare(ctx: &Context, args: CompareArgs) -> Result<ExitCode> {
    match judge(ctx, args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn judge(ctx: &Context, args: CompareArgs) -> Result<ExitCode> {
    let mut store = ctx.open_store()?;
    let options = CompareOptions {
        threshold_pct: args.threshold,
        confidence: args.confidence,
        run_drift_pct: args.run_drift.unwrap_or(ctx.settings.run_drift_pct.value),
    };
    anyhow::ensure!(
        options.confidence > 0.0 && options.confidence < 1.0,
        "--confidence must be between 0 and 1 (0.95: 95 %), not {}",
        options.confidence
    );
    anyhow::ensure!(
        options.threshold_pct >= 0.0 && options.run_drift_pct >= 0.0,
        "--threshold and --run-drift are percentages of at least 0"
    );
    let mut runs = Vec::with_capacity(args.runs.len());
    for id in &args.runs {
        let id = store.resolve(id)?;
        runs.push(store.load_run(&id)?);
    }
    if args.aa {
        anyhow::ensure!(
            runs.len() >= 2,
            "--aa needs at least two identical runs (better twenty or more pairs)"
        );
        let calibration = report::calibrate(&runs, &options);
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&calibration)?);
        } else {
            outln!("{}", calibration.table());
        }
        return Ok(if calibration.too_noisy() {
            if !args.json {
                eprintln!("the gate raised more false alarms than its confidence allows: see the drift above");
            }
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let comparison = match runs.as_slice() {
        [one] => report::compare_within(one, &options)?,
        [a, b] => report::compare(a, b, &options),
        _ => anyhow::bail!(
            "compare takes one run (its configurations) or two (baseline, then candidate); for identical runs in pairs, add --aa"
        ),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        outln!("{}", comparison.table());
    }
    Ok(if comparison.has_regression() {
        if !args.json {
            eprintln!("regression: see the rows marked regression");
        }
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
