//! Every environment variable hearth reads, declared in one place so that the README, the
//! config command and the code never disagree about their names.

/// Log filter (`tracing`'s syntax: `info`, `hearth=debug`); read before anything else.
pub const HEARTH_LOG: &str = "HEARTH_LOG";
/// Root of hearth's data (cache, config, run history). Default: `$XDG_DATA_HOME/hearth`.
pub const HEARTH_HOME: &str = "HEARTH_HOME";
/// Overrides the `cache_dir` config key: where downloaded models live (default: `$HEARTH_HOME`).
pub const HEARTH_CACHE_DIR: &str = "HEARTH_CACHE_DIR";
/// Overrides the `default_model` config key: the alias used when a command names no model.
pub const HEARTH_DEFAULT_MODEL: &str = "HEARTH_DEFAULT_MODEL";
/// Overrides the `threads` config key: CPU threads the engine uses for decoding.
pub const HEARTH_THREADS: &str = "HEARTH_THREADS";
/// Overrides the `port` config key: the port `hearth serve` listens on.
pub const HEARTH_PORT: &str = "HEARTH_PORT";
/// Overrides the `ctx` config key: context length (tokens) per sequence.
pub const HEARTH_CTX: &str = "HEARTH_CTX";
/// Overrides the `idle_ttl_secs` config key: seconds before an idle served model is unloaded.
pub const HEARTH_IDLE_TTL_SECS: &str = "HEARTH_IDLE_TTL_SECS";
/// Overrides the `prompt_cache_disk_mb` config key: the disk tier of the prompt cache.
pub const HEARTH_PROMPT_CACHE_DISK_MB: &str = "HEARTH_PROMPT_CACHE_DISK_MB";
/// Overrides the `memory_limit_mb` config key: the memory budget models must fit in
/// (default: the memory the OS reports available). Lets a team emulate a smaller device.
pub const HEARTH_MEMORY_LIMIT_MB: &str = "HEARTH_MEMORY_LIMIT_MB";
/// Overrides the `gpu_layers` config key: layers offloaded to a GPU (`all` or a number).
pub const HEARTH_GPU_LAYERS: &str = "HEARTH_GPU_LAYERS";
/// Overrides the `speculative` config key: `ngram` (default) or `off`.
pub const HEARTH_SPECULATIVE: &str = "HEARTH_SPECULATIVE";
/// Overrides the `kv_type` config key: the KV cache's element type.
pub const HEARTH_KV_TYPE: &str = "HEARTH_KV_TYPE";
/// Overrides the `flash_attn` config key.
pub const HEARTH_FLASH_ATTN: &str = "HEARTH_FLASH_ATTN";
/// Overrides the `batch` config key: the most tokens one decode step takes.
pub const HEARTH_BATCH: &str = "HEARTH_BATCH";
/// Overrides the `ubatch` config key: llama.cpp's micro-batch.
pub const HEARTH_UBATCH: &str = "HEARTH_UBATCH";
/// Overrides the `models_file` config key: a `models.json` with user catalog entries.
pub const HEARTH_MODELS_FILE: &str = "HEARTH_MODELS_FILE";
/// Hugging Face hub endpoint (mirrors, air-gapped proxies). Same name as the hub's own tools.
pub const HF_ENDPOINT: &str = "HF_ENDPOINT";
/// Hugging Face access token, sent as a bearer token for gated repositories.
pub const HF_TOKEN: &str = "HF_TOKEN";
/// API key for `hearth serve` (required when binding beyond loopback) and for the client
/// commands (`ps`, `load`, `unload`, `service status`) that talk to it.
pub const HEARTH_API_KEY: &str = "HEARTH_API_KEY";
/// A file holding the API key (first line), for `hearth serve` and the client commands: unlike
/// `--api-key`, a file's content is not shown to other users by `ps`.
pub const HEARTH_API_KEY_FILE: &str = "HEARTH_API_KEY_FILE";
/// Overrides the `allowed_hosts` config key: Host names `hearth serve` answers beside the
/// loopback ones (comma-separated), against DNS rebinding.
pub const HEARTH_ALLOWED_HOSTS: &str = "HEARTH_ALLOWED_HOSTS";
/// Overrides the `cors_origins` config key: browser origins allowed to call `hearth serve`
/// beside loopback pages and its own (comma-separated).
pub const HEARTH_CORS_ORIGINS: &str = "HEARTH_CORS_ORIGINS";
/// Overrides the `max_connections` config key: connections `hearth serve` holds open at once.
pub const HEARTH_MAX_CONNECTIONS: &str = "HEARTH_MAX_CONNECTIONS";
/// Overrides the `run_drift_pct` config key: how far this machine moves a whole run's level
/// from one run to the next, which `hearth compare` allows for between separate runs.
pub const HEARTH_RUN_DRIFT_PCT: &str = "HEARTH_RUN_DRIFT_PCT";
/// API key for the judge's endpoint in `hearth bench --judge-endpoint` (kept apart from
/// `HEARTH_API_KEY`, since the judge often runs somewhere else than the models measured).
pub const HEARTH_JUDGE_API_KEY: &str = "HEARTH_JUDGE_API_KEY";
/// Where the client commands find a running server (default `http://127.0.0.1:<port>`).
pub const HEARTH_ENDPOINT: &str = "HEARTH_ENDPOINT";
/// Where the run history lives: a `postgres://` URL to share it in PostgreSQL, or a SQLite
/// path (default: `$HEARTH_HOME/history.db`).
pub const HEARTH_DB_URL: &str = "HEARTH_DB_URL";
/// Models `hearth bench` measures, comma-separated (the reference workflow's name).
pub const BENCH_MODELS: &str = "BENCH_MODELS";
/// `1` streams answers in `hearth bench` (the default), `0` measures whole responses.
pub const BENCH_STREAM: &str = "BENCH_STREAM";
/// Foundry Local's endpoint, which users of its benchmark workflow already set: `hearth bench`
/// measures it when neither `--endpoint` nor `HEARTH_ENDPOINT` is given.
pub const FOUNDRY_LOCAL_ENDPOINT: &str = "FOUNDRY_LOCAL_ENDPOINT";

