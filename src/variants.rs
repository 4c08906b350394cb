//! Quantisation variants made on this machine: `ALIAS@TYPE` from a cached model with
//! llama.cpp's quantizer, placed in the cache and entered in the user catalog with its lineage
//! (source file, its sha256 and type, the tool), so a report can say what a variant was made
//! from. `hearth model quantize` and `hearth bench --variants` both come here.

use std::path::Path;
use std::time::Duration;

use crate::cache::{self, BarProgress, Cache, MakeObserver};
use crate::catalog::{self, Catalog, CatalogEntry, CatalogError, Lineage};
use crate::engine::quantize::{self, QuantType, QuantizeError};
use crate::gguf::{self, GgufError};
use crate::loader::{self, ModelError};

/// Why a variant could not be made; nothing is left in the cache or the catalog then.
#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    /// The source alias is unknown, or the user catalog cannot be written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The source is served by an upstream endpoint: there is no file to quantize.
    #[error("{0} is served by an upstream endpoint; only local GGUF models can be quantized")]
    Upstream(String),
    /// The type is not one llama.cpp's quantizer makes.
    #[error(transparent)]
    Type(#[from] QuantizeError),
    /// The download runtime could not start.
    #[error("cannot start the download runtime: {0}")]
    Runtime(std::io::Error),
    /// The source could not be downloaded.
    #[error(transparent)]
    Source(#[from] ModelError),
    /// The source file is not a readable GGUF.
    #[error("cannot quantize {alias}: {source}")]
    SourceFile {
        /// The source alias.
        alias: String,
        /// What is wrong with its file.
        source: GgufError,
    },
    /// The cache could not hash, hold or place the file.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// The quantizer failed, or its output is not the variant asked for.
    #[error("cannot make {variant}: {reason}")]
    Failed {
        /// The variant's alias.
        variant: String,
        /// What went wrong.
        reason: String,
    },
}

/// The alias a variant of `alias` in `ty` gets: `smollm2-135m@q4_0`.
pub fn variant_alias(alias: &str, ty: &QuantType) -> String {
    format!("{alias}@{}", ty.name.to_ascii_lowercase())
}

/// Makes `ALIAS@TYPE` from `alias` (downloading the source first when needed), places it in
/// the cache and registers it in `user_models_file` with its lineage. Returns the variant's
/// alias.
pub fn make(
    catalog: &Catalog,
    cache: &Cache,
    user_models_file: &Path,
    alias: &str,
    ty: QuantType,
    threads: u32,
    observer: &dyn MakeObserver,
) -> Result<String, VariantError> {
    let entry = catalog.get(alias)?;
    if entry.upstream.is_some() {
        return Err(VariantError::Upstream(alias.to_string()));
    }
    let variant = variant_alias(alias, &ty);
    let source = match loader::local_path(cache, entry) {
        Some(p) => p,
        None => {
            observer.notice(&format!("{alias} is not cached; downloading"));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(VariantError::Runtime)?;
            rt.block_on(loader::ensure_local(cache, entry, &BarProgress::new()))?
        }
    };
    let info = gguf::read(&source).map_err(|source| VariantError::SourceFile {
        alias: alias.to_string(),
        source,
    })?;
    let requantized = !quantize::is_full_precision(info.quantization.as_deref());
    if requantized {
        observer.notice(&format!(
            "warning: {alias} is already quantized ({}); {variant} cannot regain the precision it lost, and is usually worse than {} made from an F16/BF16 source",
            info.quantization.as_deref().unwrap_or("unknown type"),
            ty.name
        ));
    }
    let source_sha = match cache.lookup(alias) {
        Some(cached) => cached.sha256,
        None => Cache::sha256_of(&source)?,
    };
    let file_name = format!(
        "{}.{}.gguf",
        source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .trim_end_matches(&format!(".{}", info.quantization.as_deref().unwrap_or(""))),
        ty.name
    );
    let scratch = cache.scratch_path(&format!("{}.quantizing.gguf", variant.replace('@', "-")))?;
    // Progress: the quantizer writes the file as it goes; its expected size is the parameter
    // count at the type's bits per weight.
    let expected = (info.n_params as f64 * ty.bits_per_weight / 8.0) as u64;
    let (src, dst) = (source.clone(), scratch.clone());
    let worker =
        std::thread::spawn(move || quantize::quantize(&src, &dst, ty, threads, requantized));
    while !worker.is_finished() {
        if let Ok(m) = std::fs::metadata(&scratch) {
            observer.writing(&variant, m.len().min(expected), expected.max(1));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    observer.written();
    let checked = match worker.join() {
        Err(_) => Err("the quantizer thread panicked".to_string()),
        Ok(made) => made
            .map_err(|e| e.to_string())
            .and_then(|()| checked_output(&scratch, ty.name)),
    };
    let out = match checked {
        Ok(out) => out,
        Err(reason) => {
            let _ = std::fs::remove_file(&scratch);
            return Err(VariantError::Failed { variant, reason });
        }
    };
    let lineage = Lineage {
        source_alias: alias.to_string(),
        source_file: source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_sha256: source_sha.clone(),
        source_quantization: info.quantization.clone(),
        quantization: ty.name.to_string(),
        requantized,
        tool: format!(
            "llama.cpp llama_model_quantize (llama-cpp-sys-2 {})",
            env!("HEARTH_LLAMA_CPP_SYS_VERSION")
        ),
    };
    let cached = cache.adopt_file(
        &variant,
        &scratch,
        &file_name,
        &format!("quantize:{alias}@sha256:{source_sha}:{}", ty.name),
    )?;
    catalog::save_user_entry(
        user_models_file,
        variant_entry(entry, &variant, ty.name, &cached, &out, lineage),
    )?;
    observer.notice(&format!(
        "made {variant}: {} ({:.2}× the size of {alias}, {}), sha256 {}",
        crate::text::human_bytes(cached.size_bytes),
        cached.size_bytes as f64 / info.file_size.max(1) as f64,
        info.quantization.as_deref().unwrap_or("?"),
        &cached.sha256[..12]
    ));
    Ok(variant)
}

/// The quantizer's file, read back: it must be a GGUF of the asked type.
fn checked_output(path: &Path, ty: &str) -> Result<gguf::GgufInfo, String> {
    let out =
        gguf::read(path).map_err(|e| format!("the quantizer wrote an unreadable file: {e}"))?;
    match out.quantization.as_deref() {
        Some(q) if q.eq_ignore_ascii_case(ty) => Ok(out),
        other => Err(format!(
            "the quantizer wrote {} instead of {ty}",
            other.unwrap_or("an unknown type")
        )),
    }
}

/// The variant's catalog entry: the source's facts (family, licence, tags) with its own type,
/// size, hash and lineage.
fn variant_entry(
    source: &CatalogEntry,
    variant: &str,
    ty: &str,
    cached: &cache::CachedModel,
    out: &gguf::GgufInfo,
    lineage: Lineage,
) -> CatalogEntry {
    CatalogEntry {
        alias: variant.to_string(),
        family: source.family.clone().or(Some(out.architecture.clone())),
        parameters: source
            .parameters
            .clone()
            .or_else(|| Some(gguf::human_params(out.n_params))),
        quantization: Some(ty.to_string()),
        size_mb: Some(cached.size_bytes as f64 / 1e6),
        license: source.license.clone(),
        capabilities: source.capabilities.clone(),
        sha256: Some(cached.sha256.clone()),
        kv_bytes_per_token: out.kv_bytes_per_token().or(source.kv_bytes_per_token),
        lineage: Some(lineage),
        ..CatalogEntry::default()
    }
}
