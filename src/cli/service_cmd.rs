//! `hearth service start|stop|restart|status|logs`: `hearth serve` in the background, as
//! `foundry service start` runs Foundry Local's. `start` runs `hearth serve` detached (its own
//! session, so closing the terminal does not stop it) with the flags it is given, writes what
//! the other commands need to `$HEARTH_HOME/run/service.json`, and logs to
//! `$HEARTH_HOME/logs/hearth.log` (rotated at start). A record whose process is gone, or is no
//! longer hearth, is stale: recognised, said, and cleared.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use hearth::process::Snapshot;
use serde::{Deserialize, Serialize};
use sysinfo::Signal;

use super::serve_cmd::{self, ClientArgs};
use super::Context;

/// The background server's commands.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Start `hearth serve` in the background with these flags (`hearth service start --models
    /// smollm2-135m --port 5273`); a tuned model's serving profile applies as in `serve`.
    /// Already running: says where, exit 0.
    Start {
        #[command(flatten)]
        serve: ServeFlags,
    },
    /// Stop it: SIGTERM, then wait while it finishes the requests in flight.
    Stop,
    /// Stop it and start it again, with the flags it was started with (or new ones).
    Restart {
        /// Default: the previous start's.
        #[command(flatten)]
        serve: ServeFlags,
    },
    /// Is the server up? Endpoint, uptime, loaded models.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the end of its log.
    Logs {
        /// Lines from the end.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
    },
}

/// `hearth serve`'s flags, passed on as given.
#[derive(Debug, clap::Args)]
pub struct ServeFlags {
    /// `hearth serve`'s flags.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SERVE FLAGS"
    )]
    args: Vec<String>,
}

/// What `start` records for the other commands.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    pid: u32,
    /// The API's base URL (`http://127.0.0.1:5273/v1`).
    api: String,
    /// The server's root, where the web UI will live.
    root: String,
    log: PathBuf,
    started_unix_ms: i64,
    /// The flags it was started with, for `restart`.
    args: Vec<String>,
}

/// Logs kept besides the current one: `hearth.log.1` (newest) … `hearth.log.3`.
const KEPT_LOGS: u32 = 3;
/// How long `start` waits for the server to answer, and `stop` for it to drain.
const START_WAIT: Duration = Duration::from_secs(120);
const STOP_WAIT: Duration = Duration::from_secs(300);

fn record_path(ctx: &Context) -> PathBuf {
    ctx.config.home().join("run").join("service.json")
}

fn log_path(ctx: &Context) -> PathBuf {
    ctx.config.home().join("logs").join("hearth.log")
}

