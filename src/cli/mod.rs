//! Command-line surface: clap types (what the user typed, no I/O), then [`Context`] (settings
//! resolved from flags, config file and environment), then one function per command.

/// `println!` for a command's output. A reader that went away (`hearth cache list | grep -q`,
/// `| head`) ends the process quietly with success, as Unix tools do, where `println!` would
/// panic with a backtrace (and a script under `set -o pipefail` would see a failure); any other
/// write error (a full disk behind `>`) is a clear error. What the command did is already done.
macro_rules! outln {
    () => {
        $crate::cli::print_output(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::print_output(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with [`outln!`]'s handling of a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print_output(format_args!($($arg)*))
    };
}

mod annotate_cmd;
mod bench_cmd;
mod cache_cmd;
mod config_cmd;
mod model_cmd;
mod progress;
mod route_cmd;
mod run_cmd;
mod runs_cmd;
mod serve_cmd;
mod service_cmd;
mod settings;
mod shared;
mod tune_cmd;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use shared::Context;

/// Discover, fetch, run, serve, benchmark and compare open-source language models locally.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, inspect, download, add and run models.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Inspect and manage the local model cache.
    #[command(subcommand)]
    Cache(cache_cmd::CacheCommand),
    /// Read and change settings.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Serve an OpenAI-compatible API (default http://127.0.0.1:5273/v1).
    Serve(serve_cmd::ServeArgs),
    /// Show the models a running server has loaded.
    Ps {
        #[command(flatten)]
        client: serve_cmd::ClientArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running server to load a model.
    Load {
        /// Model alias.
        alias: String,
        /// The offload expected (the server's own `--gpu-layers` applies to every model; a
        /// different value is refused with how to get it).
        #[arg(long, value_name = "N|all")]
        gpu_layers: Option<hearth::engine::devices::GpuLayers>,
        #[command(flatten)]
        client: serve_cmd::ClientArgs,
    },
    /// Ask a running server to unload a model.
    Unload {
        /// Model alias.
        alias: String,
        #[command(flatten)]
        client: serve_cmd::ClientArgs,
    },
    /// The server in the background: start, stop, restart, status, logs.
    #[command(subcommand)]
    Service(service_cmd::ServiceCommand),
    /// Benchmark models (local or at any OpenAI-compatible endpoint); print the comparison
    /// table, store the run and write its reports.
    Bench(Box<bench_cmd::BenchArgs>),
    /// Find the serving configuration (model, variant, slots, drafting) that holds your load
    /// best on this machine, by measurement: successive halving, ties within noise going to
    /// the simpler configuration, and a confirm run against the default.
    Tune(Box<tune_cmd::TuneArgs>),
    /// Stored benchmark runs.
    #[command(subcommand)]
    Runs(runs_cmd::RunsCommand),
    /// Render a stored run as JSON, CSV, Markdown or HTML.
    Report(runs_cmd::ReportArgs),
    /// Compare two stored runs, or the configurations of one (an interleaved session); exits 1
    /// on a regression beyond threshold and noise, 2 when it cannot compare. `--aa`: is the
    /// gate quiet on identical runs?
    Compare(runs_cmd::CompareArgs),
    /// Capability routing: which model `auto:TAG` answers with, from stored results.
    #[command(subcommand)]
    Route(route_cmd::RouteCommand),
    /// Compute devices llama.cpp sees in this build (CPU, GPUs) with their memory.
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export a run's answers for people to score, and import their scores.
    #[command(subcommand)]
    Annotate(annotate_cmd::AnnotateCommand),
}

/// Parses the command line and runs the command.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    // Every command but `config` starts from the typed settings (a bad value is an error at
    // once); `config` reads the file alone, so a bad value can still be listed and fixed.
    let ctx = Context::load;
    match cli.command {
        Command::Config(cmd) => config_cmd::run(
            hearth::config::Config::load(&hearth::config::home_dir())?,
            cmd,
        ),
        Command::Model(cmd) => model_cmd::run(&ctx()?, cmd),
        Command::Cache(cmd) => cache_cmd::run(&ctx()?, cmd),
        Command::Serve(args) => serve_cmd::serve(&ctx()?, args),
        Command::Ps { client, json } => serve_cmd::ps(&ctx()?, client, json),
        Command::Load {
            alias,
            gpu_layers,
            client,
        } => serve_cmd::load(&ctx()?, client, &alias, gpu_layers),
        Command::Unload { alias, client } => serve_cmd::unload(&ctx()?, client, &alias),
        Command::Service(cmd) => service_cmd::service(&ctx()?, cmd),
        Command::Bench(args) => bench_cmd::bench(&ctx()?, *args),
        Command::Tune(args) => tune_cmd::tune(&ctx()?, *args),
        Command::Runs(cmd) => runs_cmd::runs(&ctx()?, cmd),
        Command::Report(args) => runs_cmd::report(&ctx()?, args),
        Command::Compare(args) => runs_cmd::compare(&ctx()?, args),
        Command::Annotate(cmd) => annotate_cmd::annotate(&ctx()?, cmd),
        Command::Devices { json } => model_cmd::list_devices(json),
        Command::Route(cmd) => route_cmd::route(&ctx()?, cmd),
    }
}

/// Writes a command's output (see [`outln!`]); it never returns on a write error.
fn print_output(args: std::fmt::Arguments) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
