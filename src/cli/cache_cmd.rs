//! `hearth cache list | location | remove | verify`.

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use hearth::cache::VerifyOutcome;
use hearth::text::human_bytes;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cached models.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the cache directory.
    Location,
    /// Delete a cached model, or (`--kv`) the prompt states kept on disk.
    Remove {
        /// Alias of the model.
        #[arg(required_unless_present = "kv")]
        alias: Option<String>,
        /// Remove every prompt state the prompt cache keeps on disk (`$HEARTH_HOME/kv`).
        #[arg(long, conflicts_with = "alias")]
        kv: bool,
    },
    /// Re-hash every cached model and compare with its recorded sha256.
    Verify,
}

pub fn run(ctx: &Context, cmd: CacheCommand) -> Result<ExitCode> {
    match cmd {
        CacheCommand::List { json } => {
            let models = ctx.cache.list()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&models)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = super::shared::table(&["alias", "size", "verified", "path"]);
            for m in &models {
                table.add_row(vec![
                    m.alias.clone(),
                    human_bytes(m.size_bytes),
                    if m.verified { "yes" } else { "no" }.to_string(),
                    m.path.display().to_string(),
                ]);
            }
            outln!("{table}");
            let total: u64 = models.iter().map(|m| m.size_bytes).sum();
            outln!("{} models, {}", models.len(), human_bytes(total));
            let root = hearth::loader::kv_root(&ctx.cache);
            let (files, bytes) = hearth::engine::kv_disk::usage(&root);
            outln!(
                "prompt states on disk: {files} files, {} of {} (prompt_cache_disk_mb) in {}",
                human_bytes(bytes),
                human_bytes(ctx.settings.prompt_cache_disk.value),
                root.display()
            );
        }
        CacheCommand::Location => outln!("{}", ctx.cache.location().display()),
        CacheCommand::Remove { kv: true, .. } => {
            let root = hearth::loader::kv_root(&ctx.cache);
            let (files, bytes) = hearth::engine::kv_disk::clear(&root)
                .with_context(|| format!("cannot remove {}", root.display()))?;
            outln!(
                "removed {files} prompt states ({}) from {}",
                human_bytes(bytes),
                root.display()
            );
        }
        CacheCommand::Remove { alias, .. } => {
            let alias = alias.unwrap_or_default();
            if !ctx.cache.remove(&alias)? {
                bail!("`{alias}` is not in the cache; see `hearth cache list`");
            }
            outln!("removed {alias}");
        }
        CacheCommand::Verify => {
            let mut bad = 0;
            let mut table = super::shared::table(&["alias", "result"]);
            for (model, outcome) in ctx.cache.verify()? {
                let result = match outcome {
                    VerifyOutcome::Ok => "ok".to_string(),
                    VerifyOutcome::Missing => {
                        bad += 1;
                        "file missing".to_string()
                    }
                    VerifyOutcome::Mismatch { actual } => {
                        bad += 1;
                        format!("sha256 mismatch (now {actual})")
                    }
                };
                table.add_row(vec![model.alias, result]);
            }
            outln!("{table}");
            if bad > 0 {
                eprintln!(
                    "{bad} model(s) failed verification; `hearth cache remove` and download again"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
