//! Shape models: a catalog model's architecture with random weights, written straight into the
//! asked quantisation, so its speed and memory can be measured on this machine without
//! downloading it (vLLM's `--load-format dummy`, as a file any llama.cpp tool can load). The
//! result enters the cache and the user catalog as `ALIAS~shape`, with how it was made; its
//! answers are noise, which the bench, the reports and routing all know (`is_shape_model`).
//! `hearth model synth` and `hearth bench --shapes` both come here.
//!
//! Rooms: tensor list and type mixture in `plan`, ggml blocks in `blocks`, the file format in
//! `gguf_writer`, the built-in tokenizer in `tokenizer`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;

use crate::cache::MakeObserver;
use crate::cache::{self, Cache};
use crate::catalog::{
    self, Catalog, CatalogEntry, CatalogError, Shape, ShapeError, SyntheticOrigin,
};
use crate::engine::memory::{self, MemoryEstimate, TensorBytes};
use crate::gguf;
use crate::text::human_bytes;

mod blocks;
pub mod gguf_writer;
mod plan;
mod tokenizer;

pub use plan::{mixture, Mixture, MIXTURES};

use catalog::SHAPE_SUFFIX;
use gguf_writer::{TensorInfo, Value};
use plan::Fill;

/// The seed shape models use unless told otherwise (the same seed makes the same file).
pub const DEFAULT_SEED: u64 = 42;

