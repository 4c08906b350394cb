//! `hearth model list | info | download | add | quantize | synth` (and `hearth devices`);
//! `model run` is in `run_cmd`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use hearth::cache::BarProgress;
use hearth::catalog::{self, CatalogEntry, Filter};
use hearth::engine::devices::{self, GpuLayers};
use hearth::engine::memory;
use hearth::engine::template::TemplateChoice;
use hearth::gguf;
use hearth::loader;
use hearth::synth;
use hearth::text::human_bytes;

use super::progress::QuantizeBar;
use super::shared::{runtime, table};
use super::Context;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// List catalog models (built-in and yours).
    #[command(alias = "ls")]
    List {
        /// Keep models matching KEY=VALUE (alias, family, tag, device, quant, license,
        /// origin); `*` and `?` are wildcards. Repeat to combine.
        #[arg(long, short)]
        filter: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show everything known about one model, with a memory estimate.
    Info {
        /// Model alias.
        alias: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show the memory split for this offload (default: the `gpu_layers` setting, else
        /// this build's and machine's default).
        #[arg(long, value_name = "N|all")]
        gpu_layers: Option<GpuLayers>,
    },
    /// Download models from the Hugging Face hub into the cache.
    #[command(alias = "pull")]
    Download {
        /// Model aliases.
        #[arg(required = true)]
        aliases: Vec<String>,
    },
    /// Bring your own GGUF file into the cache under an alias.
    Add {
        /// The GGUF file.
        file: PathBuf,
        /// The name to use for it.
        #[arg(long)]
        alias: String,
        /// Expected sha256 (checked before the file is placed).
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Make a quantisation variant ALIAS@TYPE with llama.cpp's quantizer (an F16/BF16 source
    /// is best; quantizing an already-quantized source is allowed, warned about and recorded).
    Quantize {
        /// The source model's alias.
        alias: String,
        /// Target type: q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k_s|m|l, q4_k_s|m, q5_k_s|m,
        /// q6_k, f16, bf16.
        #[arg(long = "type", value_name = "TYPE")]
        ty: String,
        /// CPU threads (default: the `threads` setting).
        #[arg(long)]
        threads: Option<u32>,
    },
    /// Make a shape model ALIAS~shape: the architecture of a catalog model (or of a Hugging
    /// Face config.json) with random weights, to measure its speed and memory here without
    /// downloading it. Its answers are noise: quality needs the real weights.
    #[command(
        after_help = "Examples:\n  hearth model synth mistral-7b\n  hearth model synth qwen2.5-1.5b --type q8_0\n  hearth model synth --from-config config.json --name my-model"
    )]
    Synth {
        /// The catalog model whose shape to use (every built-in has one).
        #[arg(
            required_unless_present = "from_config",
            conflicts_with = "from_config"
        )]
        alias: Option<String>,
        /// Read the shape from a Hugging Face config.json instead.
        #[arg(long, value_name = "CONFIG_JSON", requires = "name")]
        from_config: Option<PathBuf>,
        /// The name a --from-config model gets (it becomes NAME~shape).
        #[arg(long)]
        name: Option<String>,
        /// Quantisation to write (default: the catalog entry's own, else Q4_K_M): f16, q8_0,
        /// q6_k, q5_k_m, q5_k_s, q5_1, q5_0, q4_k_m, q4_k_s, q4_1, q4_0.
        #[arg(long = "type", value_name = "TYPE")]
        ty: Option<String>,
        /// Seed of the random weights (the same seed makes the same file).
        #[arg(long, default_value_t = hearth::synth::DEFAULT_SEED)]
        seed: u64,
    },
    /// Run a model: one prompt, or an interactive chat without `--prompt`.
    Run(super::run_cmd::RunArgs),
}

