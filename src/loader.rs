//! From an alias to a running backend: find the file (cache or path, downloading when asked),
//! check the model fits in memory, and start the right [`Backend`]. The CLI and the server share
//! this policy so `model run` and `serve` refuse, size and load models the same way.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::{self, Cache, DownloadProgress, DownloadSpec};
use crate::catalog::{Catalog, CatalogEntry};
use crate::engine::compute::{Compute, KvType};
use crate::engine::kv_disk::KvDiskOptions;
use crate::engine::llama::{EngineOptions, LlamaEngine};
use crate::engine::memory::{self, MemoryEstimate, SlotPlan, SlotWish};
use crate::engine::{Backend, EngineError};
use crate::gguf::{self, GgufInfo};
use crate::profiles::{Profile, Profiles};
use crate::text::human_bytes;

/// Why a model could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model is not on disk and has no download source.
    #[error("`{0}` is not cached and has no download source; add its file with `hearth model add FILE --alias {0}`")]
    NoSource(String),
    /// The model is not on disk and downloading was not allowed.
    #[error("`{0}` is not cached; download it with `hearth model download {0}`")]
    NotCached(String),
    /// Download failed.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// The file is not a usable GGUF.
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    /// The model would not fit in memory.
    #[error("{0}")]
    TooBig(String),
    /// The engine failed to start.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// How to size a model when loading it.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// CPU threads.
    pub threads: u32,
    /// Requested context per sequence (capped at the model's trained context).
    pub n_ctx: u32,
    /// Sequences decoded together.
    pub parallel: u32,
    /// Whether the user left `parallel` to hearth: it may then be lowered to fit the memory
    /// budget (see [`memory::plan_slots`]).
    pub auto_parallel: bool,
    /// Whether the user left `n_ctx` to hearth: it may then be shortened to fit.
    pub auto_ctx: bool,
    /// Waiting requests allowed before refusing new ones.
    pub queue_capacity: usize,
    /// Memory the model must fit in, in bytes.
    pub memory_budget: u64,
    /// Layers offloaded to a GPU, and which one.
    pub offload: crate::engine::devices::Offload,
    /// Whether the engine drafts tokens (speculative decoding).
    pub speculative: crate::engine::speculative::Speculative,
    /// KV cache type, flash attention and batch sizes.
    pub compute: Compute,
    /// What the command line set: a model's profile never overrides these.
    pub flags: Profile,
    /// Per-model serving profiles (`hearth tune --apply`); none for `bench`, which measures
    /// what it is told.
    pub profiles: Profiles,
    /// Disk for the prompt cache's files of long prompts (`$HEARTH_HOME/kv`), bytes; 0 keeps
    /// none (`bench`: a measurement must not find states of earlier runs).
    pub prompt_cache_disk_bytes: u64,
}

/// What sizing the slots reads of a load: the user's wishes and the memory budget. Its own type
/// so that a caller that only asks how a model would be served (`model info`) need not make up
/// threads, queues and offload.
#[derive(Clone, Copy, Debug)]
pub struct SlotAsk {
    /// Requested context per sequence (capped at the model's trained context).
    pub n_ctx: u32,
    /// Sequences decoded together.
    pub parallel: u32,
    /// Whether `parallel` may be lowered to fit the budget.
    pub auto_parallel: bool,
    /// Whether `n_ctx` may be shortened to fit.
    pub auto_ctx: bool,
    /// Memory the model must fit in, in bytes.
    pub memory_budget: u64,
    /// The KV cache's element type, which sizes each cell.
    pub kv_type: KvType,
}

impl LoadOptions {
    /// These options for `alias`: its profile's settings where no flag set them, and the
    /// profile when one applied.
    pub fn for_model(&self, alias: &str) -> (LoadOptions, Option<Profile>) {
        let Some(profile) = self.profiles.get(alias) else {
            return (self.clone(), None);
        };
        let mut out = self.clone();
        if let (None, Some(parallel)) = (self.flags.parallel, profile.parallel) {
            out.parallel = parallel.max(1);
            out.auto_parallel = false;
        }
        if let (None, Some(ctx)) = (self.flags.ctx, profile.ctx) {
            out.n_ctx = ctx;
            out.auto_ctx = false;
        }
        if let (None, Some(speculative)) = (self.flags.speculative, profile.speculative) {
            out.speculative = speculative;
        }
        if let (None, Some(threads)) = (self.flags.threads, profile.threads) {
            out.threads = threads.max(1);
        }
        if let (None, Some(layers)) = (self.flags.gpu_layers, profile.gpu_layers) {
            // Only where this build and machine can offload: a profile tuned on a GPU must
            // not stop the same home from serving on a machine without one.
            if crate::engine::devices::offload_problem(layers, out.offload.device).is_none() {
                out.offload.gpu_layers = layers;
            }
        }
        out.compute = profile.compute_over(self.compute, &self.flags);
        (out, Some(profile.clone()))
    }

