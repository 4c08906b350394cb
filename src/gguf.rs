//! Reads a GGUF file's metadata (architecture, sizes, chat template) without loading weights,
//! through llama.cpp's own `gguf` reader, and checks the file is whole before the engine maps it.
//! This lets `model info`, `model add` and the memory estimate work before any load, and turns
//! a truncated or foreign file into a clear error instead of a failed mmap deep in llama.cpp.

use std::ffi::{CStr, CString};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a file is not a usable GGUF model.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with the GGUF magic.
    #[error("{0} is not a GGUF file (wrong magic bytes)")]
    NotGguf(PathBuf),
    /// llama.cpp's reader refused the header.
    #[error("{0} is a corrupt GGUF file (its header or metadata does not parse)")]
    Corrupt(PathBuf),
    /// The tensor data runs past the end of the file.
    #[error("{path} is truncated: its tensors need {expected} bytes but the file has {actual}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes on disk.
        actual: u64,
    },
}

/// One tensor's facts that decide whether llama.cpp's CPU backend repacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorBytes {
    /// `ggml_type` id.
    pub ggml_type: u32,
    /// Rows (`ne[1]`).
    pub rows: u64,
    /// Bytes of data.
    pub bytes: u64,
    /// The token embedding (looked up by row, never multiplied: never repacked).
    pub embedding: bool,
}

/// Bytes of `tensors` that llama.cpp's CPU backend repacks on this machine
/// (`ggml_repack_get_optimal_repack_type` in ggml-cpu/repack.cpp): Q4_0, Q4_K, IQ4_NL and
/// MXFP4 with whole groups of 8 rows on x86 with AVX2 (Q2_K too with AVX-512); on ARM with
/// dot-product instructions also Q5_K and Q6_K. Nothing elsewhere.
pub fn repacked_bytes(tensors: &[TensorBytes]) -> u64 {
    const Q4_0: u32 = 2;
    const Q2_K: u32 = 10;
    const Q4_K: u32 = 12;
    const IQ4_NL: u32 = 20;
    const MXFP4: u32 = 39;
    #[allow(unused_mut)]
    let mut types: Vec<u32> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            types.extend([Q4_0, Q4_K, IQ4_NL, MXFP4]);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            types.push(Q2_K);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        const Q5_K: u32 = 13;
        const Q6_K: u32 = 14;
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            types.extend([Q4_0, Q4_K, IQ4_NL, MXFP4, Q5_K, Q6_K]);
        }
    }
    tensors
        .iter()
        .filter(|t| !t.embedding && t.rows.is_multiple_of(8) && types.contains(&t.ggml_type))
        .map(|t| t.bytes)
        .sum()
}

/// What hearth needs to know about a model file before (and after) loading it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GgufInfo {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Context length the model was trained with.
    pub context_length: Option<u64>,
    /// Number of transformer blocks.
    pub block_count: Option<u64>,
    /// Hidden size.
    pub embedding_length: Option<u64>,
    /// Attention heads.
    pub head_count: Option<u64>,
    /// Key/value heads (grouped-query attention).
    pub head_count_kv: Option<u64>,
    /// Per-head key size, when stored explicitly.
    pub key_length: Option<u64>,
    /// Per-head value size, when stored explicitly.
    pub value_length: Option<u64>,
    /// Quantisation name derived from `general.file_type`.
    pub quantization: Option<String>,
    /// `general.license` (e.g. `gemma`, `apache-2.0`): the file's own word on its licence, shown
    /// for models the catalog knows nothing about.
    pub license: Option<String>,
    /// Tokens a sliding-window attention layer sees (`{arch}.attention.sliding_window`), for
    /// models that interleave local and global layers (Gemma 2 and 3).
    pub sliding_window: Option<u64>,
    /// The model's own Jinja chat template.
    #[serde(skip)]
    pub chat_template: Option<String>,
    /// Vocabulary size (rows of the embedding matrix).
    pub vocab_size: Option<u64>,
    /// Bytes of weights llama.cpp's CPU backend repacks on this machine (counted twice in
    /// memory; see [`repacked_bytes`]).
    pub repacked_bytes: u64,
    /// Number of tensors.
    pub n_tensors: u64,
    /// Parameter count: elements summed over all tensors.
    pub n_params: u64,
    /// File size in bytes.
    pub file_size: u64,
}