/// Every variable above, for what must treat them all alike: a test that runs `hearth` with
/// none of the user's settings clears exactly these.
pub const ALL: &[&str] = &[
    HEARTH_LOG,
    HEARTH_HOME,
    HEARTH_CACHE_DIR,
    HEARTH_DEFAULT_MODEL,
    HEARTH_THREADS,
    HEARTH_PORT,
    HEARTH_CTX,
    HEARTH_IDLE_TTL_SECS,
    HEARTH_PROMPT_CACHE_DISK_MB,
    HEARTH_MEMORY_LIMIT_MB,
    HEARTH_GPU_LAYERS,
    HEARTH_SPECULATIVE,
    HEARTH_KV_TYPE,
    HEARTH_FLASH_ATTN,
    HEARTH_BATCH,
    HEARTH_UBATCH,
    HEARTH_MODELS_FILE,
    HF_ENDPOINT,
    HF_TOKEN,
    HEARTH_API_KEY,
    HEARTH_API_KEY_FILE,
    HEARTH_ALLOWED_HOSTS,
    HEARTH_CORS_ORIGINS,
    HEARTH_MAX_CONNECTIONS,
    HEARTH_RUN_DRIFT_PCT,
    HEARTH_JUDGE_API_KEY,
    HEARTH_ENDPOINT,
    HEARTH_DB_URL,
    BENCH_MODELS,
    BENCH_STREAM,
    FOUNDRY_LOCAL_ENDPOINT,
];

#[cfg(test)]
mod tests {
    /// A variable declared above but missing from `ALL` would leak a user's setting into
    /// tests: read this file and compare.
    #[test]
    fn all_lists_every_declared_variable() {
        let declared: Vec<&str> = include_str!("env.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter_map(|l| l.split_once(": &str"))
            .map(|(name, _)| name)
            .collect();
        assert!(declared.len() > 20, "{declared:?}");
        let listed: Vec<&str> = include_str!("env.rs")
            .split("pub const ALL")
            .nth(1)
            .unwrap()
            .lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| l.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !l.is_empty())
            .collect();
        assert_eq!(declared, listed);
    }
}