    /// The part of these options that sizes the slots.
    pub fn slot_ask(&self) -> SlotAsk {
        SlotAsk {
            n_ctx: self.n_ctx,
            parallel: self.parallel,
            auto_parallel: self.auto_parallel,
            auto_ctx: self.auto_ctx,
            memory_budget: self.memory_budget,
            kv_type: self.compute.kv_type,
        }
    }
}

/// The prompt cache's kv folder: beside the models (`$HEARTH_HOME/kv` by default).
pub fn kv_root(cache: &Cache) -> PathBuf {
    let models = cache.location();
    models.parent().unwrap_or(models).join("kv")
}

/// What identifies a model file for the states saved from it: its sha256 when the cache
/// recorded one, else its path, size and modification time.
fn file_identity(cache: &Cache, entry: &CatalogEntry, path: &std::path::Path) -> String {
    if let Some(m) = cache.lookup(&entry.alias).filter(|m| m.path == path) {
        return format!("sha256:{}", m.sha256);
    }
    let meta = std::fs::metadata(path).ok();
    let modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!(
        "file:{}:{}:{modified}",
        path.display(),
        meta.map_or(0, |m| m.len())
    )
}

/// Where a model's GGUF is on disk, if it is.
pub fn local_path(cache: &Cache, entry: &CatalogEntry) -> Option<PathBuf> {
    entry
        .path
        .clone()
        .or_else(|| cache.lookup(&entry.alias).map(|c| c.path))
}

/// The file on disk, downloading it from the hub first when it is missing.
pub async fn ensure_local(
    cache: &Cache,
    entry: &CatalogEntry,
    progress: &dyn DownloadProgress,
) -> Result<PathBuf, ModelError> {
    if let Some(path) = local_path(cache, entry) {
        return Ok(path);
    }
    let Some(source) = &entry.source else {
        return Err(ModelError::NoSource(entry.alias.clone()));
    };
    let spec = DownloadSpec {
        alias: entry.alias.clone(),
        repo: source.repo.clone(),
        file: source.file.clone(),
        revision: source.revision.clone(),
        sha256: entry.sha256.clone(),
    };
    Ok(cache::download(cache, &spec, cache.hub(), progress)
        .await?
        .path)
}

/// The context to use: the requested one, capped at what the model was trained for.
pub fn effective_ctx(requested: u32, file: Option<&GgufInfo>) -> u32 {
    match file.and_then(|f| f.context_length) {
        Some(trained) if u64::from(requested) > trained => trained as u32,
        _ => requested,
    }
}

/// Estimates memory from the GGUF when it is on disk (its tensors say what the CPU backend
/// repacks; its vocabulary and width size the working buffers), else from the catalog (with a
/// shape, from the tensors a file of that shape and type would hold).
pub fn estimate(
    entry: &CatalogEntry,
    file: Option<&GgufInfo>,
    kv_type: KvType,
    n_ctx_total: u64,
) -> Option<MemoryEstimate> {
    let kv = kv_per_token(entry, file, kv_type)?;
    if let Some(f) = file {
        return Some(match (f.vocab_size, f.embedding_length) {
            (Some(vocab), Some(width)) => MemoryEstimate::measured_model(
                f.file_size,
                f.repacked_bytes,
                kv,
                n_ctx_total,
                memory::working_bytes(vocab, width),
            ),
            _ => MemoryEstimate::new(f.file_size, kv, n_ctx_total),
        });
    }
    let weights = entry.size_bytes()?;
    Some(match &entry.shape {
        Some(shape) => {
            let repacked = entry
                .quantization
                .as_deref()
                .and_then(|q| crate::synth::tensor_bytes(shape, q))
                .map_or(0, |t| memory::repacked_bytes(&t));
            MemoryEstimate::measured_model(
                weights,
                repacked,
                kv,
                n_ctx_total,
                memory::working_bytes(u64::from(shape.vocab), u64::from(shape.embedding)),
            )
        }
        None => MemoryEstimate::new(weights, kv, n_ctx_total),
    })
}

/// The KV cache's bytes per token of `entry` in `kv_type`: from the GGUF when it is on disk,
/// else from the catalog.
fn kv_per_token(entry: &CatalogEntry, file: Option<&GgufInfo>, kv_type: KvType) -> Option<u64> {
    file.and_then(GgufInfo::kv_bytes_per_token)
        .or(entry.kv_bytes_per_token)
        .map(|f16| kv_type.scale(f16))
}