impl GgufInfo {
    /// KV-cache bytes per token of context at f16 (K and V, every layer). Sliding-window layers
    /// count in full, as the engine allocates them: it runs llama.cpp with a full-size SWA cache
    /// (`swa_full`, see `engine::llama::scheduler`), which keeps every position of every layer
    /// so that prompt reuse and draft rollback stay exact.
    pub fn kv_bytes_per_token(&self) -> Option<u64> {
        let layers = self.block_count?;
        let heads = self.head_count?;
        let kv_heads = self.head_count_kv.unwrap_or(heads);
        let head_dim_k = self
            .key_length
            .or_else(|| Some(self.embedding_length? / heads))?;
        let head_dim_v = self.value_length.unwrap_or(head_dim_k);
        Some(layers * kv_heads * (head_dim_k + head_dim_v) * 2)
    }
}

/// Owns a `gguf_context` and frees it on drop.
struct Context(*mut llama_cpp_sys_2::gguf_context);

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the pointer came from gguf_init_from_file and is freed exactly once.
        unsafe { llama_cpp_sys_2::gguf_free(self.0) }
    }
}

// Value type ids from gguf.h (stable across GGUF versions).
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;

impl Context {
    fn key(&self, key: &str) -> Option<i64> {
        let c = CString::new(key).ok()?;
        // SAFETY: valid context and NUL-terminated key.
        let id = unsafe { llama_cpp_sys_2::gguf_find_key(self.0, c.as_ptr()) };
        (id >= 0).then_some(id)
    }

    fn kind(&self, id: i64) -> u32 {
        // SAFETY: id was returned by gguf_find_key.
        unsafe { llama_cpp_sys_2::gguf_get_kv_type(self.0, id) as u32 }
    }

    fn int(&self, key: &str) -> Option<u64> {
        let id = self.key(key)?;
        // SAFETY: each getter is called only for the type the file declares.
        unsafe {
            Some(match self.kind(id) {
                T_U8 => llama_cpp_sys_2::gguf_get_val_u8(self.0, id) as u64,
                T_I8 => llama_cpp_sys_2::gguf_get_val_i8(self.0, id).max(0) as u64,
                T_U16 => llama_cpp_sys_2::gguf_get_val_u16(self.0, id) as u64,
                T_I16 => llama_cpp_sys_2::gguf_get_val_i16(self.0, id).max(0) as u64,
                T_U32 => llama_cpp_sys_2::gguf_get_val_u32(self.0, id) as u64,
                T_I32 => llama_cpp_sys_2::gguf_get_val_i32(self.0, id).max(0) as u64,
                T_U64 => llama_cpp_sys_2::gguf_get_val_u64(self.0, id),
                T_I64 => llama_cpp_sys_2::gguf_get_val_i64(self.0, id).max(0) as u64,
                _ => return None,
            })
        }
    }

    fn array_len(&self, key: &str) -> Option<u64> {
        let id = self.key(key)?;
        // SAFETY: id was returned by gguf_find_key; the length of a non-array is not asked.
        (self.kind(id) == T_ARRAY)
            .then(|| unsafe { llama_cpp_sys_2::gguf_get_arr_n(self.0, id) } as u64)
    }

    fn string(&self, key: &str) -> Option<String> {
        let id = self.key(key)?;
        if self.kind(id) != T_STRING {
            return None;
        }
        // SAFETY: the value is a string; llama.cpp returns a NUL-terminated pointer it owns.
        let ptr = unsafe { llama_cpp_sys_2::gguf_get_val_str(self.0, id) };
        (!ptr.is_null()).then(|| {
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// The quantisation name for llama.cpp's `general.file_type` (enum `llama_ftype`).
fn ftype_name(ftype: u64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        32 => "BF16",
        _ => return None,
    })
}

/// A parameter count as people say it: `135M`, `1.5B`.
pub fn human_params(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.0}M", n as f64 / 1e6),
        n => format!("{:.0}K", n as f64 / 1e3),
    }
}