/// Why a shape model could not be made; nothing is left in the cache or catalog then.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Unknown alias, or the user catalog cannot be written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The catalog entry has no architecture shape.
    #[error("{0} has no architecture shape: give its models.json entry a `shape`, or use `hearth model synth --from-config config.json --name NAME`")]
    NoShape(String),
    /// The entry is already a shape model.
    #[error("{0} is already a shape model")]
    AlreadyShape(String),
    /// The config.json could not be read.
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The shape is unusable.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The type is not a mixture synth writes.
    #[error("`{0}` is not a quantisation hearth can synthesise; use one of {list}", list = MIXTURES.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))]
    Type(String),
    /// Not enough free disk in the cache.
    #[error(
        "not enough disk for {alias}: it needs {need} and the cache's file system has {free} free"
    )]
    Disk {
        /// The shape model.
        alias: String,
        /// Bytes the file needs (human).
        need: String,
        /// Bytes free (human).
        free: String,
    },
    /// The model would not fit in memory when run.
    #[error("{alias} would need about {need} of memory to run (weights, KV cache for {n_ctx} tokens, buffers) but the budget is {budget}; choose a smaller type or shape, or raise memory_limit_mb")]
    Memory {
        /// The shape model.
        alias: String,
        /// Estimated need (human).
        need: String,
        /// Context tokens assumed.
        n_ctx: u64,
        /// The budget (human).
        budget: String,
    },
    /// Writing or placing the file failed.
    #[error("cannot write {alias}: {source}")]
    Write {
        /// The shape model.
        alias: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The written file does not read back as a GGUF.
    #[error("the shape model written for {alias} does not read back: {reason}")]
    Check {
        /// The shape model.
        alias: String,
        /// What the reader said.
        reason: String,
    },
    /// The cache could not hold the file.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

/// Where a shape comes from.
#[derive(Clone, Debug)]
pub enum ShapeSource {
    /// A catalog entry's `shape`.
    Catalog(String),
    /// A Hugging Face `config.json`, named by the user.
    Config {
        /// The file.
        path: PathBuf,
        /// The name the model gets (before `~shape`).
        name: String,
    },
}

/// What to make.
#[derive(Clone, Debug)]
pub struct SynthRequest {
    /// The shape.
    pub source: ShapeSource,
    /// Mixture name (`Q4_K_M`); default: the catalog entry's own type, else Q4_K_M.
    pub ty: Option<String>,
    /// Seed of the random weights.
    pub seed: u64,
    /// Memory budget and context tokens to check the result will run in; `None` skips it.
    pub memory: Option<(u64, u64)>,
}

/// The tensors a file of `shape` in mixture `ty` holds, as the memory estimate needs them
/// (before anything is downloaded or made); `None` for a type synth does not write.
pub fn tensor_bytes(shape: &Shape, ty: &str) -> Option<Vec<TensorBytes>> {
    Some(facts(&plan::tensors(shape, mixture(ty)?)))
}

/// What the memory estimate needs of planned tensors.
fn facts(tensors: &[plan::TensorPlan]) -> Vec<TensorBytes> {
    tensors
        .iter()
        .map(|t| TensorBytes {
            ggml_type: t.ty.ggml_id(),
            rows: t.dims.get(1).copied().unwrap_or(1),
            bytes: t.bytes(),
            embedding: t.name == "token_embd.weight",
        })
        .collect()
}

/// The alias of `base`'s shape model in `mix` when that is not `base`'s own type.
pub fn shape_alias(base: &str, mix: Mixture, own_type: Option<&str>) -> String {
    match own_type {
        Some(t) if !t.eq_ignore_ascii_case(mix.name) => {
            format!("{base}{SHAPE_SUFFIX}@{}", mix.name.to_ascii_lowercase())
        }
        _ => format!("{base}{SHAPE_SUFFIX}"),
    }
}

/// The shape, its source label, the real model it stands for, and the source entry.
fn resolve(
    catalog: &Catalog,
    source: &ShapeSource,
) -> Result<(Shape, String, Option<CatalogEntry>, String), SynthError> {
    match source {
        ShapeSource::Catalog(alias) => {
            let entry = catalog.get(alias)?;
            if entry.is_shape_model() {
                return Err(SynthError::AlreadyShape(entry.alias.clone()));
            }
            let shape = entry
                .shape
                .clone()
                .ok_or_else(|| SynthError::NoShape(entry.alias.clone()))?;
            shape.validate()?;
            Ok((
                shape,
                format!("catalog:{}", entry.alias),
                Some(entry.clone()),
                entry.alias.clone(),
            ))
        }
        ShapeSource::Config { path, name } => {
            let text = std::fs::read_to_string(path).map_err(|source| SynthError::ReadConfig {
                path: path.clone(),
                source,
            })?;
            let shape = Shape::from_hf_config(&text)?;
            Ok((
                shape,
                format!("config:{}", path.display()),
                None,
                name.clone(),
            ))
        }
    }
}

/// Makes a shape model, places it in the cache and registers it in `user_models_file`.
/// Returns its alias.
pub fn make(
    catalog: &Catalog,
    cache: &Cache,
    user_models_file: &Path,
    request: &SynthRequest,
    observer: &dyn MakeObserver,
) -> Result<String, SynthError> {
    let (shape, shape_source, real, base) = resolve(catalog, &request.source)?;
    let own_type = real.as_ref().and_then(|e| e.quantization.clone());
    let ty = request
        .ty
        .clone()
        .or_else(|| own_type.clone().filter(|t| mixture(t).is_some()))
        .unwrap_or_else(|| "Q4_K_M".into());
    let mix = mixture(&ty).ok_or_else(|| SynthError::Type(ty.clone()))?;
    let alias = shape_alias(&base, mix, own_type.as_deref());
    let tensors = plan::tensors(&shape, mix);
    let mut metadata = architecture_metadata(&shape, mix, &alias, request.seed, &shape_source);
    metadata.extend(
        tokenizer::metadata(shape.vocab)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    let infos: Vec<TensorInfo<'_>> = tensors
        .iter()
        .map(|t| TensorInfo {
            name: &t.name,
            dims: &t.dims,
            ty: t.ty,
        })
        .collect();
    let mut header = Vec::new();
    gguf_writer::write_header(&mut header, &metadata, &infos).expect("writing to memory");
    let data: u64 = tensors
        .iter()
        .map(|t| t.bytes() + gguf_writer::padding(t.bytes()))
        .sum();
    let total = header.len() as u64 + data;

    if let Some((budget, n_ctx)) = request.memory {
        let repacked = memory::repacked_bytes(&facts(&tensors));
        let need = MemoryEstimate::measured_model(
            total,
            repacked,
            shape.kv_bytes_per_token(),
            n_ctx,
            memory::working_bytes(u64::from(shape.vocab), u64::from(shape.embedding)),
        );
        if !need.fits(budget) {
            return Err(SynthError::Memory {
                alias,
                need: human_bytes(need.total_bytes()),
                n_ctx,
                budget: human_bytes(budget),
            });
        }
    }
    let file_name = format!("{}.{}.gguf", alias.replace(['~', '@'], "-"), mix.name);
    let scratch = cache.scratch_path(&format!("{file_name}.synth"))?;
    let dir = scratch.parent().unwrap_or(Path::new("."));
    let free = fs4::available_space(dir).unwrap_or(u64::MAX);
    // The file, plus room for the cache's own bookkeeping.
    if free < total + (64 << 20) {
        return Err(SynthError::Disk {
            alias,
            need: human_bytes(total),
            free: human_bytes(free),
        });
    }
    let written = write_file(
        &scratch,
        &header,
        &tensors,
        request.seed,
        total,
        &alias,
        observer,
    );
    observer.written();
    let checked = written.and_then(|()| {
        gguf::read(&scratch).map_err(|e| SynthError::Check {
            alias: alias.clone(),
            reason: e.to_string(),
        })
    });
    let info = match checked {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&scratch);
            return Err(e);
        }
    };
    let origin = SyntheticOrigin {
        shape_source: shape_source.clone(),
        real_alias: real.as_ref().map(|e| e.alias.clone()),
        quantization: mix.name.to_string(),
        seed: request.seed,
        tool: format!("hearth {} model synth", env!("CARGO_PKG_VERSION")),
    };
    let cached = cache.adopt_file(
        &alias,
        &scratch,
        &file_name,
        &format!("synth:{shape_source}:{}:seed{}", mix.name, request.seed),
    )?;
    let mut capabilities = real
        .as_ref()
        .map(|e| e.capabilities.clone())
        .unwrap_or_default();
    capabilities.push(catalog::SHAPE_TAG.into());
    let entry = CatalogEntry {
        alias: alias.clone(),
        family: real
            .as_ref()
            .and_then(|e| e.family.clone())
            .or(Some(shape.architecture.clone())),
        parameters: real
            .as_ref()
            .and_then(|e| e.parameters.clone())
            .or_else(|| Some(gguf::human_params(info.n_params))),
        quantization: Some(mix.name.to_string()),
        size_mb: Some(cached.size_bytes as f64 / 1e6),
        capabilities,
        sha256: Some(cached.sha256.clone()),
        kv_bytes_per_token: Some(shape.kv_bytes_per_token()),
        shape: Some(shape),
        synthetic: Some(origin),
        ..CatalogEntry::default()
    };
    catalog::save_user_entry(user_models_file, entry)?;
    observer.notice(&format!(
        "made {alias}: {} {} with random weights ({}, seed {}) — speed and memory only; its answers are noise",
        human_bytes(cached.size_bytes),
        mix.name,
        gguf::human_params(info.n_params),
        request.seed
    ));
    Ok(alias)
}