/// Refuses a model that will not fit in `budget`, naming a smaller variant of it, the
/// command that would make one, or the largest catalog model that would fit.
pub fn check_fits(
    catalog: &Catalog,
    entry: &CatalogEntry,
    file: &GgufInfo,
    kv_type: KvType,
    n_ctx_total: u64,
    budget: u64,
) -> Result<(), ModelError> {
    let Some(need) = estimate(entry, Some(file), kv_type, n_ctx_total) else {
        return Ok(());
    };
    if need.fits(budget) {
        return Ok(());
    }
    // A smaller variant of the same model first (a cached one, else one that can be made),
    // then the largest other catalog model that fits.
    let family_of = |e: &CatalogEntry| {
        e.lineage
            .as_ref()
            .map_or(e.alias.clone(), |l| l.source_alias.clone())
    };
    let largest_fitting = |keep: &dyn Fn(&CatalogEntry) -> bool| {
        catalog
            .entries()
            .iter()
            .filter(|e| e.alias != entry.alias && keep(e))
            .filter_map(|e| Some((e, estimate(e, None, kv_type, n_ctx_total)?)))
            .filter(|(_, est)| est.fits(budget))
            .max_by_key(|(_, est)| est.total_bytes())
    };
    let q4_weights = (file.n_params as f64 * 4.5 / 8.0) as u64;
    let q4 = MemoryEstimate::new(
        q4_weights,
        need.kv_cache_bytes / n_ctx_total.max(1),
        n_ctx_total,
    );
    let q4_exists = catalog.get(&format!("{}@q4_0", family_of(entry))).is_ok();
    let hint = if let Some((e, est)) = largest_fitting(&|e| family_of(e) == family_of(entry)) {
        format!(
            "; try its smaller variant `{}` (needs about {})",
            e.alias,
            human_bytes(est.total_bytes())
        )
    } else if !q4_exists && q4.total_bytes() < need.total_bytes() && q4.fits(budget) {
        format!(
            "; a Q4_0 variant would need about {}: `hearth model quantize {} --type q4_0`",
            human_bytes(q4.total_bytes()),
            family_of(entry)
        )
    } else if let Some((e, est)) = largest_fitting(&|e| e.upstream.is_none()) {
        format!(
            "; try the smaller `{}` (needs about {})",
            e.alias,
            human_bytes(est.total_bytes())
        )
    } else {
        "; no catalog model fits, try a smaller --ctx".to_string()
    };
    Err(ModelError::TooBig(format!(
        "`{}` needs about {} (weights {} + KV cache {} for {} tokens + {} buffers) but only {} is available{}",
        entry.alias,
        human_bytes(need.total_bytes()),
        human_bytes(need.weights_bytes),
        human_bytes(need.kv_cache_bytes),
        n_ctx_total,
        human_bytes(need.overhead_bytes),
        human_bytes(budget),
        hint
    )))
}

/// The slots `entry` gets when asked for `options`: what the user set is kept, the rest sized
/// from the memory budget ([`memory::plan_slots`]). Without a KV size (no file, no catalog
/// figure) the wish stands.
pub fn plan_slots(
    entry: &CatalogEntry,
    file: Option<&GgufInfo>,
    options: SlotAsk,
) -> Result<SlotPlan, ModelError> {
    let wanted_ctx = effective_ctx(options.n_ctx, file);
    let parallel = options.parallel.max(1);
    let as_asked = SlotPlan {
        parallel,
        n_ctx: wanted_ctx,
        why: "as asked".into(),
    };
    let kv = kv_per_token(entry, file, options.kv_type);
    let (Some(kv), Some(fixed)) = (kv, estimate(entry, file, options.kv_type, 0)) else {
        return Ok(as_asked);
    };
    let wish = SlotWish {
        parallel: (!options.auto_parallel).then_some(parallel),
        n_ctx: (!options.auto_ctx).then_some(wanted_ctx),
        default_parallel: parallel,
        default_ctx: wanted_ctx,
    };
    memory::plan_slots(fixed.total_bytes(), kv, options.memory_budget, wish).map_err(|why| {
        ModelError::TooBig(format!(
            "`{}` cannot be given even one slot: {why}; free memory, raise `memory_limit_mb`, or pick a smaller model",
            entry.alias
        ))
    })
}

/// A started backend and the slots it was given (none for upstream models).
pub struct Opened {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// Its slots and why, for `ps`.
    pub slots: Option<SlotPlan>,
    /// How it computes, drafts and whose profile applied, for `ps`.
    pub serving: Serving,
}

/// How a loaded model is served, beyond its slots: what `ps` shows so a profile's effect is
/// visible.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Serving {
    /// Speculative decoding.
    pub speculative: crate::engine::speculative::Speculative,
    /// KV cache type, flash attention and batch sizes.
    #[serde(flatten)]
    pub compute: Compute,
    /// The serving profile that applied, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// Starts the backend for `entry`: an upstream adapter, or the llama.cpp engine on the local