/// Reads and checks the metadata of the GGUF file at `path`.
pub fn read(path: &Path) -> Result<GgufInfo, GgufError> {
    let io = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let file_size = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(GgufError::NotGguf(path.to_path_buf()));
    }
    drop(file);
    let c_path = CString::new(path.to_string_lossy().as_bytes())
        .map_err(|_| GgufError::Corrupt(path.to_path_buf()))?;
    let params = llama_cpp_sys_2::gguf_init_params {
        no_alloc: true,
        ctx: std::ptr::null_mut(),
    };
    // SAFETY: a valid path; with no_alloc llama.cpp reads only the header and tensor infos.
    let raw = unsafe { llama_cpp_sys_2::gguf_init_from_file(c_path.as_ptr(), params) };
    if raw.is_null() {
        return Err(GgufError::Corrupt(path.to_path_buf()));
    }
    let ctx = Context(raw);
    // SAFETY: valid context; tensor ids are within 0..n_tensors; names are NUL-terminated
    // strings llama.cpp owns.
    let tensors: Vec<TensorBytes> = unsafe {
        (0..llama_cpp_sys_2::gguf_get_n_tensors(ctx.0).max(0))
            .map(|i| {
                let ne =
                    std::slice::from_raw_parts(llama_cpp_sys_2::gguf_get_tensor_ne(ctx.0, i), 4);
                let name = CStr::from_ptr(llama_cpp_sys_2::gguf_get_tensor_name(ctx.0, i));
                TensorBytes {
                    ggml_type: llama_cpp_sys_2::gguf_get_tensor_type(ctx.0, i) as u32,
                    rows: ne[1].max(1) as u64,
                    bytes: llama_cpp_sys_2::gguf_get_tensor_size(ctx.0, i) as u64,
                    embedding: name.to_bytes() == b"token_embd.weight",
                }
            })
            .collect()
    };
    // SAFETY: valid context; tensor ids are within 0..n_tensors.
    let (n_tensors, data_end, n_params) = unsafe {
        let n = llama_cpp_sys_2::gguf_get_n_tensors(ctx.0).max(0);
        let base = llama_cpp_sys_2::gguf_get_data_offset(ctx.0) as u64;
        // `ne` holds GGML_MAX_DIMS (4) extents, 1 for unused dimensions.
        let params: u64 = (0..n)
            .map(|i| {
                let ne =
                    std::slice::from_raw_parts(llama_cpp_sys_2::gguf_get_tensor_ne(ctx.0, i), 4);
                ne.iter().map(|&d| d.max(1) as u64).product::<u64>()
            })
            .sum();
        let end = (0..n)
            .map(|i| {
                llama_cpp_sys_2::gguf_get_tensor_offset(ctx.0, i) as u64
                    + llama_cpp_sys_2::gguf_get_tensor_size(ctx.0, i) as u64
            })
            .max()
            .unwrap_or(0);
        (n as u64, base + end, params)
    };
    if data_end > file_size {
        return Err(GgufError::Truncated {
            path: path.to_path_buf(),
            expected: data_end,
            actual: file_size,
        });
    }
    let architecture = ctx
        .string("general.architecture")
        .ok_or_else(|| GgufError::Corrupt(path.to_path_buf()))?;
    let arch = |k: &str| ctx.int(&format!("{architecture}.{k}"));
    Ok(GgufInfo {
        name: ctx.string("general.name"),
        context_length: arch("context_length"),
        block_count: arch("block_count"),
        embedding_length: arch("embedding_length"),
        head_count: arch("attention.head_count"),
        head_count_kv: arch("attention.head_count_kv"),
        key_length: arch("attention.key_length"),
        value_length: arch("attention.value_length"),
        quantization: ctx
            .int("general.file_type")
            .and_then(ftype_name)
            .map(Into::into),
        license: ctx.string("general.license"),
        sliding_window: arch("attention.sliding_window"),
        chat_template: ctx.string("tokenizer.chat_template"),
        vocab_size: arch("vocab_size").or_else(|| ctx.array_len("tokenizer.ggml.tokens")),
        repacked_bytes: repacked_bytes(&tensors),
        n_tensors,
        n_params,
        file_size,
        architecture,
    })
}