/// `general.*` and `ARCH.*` keys: what llama.cpp reads to build the graph, and hearth's own
/// marks (`hearth.synthetic`), so a shape file is recognisable even outside the catalog.
fn architecture_metadata(
    shape: &Shape,
    mix: Mixture,
    alias: &str,
    seed: u64,
    shape_source: &str,
) -> Vec<(String, Value)> {
    let arch = shape.architecture.as_str();
    let key = |k: &str| format!("{arch}.{k}");
    let general = |k: &str| k.to_string();
    let mut m = vec![
        (general("general.architecture"), Value::Str(arch.into())),
        (general("general.type"), Value::Str("model".into())),
        (
            general("general.name"),
            // Not the model's name: llama.cpp keys tokenizer quirks on names (`phi3` wants
            // Phi's `</s>`), and this file carries hearth's own tokenizer.
            Value::Str("hearth shape model (random weights)".into()),
        ),
        (general("hearth.alias"), Value::Str(alias.into())),
        (general("general.file_type"), Value::U32(mix.file_type)),
        (general("general.quantization_version"), Value::U32(2)),
        (general("hearth.synthetic"), Value::Bool(true)),
        (
            general("hearth.shape_source"),
            Value::Str(shape_source.into()),
        ),
        (general("hearth.seed"), Value::U64(seed)),
        (key("context_length"), Value::U32(shape.context)),
        (key("embedding_length"), Value::U32(shape.embedding)),
        (key("block_count"), Value::U32(shape.layers)),
        (key("feed_forward_length"), Value::U32(shape.ffn)),
        (key("attention.head_count"), Value::U32(shape.heads)),
        (key("attention.head_count_kv"), Value::U32(shape.kv_heads)),
        (key("attention.key_length"), Value::U32(shape.head_size())),
        (key("attention.value_length"), Value::U32(shape.head_size())),
        (key("rope.dimension_count"), Value::U32(shape.head_size())),
        (key("rope.freq_base"), Value::F32(shape.rope_theta)),
        (
            key("attention.layer_norm_rms_epsilon"),
            Value::F32(shape.rms_eps),
        ),
        (key("vocab_size"), Value::U32(shape.vocab)),
    ];
    if let Some(window) = shape.sliding_window {
        m.push((key("attention.sliding_window"), Value::U32(window)));
    }
    if let Some(cap) = shape.attn_softcap {
        m.push((key("attn_logit_softcapping"), Value::F32(cap)));
    }
    if let Some(cap) = shape.final_softcap {
        m.push((key("final_logit_softcapping"), Value::F32(cap)));
    }
    if let (Some(n), Some(used)) = (shape.experts, shape.experts_used) {
        m.push((key("expert_count"), Value::U32(n)));
        m.push((key("expert_used_count"), Value::U32(used)));
    }
    m
}