/// file (which must already be on disk; see [`ensure_local`]) with slots sized by
/// [`plan_slots`]. Blocking: call it off the async executor.
pub fn open(
    catalog: &Catalog,
    cache: &Cache,
    entry: &CatalogEntry,
    options: &LoadOptions,
    runtime: tokio::runtime::Handle,
) -> Result<Opened, ModelError> {
    let (options, profile) = options.for_model(&entry.alias);
    let options = &options;
    let serving = Serving {
        speculative: options.speculative,
        compute: options.compute,
        profile,
    };
    if let Some(upstream) = &entry.upstream {
        let backend =
            crate::engine::upstream::UpstreamBackend::new(&entry.alias, upstream, runtime)?;
        return Ok(Opened {
            backend: Arc::new(backend),
            slots: None,
            serving,
        });
    }
    let path =
        local_path(cache, entry).ok_or_else(|| ModelError::NotCached(entry.alias.clone()))?;
    let file = gguf::read(&path)?;
    let plan = match plan_slots(entry, Some(&file), options.slot_ask()) {
        Ok(plan) => plan,
        Err(none_fit) => {
            // The fuller refusal, naming a smaller variant or model that would fit.
            let wished = u64::from(effective_ctx(options.n_ctx, Some(&file)))
                * u64::from(options.parallel.max(1));
            check_fits(
                catalog,
                entry,
                &file,
                options.compute.kv_type,
                wished,
                options.memory_budget,
            )?;
            return Err(none_fit);
        }
    };
    let (n_ctx, parallel) = (plan.n_ctx, plan.parallel);
    check_fits(
        catalog,
        entry,
        &file,
        options.compute.kv_type,
        plan.kv_cells(),
        options.memory_budget,
    )?;
    let prompt_cache_bytes = estimate(entry, Some(&file), options.compute.kv_type, plan.kv_cells())
        .map(|need| need.prompt_cache_bytes(options.memory_budget));
    tracing::info!(model = %entry.alias, parallel, n_ctx, why = %plan.why, "slots");
    let engine = LlamaEngine::load(
        &path,
        &entry.alias,
        EngineOptions {
            threads: options.threads,
            n_ctx,
            parallel,
            queue_capacity: options.queue_capacity,
            offload: options.offload,
            // A shape model's noise falls into loops that n-gram drafts predict perfectly,
            // which would flatter its speed: it always decodes one token at a time.
            speculative: if entry.is_shape_model() {
                crate::engine::speculative::Speculative::Off
            } else {
                options.speculative
            },
            prompt_cache_bytes,
            kv_disk: (options.prompt_cache_disk_bytes > 0).then(|| KvDiskOptions {
                root: kv_root(cache),
                model: file_identity(cache, entry, &path),
                limit_bytes: options.prompt_cache_disk_bytes,
            }),
            compute: options.compute,
        },
    )?;
    Ok(Opened {
        backend: Arc::new(engine),
        slots: Some(plan),
        serving,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::devices::{GpuLayers, Offload};
    use crate::engine::speculative::Speculative;

    fn options(flags: Profile, profile: Profile) -> LoadOptions {
        let mut profiles = Profiles::default();
        profiles.set("m", profile);
        LoadOptions {
            threads: 2,
            n_ctx: 4096,
            parallel: 8,
            auto_parallel: true,
            auto_ctx: true,
            queue_capacity: 16,
            memory_budget: 1 << 30,
            offload: Offload::default(),
            speculative: Speculative::Ngram,
            compute: Compute::default(),
            flags,
            profiles,
            prompt_cache_disk_bytes: 0,
        }
    }

    #[test]
    fn a_profile_sets_what_no_flag_set_and_offloads_only_where_the_build_can() {
        let tuned = Profile {
            parallel: Some(4),
            ctx: Some(512),
            threads: Some(1),
            gpu_layers: Some(GpuLayers::All),
            ..Profile::default()
        };
        let (got, applied) = options(Profile::default(), tuned.clone()).for_model("m");
        assert_eq!(applied, Some(tuned.clone()));
        assert_eq!((got.parallel, got.n_ctx, got.threads), (4, 512, 1));
        assert!(!got.auto_parallel && !got.auto_ctx);
        // Offloaded where this build and machine can; never forced onto one that cannot.
        let can = crate::engine::devices::offload_problem(GpuLayers::All, None).is_none();
        assert_eq!(got.offload.gpu_layers.is_cpu(), !can);
        // A flag outranks the profile; another model gets none of it.
        let flags = Profile {
            threads: Some(2),
            gpu_layers: Some(GpuLayers::Count(0)),
            ..Profile::default()
        };
        let (got, _) = options(flags, tuned.clone()).for_model("m");
        assert_eq!(got.threads, 2);
        assert!(got.offload.gpu_layers.is_cpu());
        let (other, none) = options(Profile::default(), tuned).for_model("other");
        assert_eq!((other.threads, other.parallel, none), (2, 8, None));
    }
}
