//! `hearth route explain auto:TAG`: the table capability routing decides from, and its pick.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use hearth::report::{fmt_bytes, fmt_num};
use hearth::server::route;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Print which model `auto:TAG` (or `auto`) would answer with, and why.
    Explain {
        /// `auto:TAG` or `auto`.
        target: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn route(ctx: &Context, cmd: RouteCommand) -> Result<ExitCode> {
    let RouteCommand::Explain { target, json } = cmd;
    let Some(tag) = route::route_tag(&target) else {
        bail!("`{target}` is not a route: use auto:TAG (e.g. auto:summarize) or auto");
    };
    let catalog = ctx.catalog()?;
    let mut store = ctx.open_store()?;
    let criteria = route::default_criteria(ctx.memory_budget());
    let decision = route::decide(
        &catalog,
        |e| e.upstream.is_some() || hearth::loader::local_path(&ctx.cache, e).is_some(),
        &mut store,
        &tag,
        criteria,
    )?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&decision)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table =
        super::shared::table(&["model", "run", "p95 e2e ms", "score", "peak RSS", "verdict"]);
    for c in &decision.candidates {
        table.add_row(vec![
            c.model.clone(),
            c.run.clone().unwrap_or_else(|| "—".into()),
            fmt_num(c.p95_e2el_ms, 0),
            fmt_num(c.score, 2),
            fmt_bytes(c.peak_rss_bytes),
            c.not_picked.clone().unwrap_or_else(|| "picked".into()),
        ]);
    }
    outln!("{table}");
    outln!("auto:{tag} → {}: {}", decision.model, decision.reason);
    Ok(ExitCode::SUCCESS)
}