/// Streams the file: header, then every tensor's data with its padding.
fn write_file(
    path: &Path,
    header: &[u8],
    tensors: &[plan::TensorPlan],
    seed: u64,
    total: u64,
    alias: &str,
    observer: &dyn MakeObserver,
) -> Result<(), SynthError> {
    let err = |source| SynthError::Write {
        alias: alias.to_string(),
        source,
    };
    let file = File::create(path).map_err(err)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(header).map_err(err)?;
    let mut done = header.len() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    const CHUNK: u64 = 8 << 20;
    let mut buf = Vec::new();
    for t in tensors {
        let block = t.ty.block_bytes();
        let mut left = t.bytes();
        while left > 0 {
            let n = left.min(CHUNK / block * block);
            buf.resize(n as usize, 0);
            match t.fill {
                Fill::Random => blocks::fill_random(t.ty, &mut buf, &mut rng),
                Fill::One => buf
                    .chunks_exact_mut(4)
                    .for_each(|c| c.copy_from_slice(&1f32.to_le_bytes())),
                Fill::Zero => buf.fill(0),
            }
            out.write_all(&buf).map_err(err)?;
            left -= n;
            done += n;
            observer.writing(alias, done, total);
        }
        let pad = gguf_writer::padding(t.bytes()) as usize;
        out.write_all(&[0u8; 32][..pad]).map_err(err)?;
        done += pad as u64;
    }
    let file = out.into_inner().map_err(|e| err(e.into_error()))?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests;