/// `hearth devices`: what llama.cpp can run on in this build, on this machine.
pub fn list_devices(json: bool) -> Result<ExitCode> {
    let all = devices::devices();
    let compiled = devices::gpu_backends_compiled();
    if json {
        let value = serde_json::json!({
            "gpu_backends_compiled": compiled,
            "default_gpu_layers": devices::default_gpu_layers(),
            "devices": all,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = table(&[
        "index",
        "name",
        "backend",
        "kind",
        "description",
        "memory",
        "free",
    ]);
    for d in &all {
        let mem = |b: u64| {
            if b == 0 {
                "—".to_string()
            } else {
                human_bytes(b)
            }
        };
        table.add_row(vec![
            d.index.to_string(),
            d.name.clone(),
            d.backend.clone(),
            d.kind.clone(),
            d.description.clone(),
            mem(d.memory_total),
            mem(d.memory_free),
        ]);
    }
    outln!("{table}");
    if compiled.is_empty() {
        outln!("GPU backends in this build: none (CPU only). Build with `--features cuda`, `vulkan` or `metal` to offload layers.");
    } else {
        outln!(
            "GPU backends in this build: {}; default --gpu-layers: {}",
            compiled.join(", "),
            devices::default_gpu_layers()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(ctx: &Context, cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::List { filter, json } => list(ctx, &filter, json),
        ModelCommand::Info {
            alias,
            json,
            gpu_layers,
        } => info(ctx, &alias, json, gpu_layers),
        ModelCommand::Download { aliases } => {
            let catalog = ctx.catalog()?;
            let rt = runtime()?;
            for alias in aliases {
                let entry = catalog.get(&alias)?;
                if entry.source.is_none() {
                    bail!(loader::ModelError::NoSource(entry.alias.clone()));
                }
                let path =
                    rt.block_on(loader::ensure_local(&ctx.cache, entry, &BarProgress::new()))?;
                outln!("{alias} → {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Add {
            file,
            alias,
            sha256,
        } => add(ctx, &file, &alias, sha256.as_deref()),
        ModelCommand::Quantize { alias, ty, threads } => {
            let threads = ctx.settings.threads.or_flag(threads);
            let ty = hearth::engine::quantize::parse_type(&ty)?;
            let variant = hearth::variants::make(
                &ctx.catalog()?,
                &ctx.cache,
                &ctx.user_models_file(),
                &alias,
                ty,
                threads,
                &QuantizeBar::default(),
            )?;
            outln!("{variant}");
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Synth {
            alias,
            from_config,
            name,
            ty,
            seed,
        } => {
            let source = match (alias, from_config, name) {
                (_, Some(path), Some(name)) => synth::ShapeSource::Config { path, name },
                (Some(alias), _, _) => synth::ShapeSource::Catalog(alias),
                _ => bail!("name a catalog model, or give --from-config with --name"),
            };
            let request = synth::SynthRequest {
                source,
                ty,
                seed,
                memory: Some((ctx.memory_budget(), u64::from(ctx.settings.context(None).0))),
            };
            let made = synth::make(
                &ctx.catalog()?,
                &ctx.cache,
                &ctx.user_models_file(),
                &request,
                &QuantizeBar::default(),
            )?;
            outln!("{made}");
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Run(args) => super::run_cmd::run_model(ctx, args),
    }
}

fn list(ctx: &Context, filters: &[String], json: bool) -> Result<ExitCode> {
    let catalog = ctx.catalog()?;
    let filters = filters
        .iter()
        .map(|f| f.parse::<Filter>())
        .collect::<Result<Vec<_>, _>>()?;
    let entries = catalog.filter(&filters);
    if json {
        outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = table(&[
        "alias", "family", "params", "quant", "size", "license", "tags", "device", "cached",
    ]);
    for e in &entries {
        let cached = loader::local_path(&ctx.cache, e).is_some();
        table.add_row(vec![
            e.alias.clone(),
            e.family.clone().unwrap_or_default(),
            e.parameters.clone().unwrap_or_default(),
            e.quantization.clone().unwrap_or_default(),
            e.size_bytes().map(human_bytes).unwrap_or_default(),
            e.license.clone().unwrap_or_default(),
            e.capabilities.join(","),
            e.device().to_string(),
            if cached { "yes" } else { "" }.to_string(),
        ]);
    }
    outln!("{table}");
    if entries.iter().any(|e| e.is_shape_model()) {
        outln!("{SHAPE_NOTE}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What a listing that holds shape models says under its table.
const SHAPE_NOTE: &str = "~shape: shape models, speed only: random weights (their answers are noise; quality needs the real model)";

/// Bytes of an estimate that live on the GPU and on the host when `layers` of `blocks`
/// transformer blocks are offloaded: weights and KV cache split by the share of blocks
/// offloaded (the output layer goes with `all`); buffers stay on the host.
fn memory_split(e: &memory::MemoryEstimate, layers: GpuLayers, blocks: u64) -> (u64, u64) {
    let share = if blocks == 0 {
        0.0
    } else {
        layers.offloaded(blocks) as f64 / blocks as f64
    };
    let device = ((e.weights_bytes + e.kv_cache_bytes) as f64 * share) as u64;
    // Only the layers left on the CPU are repacked.
    let not_repacked = (e.repacked_bytes as f64 * share) as u64;
    (e.total_bytes() - device - not_repacked, device)
}

fn info(ctx: &Context, alias: &str, json: bool, gpu_layers: Option<GpuLayers>) -> Result<ExitCode> {
    let layers = match gpu_layers {
        Some(g) => g,
        None => ctx.default_gpu_layers(),
    };
    let catalog = ctx.catalog()?;
    let entry = catalog.get(alias)?;
    let path = loader::local_path(&ctx.cache, entry);
    let file = match &path {
        Some(p) => Some(gguf::read(p)?),
        None => None,
    };
    let (asked_ctx, auto_ctx) = ctx.settings.context(None);
    let n_ctx = loader::effective_ctx(asked_ctx, file.as_ref());
    let profile = ctx.profiles()?.get(&entry.alias).cloned();
    let kv_type = profile
        .as_ref()
        .and_then(|p| p.kv_type)
        .unwrap_or(ctx.settings.kv_type.value);
    let est = loader::estimate(entry, file.as_ref(), kv_type, u64::from(n_ctx));
    let budget = ctx.memory_budget();
    let blocks = file.as_ref().and_then(|f| f.block_count).unwrap_or(0);
    // What `hearth serve` would give it here with its defaults.
    let serve_slots = loader::plan_slots(
        entry,
        file.as_ref(),
        loader::SlotAsk {
            n_ctx: profile.as_ref().and_then(|p| p.ctx).unwrap_or(asked_ctx),
            parallel: profile
                .as_ref()
                .and_then(|p| p.parallel)
                .unwrap_or(memory::DEFAULT_SLOTS),
            auto_parallel: profile.as_ref().is_none_or(|p| p.parallel.is_none()),
            auto_ctx: auto_ctx && profile.as_ref().is_none_or(|p| p.ctx.is_none()),
            memory_budget: budget,
            kv_type,
        },
    )
    .map_err(|e| e.to_string());
    let serve_prompt_cache = serve_slots
        .as_ref()
        .ok()
        .and_then(|plan| loader::estimate(entry, file.as_ref(), kv_type, plan.kv_cells()))
        .map(|need| need.prompt_cache_bytes(budget));
    if json {
        let value = serde_json::json!({
            "entry": entry,
            "path": path,
            "gguf": file,
            "chat_template": file.as_ref().map(|f| {
                TemplateChoice::for_model(f.chat_template.as_deref(), &f.architecture)
            }),
            "memory": est.map(|e| serde_json::json!({
                "ctx": n_ctx,
                "weights_bytes": e.weights_bytes,
                "repacked_bytes": e.repacked_bytes,
                "kv_cache_bytes": e.kv_cache_bytes,
                "overhead_bytes": e.overhead_bytes,
                "total_bytes": e.total_bytes(),
                // One sequence of `n_ctx`, as the estimate: what it grows to as the cache fills.
                "prompt_cache_bytes": e.prompt_cache_bytes(budget),
                "available_bytes": budget,
                "fits": e.fits(budget),
                "gpu_layers": layers,
                "host_bytes": memory_split(&e, layers, blocks).0,
                "device_bytes": memory_split(&e, layers, blocks).1,
            })),
            "serve_slots": match &serve_slots {
                Ok(plan) => {
                    let mut slots = serde_json::json!(plan);
                    slots["prompt_cache_bytes"] = serde_json::json!(serve_prompt_cache);
                    slots
                }
                Err(why) => serde_json::json!({ "error": why }),
            },
            "profile": profile,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = table(&["field", "value"]);
    let mut row = |k: &str, v: String| {
        table.add_row(vec![k.to_string(), v]);
    };
    row("alias", entry.alias.clone());
    row("family", entry.family.clone().unwrap_or_default());
    row("parameters", entry.parameters.clone().unwrap_or_default());
    row(
        "quantization",
        entry.quantization.clone().unwrap_or_default(),
    );
    row(
        "license",
        entry
            .license
            .clone()
            .or_else(|| file.as_ref().and_then(|f| f.license.clone()))
            .unwrap_or_default(),
    );
    row("capabilities", entry.capabilities.join(", "));
    row("device", entry.device().to_string());
    if let Some(src) = &entry.source {
        row(
            "source",
            format!("hf://{}/{}@{}", src.repo, src.file, src.revision),
        );
    }
    if let Some(up) = &entry.upstream {
        row("upstream", format!("{} (model {})", up.base_url, up.model));
    }
    if let Some(s) = &entry.synthetic {
        row(
            "weights",
            format!(
                "RANDOM — shape model of {} ({}, seed {}, {}): speed and memory only; download {} to measure quality",
                s.shape_source,
                s.quantization,
                s.seed,
                s.tool,
                s.real_alias.as_deref().unwrap_or("the real model")
            ),
        );
    }
    if let Some(l) = &entry.lineage {
        row(
            "made from",
            format!(
                "{} ({}, {}, sha256 {}){} by {}",
                l.source_alias,
                l.source_file,
                l.source_quantization.as_deref().unwrap_or("?"),
                &l.source_sha256[..l.source_sha256.len().min(12)],
                if l.requantized {
                    ", re-quantized: precision already lost in the source"
                } else {
                    ""
                },
                l.tool
            ),
        );
    }
    row("sha256", entry.sha256.clone().unwrap_or_else(|| "-".into()));
    row(
        "cached",
        path.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "no".into()),
    );
    if let Some(f) = &file {
        row("architecture", f.architecture.clone());
        row("parameters (file)", gguf::human_params(f.n_params));
        row("file size", human_bytes(f.file_size));
        row(
            "trained context",
            f.context_length.map(|c| c.to_string()).unwrap_or_default(),
        );
        row(
            "layers / heads / kv heads",
            format!(
                "{} / {} / {}",
                f.block_count.unwrap_or(0),
                f.head_count.unwrap_or(0),
                f.head_count_kv.unwrap_or(0)
            ),
        );
        row(
            "chat template",
            TemplateChoice::for_model(f.chat_template.as_deref(), &f.architecture).to_string(),
        );
    } else if let Some(size) = entry.size_bytes() {
        row("size", human_bytes(size));
    }
    if let Some(e) = est {
        row(
            "memory estimate",
            format!(
                "{} at ctx {} (weights {}{}, KV {}, buffers {}), and up to {} more as the prompt cache fills; {} available: {}",
                human_bytes(e.total_bytes()),
                n_ctx,
                human_bytes(e.weights_bytes),
                if e.repacked_bytes > 0 {
                    format!(
                        " + {} repacked for the CPU's faster kernels",
                        human_bytes(e.repacked_bytes)
                    )
                } else {
                    String::new()
                },
                human_bytes(e.kv_cache_bytes),
                human_bytes(e.overhead_bytes),
                human_bytes(e.prompt_cache_bytes(budget)),
                human_bytes(budget),
                if e.fits(budget) {
                    "fits"
                } else {
                    "does NOT fit"
                }
            ),
        );
        if let Some(p) = &profile {
            row(
                "serving profile",
                format!(
                    "{}{} (a flag overrides it)",
                    p.flags(),
                    p.source
                        .as_deref()
                        .map(|s| format!("; {s}"))
                        .unwrap_or_default()
                ),
            );
        }
        row(
            "slots when served",
            match &serve_slots {
                Ok(p) => format!(
                    "{} × {} tokens: {}; prompt cache up to {} (host memory, filled as requests finish)",
                    p.parallel,
                    p.n_ctx,
                    p.why,
                    serve_prompt_cache.map_or_else(|| "-".into(), human_bytes)
                ),
                Err(why) => format!("none: {why}"),
            },
        );
        let (host, device) = memory_split(&e, layers, blocks);
        row(
            "placement",
            format!(
                "{}/{blocks} layers on a GPU (--gpu-layers {layers}): host {}, device {}{}",
                layers.offloaded(blocks),
                human_bytes(host),
                human_bytes(device),
                match devices::offload_problem(layers, None) {
                    Some(why) if !layers.is_cpu() => format!(" (cannot run here: {why})"),
                    _ => String::new(),
                }
            ),
        );
    }
    outln!("{table}");
    Ok(ExitCode::SUCCESS)
}

fn add(ctx: &Context, file: &Path, alias: &str, sha256: Option<&str>) -> Result<ExitCode> {
    let info = gguf::read(file).with_context(|| format!("cannot add {}", file.display()))?;
    let catalog = ctx.catalog()?;
    let known = catalog.get(alias).ok();
    let expected = sha256.or(known.and_then(|e| e.sha256.as_deref()));
    let cached = ctx.cache.add_file(alias, file, expected)?;
    if known.is_none() {
        let entry = CatalogEntry {
            alias: alias.to_string(),
            family: Some(info.architecture.clone()),
            parameters: Some(gguf::human_params(info.n_params)),
            quantization: info.quantization.clone(),
            size_mb: Some(info.file_size as f64 / 1e6),
            capabilities: vec!["chat".to_string()],
            sha256: Some(cached.sha256.clone()),
            kv_bytes_per_token: info.kv_bytes_per_token(),
            ..CatalogEntry::default()
        };
        catalog::save_user_entry(&ctx.user_models_file(), entry)?;
    }
    outln!(
        "added {} ({}, {}, sha256 {}{})",
        cached.alias,
        info.architecture,
        human_bytes(cached.size_bytes),
        &cached.sha256[..12],
        if cached.verified { ", verified" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}
