//! The `hearth` binary: parses arguments, resolves settings, runs one command, and picks the
//! exit code in one place.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(hearth::env::HEARTH_LOG)
                // llama.cpp's own warnings (full-size SWA cache, tokenizer notes…) are for
                // people debugging it: HEARTH_LOG=warn shows them; hearth reports its errors.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,llama-cpp-2=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
