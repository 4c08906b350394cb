//! `hearth config list | get | set`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use hearth::config::Config;

use super::settings::Settings;

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

/// The config commands read the file and the environment only, not the typed settings: a bad
/// value somewhere must not stop the user from listing or fixing it.
pub fn run(mut config: Config, cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::List { json } => {
            let listed = config.list();
            if json {
                outln!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                let mut table = super::shared::table(&["key", "value", "from", "env", "meaning"]);
                for s in listed {
                    table.add_row(vec![
                        if s.in_file {
                            s.key.to_string()
                        } else {
                            format!("{} (env only)", s.key)
                        },
                        s.value.unwrap_or_else(|| "-".into()),
                        format!("{:?}", s.origin).to_lowercase(),
                        s.env.to_string(),
                        s.help.to_string(),
                    ]);
                }
                outln!("{table}");
                outln!("config file: {}", config.path().display());
                // Per-model settings `hearth tune --apply` saved: they outrank the table above
                // for their model, and a flag outranks them.
                let file = hearth::profiles::path(config.home());
                match hearth::profiles::Profiles::load(&file) {
                    Ok(profiles) => {
                        for (alias, p) in profiles.iter() {
                            outln!(
                                "serving profile of {alias}: {}{}",
                                p.flags(),
                                p.source
                                    .as_deref()
                                    .map(|s| format!(" ({s})"))
                                    .unwrap_or_default()
                            );
                        }
                    }
                    Err(e) => outln!("warning: {e}"),
                }
                // Say what is wrong with the values, without failing the listing.
                if let Err(e) = Settings::resolve(&config) {
                    outln!("warning: {e:#}");
                }
            }
        }
        ConfigCommand::Get { key } => match config.get(&key)? {
            Some(value) => outln!("{value}"),
            None => outln!(),
        },
        ConfigCommand::Set { key, value } => {
            config.stage(&key, &value)?;
            // The whole configuration must still resolve (a speculation mode, a GPU layer
            // count) before anything is written.
            Settings::resolve(&config)?;
            config.save()?;
            outln!("{key} = {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
