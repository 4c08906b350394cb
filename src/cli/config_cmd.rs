//! `hearth config list | get | set`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show every setting, its value and where it came from.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one setting's value.
    Get {
        /// The key, e.g. `threads`.
        key: String,
    },
    /// Write a setting to the config file.
    Set {
        /// The key, e.g. `threads`.
        key: String,
        /// The new value.
        value: String,
    },
}

pub fn run(mut ctx: Context, cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::List { json } => {
            let settings = ctx.config.list();
            if json {
                outln!("{}", serde_json::to_string_pretty(&settings)?);
            } else {
                let mut table = super::shared::table(&["key", "value", "from", "env", "meaning"]);
                for s in settings {
                    table.add_row(vec![
                        s.key.to_string(),
                        s.value.unwrap_or_else(|| "-".into()),
                        format!("{:?}", s.origin).to_lowercase(),
                        s.env.to_string(),
                        s.help.to_string(),
                    ]);
                }
                outln!("{table}");
                outln!(
                    "config file: {}",
                    ctx.config.home().join("config.toml").display()
                );
            }
        }
        ConfigCommand::Get { key } => match ctx.config.get(&key)? {
            Some(value) => outln!("{value}"),
            None => outln!(),
        },
        ConfigCommand::Set { key, value } => {
            ctx.config.set(&key, &value)?;
            outln!("{key} = {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