pub fn service(ctx: &Context, cmd: ServiceCommand) -> Result<ExitCode> {
    match cmd {
        ServiceCommand::Start { serve } => start(ctx, serve.args),
        ServiceCommand::Stop => stop(ctx).map(|_| ExitCode::SUCCESS),
        ServiceCommand::Restart {
            serve: ServeFlags { args },
        } => {
            let previous = stop(ctx)?;
            let args = match (args.is_empty(), previous) {
                (true, Some(old)) => old.args,
                (_, _) => args,
            };
            start(ctx, args)
        }
        ServiceCommand::Status { client } => {
            // The background server's address when one was started and no endpoint is named.
            let client = match (live_record(ctx)?, client.is_default()) {
                (Some(r), true) => client.with_endpoint(r.api),
                _ => client,
            };
            serve_cmd::status(ctx, client)
        }
        ServiceCommand::Logs { lines } => {
            let path = log_path(ctx);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("no service log at {}", path.display()))?;
            outln!("{}", last_lines(&text, lines));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The record of a running service; a stale one (its process gone, or not hearth) is said and
/// removed.
fn live_record(ctx: &Context) -> Result<Option<Record>> {
    let path = record_path(ctx);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let record: Option<Record> = serde_json::from_str(&text).ok();
    match record {
        Some(r) if is_hearth(r.pid) => Ok(Some(r)),
        _ => {
            eprintln!(
                "a stale service record was left by a server that is gone: cleared ({})",
                path.display()
            );
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            Ok(None)
        }
    }
}

/// The process `pid` as the system sees it now, when it is a running hearth (a recycled pid
/// belongs to something else).
fn hearth_process(pid: u32) -> Option<Snapshot> {
    Snapshot::of(pid, false).filter(Snapshot::is_hearth)
}

fn is_hearth(pid: u32) -> bool {
    hearth_process(pid).is_some()
}

fn start(ctx: &Context, args: Vec<String>) -> Result<ExitCode> {
    if let Some(r) = live_record(ctx)? {
        outln!(
            "hearth is already running in the background (pid {}): API {} · UI {} · log {}",
            r.pid,
            r.api,
            r.root,
            r.log.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let log = log_path(ctx);
    rotate(&log)?;
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open the log {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find hearth's own executable")?;
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    detach(&mut command);
    let mut child = command.spawn().context("cannot start hearth serve")?;
    // The server says where it listens once it does; until then, it may still fail (a port in
    // use, a bad flag), and its log says why.
    let began = Instant::now();
    let api = loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "hearth serve exited ({status}) before it listened:\n{}",
                tail(&log, 20)
            );
        }
        if let Some(api) = listening_at(&log) {
            break api;
        }
        if began.elapsed() > START_WAIT {
            let _ = child.kill();
            bail!(
                "hearth serve did not listen within {}s:\n{}",
                START_WAIT.as_secs(),
                tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let root = hearth::openai::server_root(&api).to_string();
    let record = Record {
        pid: child.id(),
        api: api.clone(),
        root: format!("{root}/"),
        log: log.clone(),
        started_unix_ms: hearth::store::unix_ms(),
        args,
    };
    let path = record_path(ctx);
    std::fs::create_dir_all(path.parent().expect("run dir"))?;
    hearth::atomic_file::write(&path, serde_json::to_string_pretty(&record)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    outln!(
        "hearth is running in the background (pid {}): API {api} · UI {} · log {}",
        record.pid,
        record.root,
        log.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Stops the running service and waits for it to drain; its record (none when nothing ran).
fn stop(ctx: &Context) -> Result<Option<Record>> {
    let Some(r) = live_record(ctx)? else {
        outln!("no hearth service is running");
        return Ok(None);
    };
    if let Some(process) = hearth_process(r.pid) {
        if !process.signal(Signal::Term) {
            bail!("could not send SIGTERM to hearth (pid {})", r.pid);
        }
    }
    let began = Instant::now();
    while is_hearth(r.pid) {
        if began.elapsed() > STOP_WAIT {
            bail!(
                "hearth (pid {}) is still finishing requests after {}s; `hearth service stop` again waits on, `kill -9 {}` ends it now",
                r.pid,
                STOP_WAIT.as_secs(),
                r.pid
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let path = record_path(ctx);
    let _ = std::fs::remove_file(&path);
    outln!("stopped hearth (pid {}) after its requests finished", r.pid);
    Ok(Some(r))
}

/// Its own session: the terminal closing (SIGHUP) or its Ctrl-C does not reach the server.
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

/// `hearth.log` → `hearth.log.1` → … → `hearth.log.3`, the oldest dropped: each start begins a
/// fresh log and the last few stay.
fn rotate(log: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if !log.exists() {
        return Ok(());
    }
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", log.display()));
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to)
            .with_context(|| format!("cannot rotate {} to {}", from.display(), to.display()))
    };
    for n in (1..KEPT_LOGS).rev() {
        if numbered(n).exists() {
            rename(&numbered(n), &numbered(n + 1))?;
        }
    }
    rename(log, &numbered(1))
}

/// The API URL the server printed to its log once it listened.
fn listening_at(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .find(|l| l.contains("OpenAI-compatible API on http://"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .map(str::to_string)
}

/// The last `n` lines of the log, for an error that says why the server did not start.
fn tail(log: &Path, n: usize) -> String {
    last_lines(&std::fs::read_to_string(log).unwrap_or_default(), n)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
