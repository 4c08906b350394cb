//! Quantisation variants made locally, through llama.cpp's own quantizer
//! (`llama_model_quantize`, exposed by llama-cpp-sys-2; llama-cpp-2 has no safe wrapper, so
//! this module is the one place hearth calls it).
//!
//! The quantizer writes the whole output file itself; hearth gives it a temporary path, checks
//! the result is a GGUF of the asked type, and only then lets the cache adopt it, so a failed
//! or interrupted run never leaves a partial variant behind.

use std::ffi::CString;
use std::path::Path;

use llama_cpp_sys_2 as sys;

/// A quantisation type `hearth model quantize --type` accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantType {
    /// The name users type and the GGUF reports (`Q4_0`).
    pub name: &'static str,
    /// Approximate bits per weight, for the expected size and progress.
    pub bits_per_weight: f64,
    ftype: sys::llama_ftype,
}

/// Every type offered: those llama.cpp can make without an importance matrix.
pub const TYPES: &[QuantType] = &[
    QuantType {
        name: "F16",
        bits_per_weight: 16.0,
        ftype: sys::LLAMA_FTYPE_MOSTLY_F16,
    },
    QuantType {
        name: "BF16",
        bits_per_weight: 16.0,
        ftype: sys::LLAMA_FTYPE_MOSTLY_BF16,
    },
    QuantType {
        name: "Q8_0",
        bits_per_weight: 8.5,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q8_0,
    },
    QuantType {
        name: "Q6_K",
        bits_per_weight: 6.56,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q6_K,
    },
    QuantType {
        name: "Q5_K_M",
        bits_per_weight: 5.7,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q5_K_M,
    },
    QuantType {
        name: "Q5_K_S",
        bits_per_weight: 5.5,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q5_K_S,
    },
    QuantType {
        name: "Q5_1",
        bits_per_weight: 6.0,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q5_1,
    },
    QuantType {
        name: "Q5_0",
        bits_per_weight: 5.5,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q5_0,
    },
    QuantType {
        name: "Q4_K_M",
        bits_per_weight: 4.85,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
    },
    QuantType {
        name: "Q4_K_S",
        bits_per_weight: 4.6,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q4_K_S,
    },
    QuantType {
        name: "Q4_1",
        bits_per_weight: 5.0,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q4_1,
    },
    QuantType {
        name: "Q4_0",
        bits_per_weight: 4.5,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q4_0,
    },
    QuantType {
        name: "Q3_K_L",
        bits_per_weight: 4.3,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q3_K_L,
    },
    QuantType {
        name: "Q3_K_M",
        bits_per_weight: 3.9,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q3_K_M,
    },
    QuantType {
        name: "Q3_K_S",
        bits_per_weight: 3.5,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q3_K_S,
    },
    QuantType {
        name: "Q2_K",
        bits_per_weight: 3.0,
        ftype: sys::LLAMA_FTYPE_MOSTLY_Q2_K,
    },
];

/// Why a variant could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The type is not one hearth offers.
    #[error("unknown quantisation type `{0}`; choose one of: {list}", list = type_list())]
    UnknownType(String),
    /// A path cannot be handed to llama.cpp.
    #[error("the path {0} cannot be passed to llama.cpp (it contains a NUL byte)")]
    BadPath(String),
    /// llama.cpp refused or failed.
    #[error("llama.cpp could not quantize {source_path}: {reason}")]
    Failed {
        /// The source file.
        source_path: String,
        /// What it said.
        reason: String,
    },
}

/// `q4_0, q4_1, …` for messages.
pub fn type_list() -> String {
    TYPES
        .iter()
        .map(|t| t.name.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The type named `name`, in any case (`q4_k_m`, `Q4_K_M`).
pub fn parse_type(name: &str) -> Result<QuantType, QuantizeError> {
    TYPES
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name.trim()))
        .copied()
        .ok_or_else(|| QuantizeError::UnknownType(name.to_string()))
}

/// True for unquantized weights (F32, F16, BF16): the only sources that lose nothing.
pub fn is_full_precision(quantization: Option<&str>) -> bool {
    matches!(
        quantization.map(str::to_ascii_uppercase).as_deref(),
        Some("F32" | "F16" | "BF16" | "ALL_F32")
    )
}

/// Writes `dst` as `ty` from the GGUF at `src`, on `threads` threads. `allow_requantize` lets
/// an already-quantized source through (the caller warns). Blocking: run it off async code.
pub fn quantize(
    src: &Path,
    dst: &Path,
    ty: QuantType,
    threads: u32,
    allow_requantize: bool,
) -> Result<(), QuantizeError> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| QuantizeError::BadPath(p.display().to_string()))
    };
    let (src_c, dst_c) = (c(src)?, c(dst)?);
    super::backend::llama_backend().map_err(|e| QuantizeError::Failed {
        source_path: src.display().to_string(),
        reason: e.to_string(),
    })?;
    // SAFETY: the default parameters are plain values and null pointers; the paths are valid
    // NUL-terminated strings that outlive the call; llama.cpp reads `params` only during it.
    let status = unsafe {
        let mut params = sys::llama_model_quantize_default_params();
        params.nthread = threads.max(1) as i32;
        params.ftype = ty.ftype;
        params.allow_requantize = allow_requantize;
        sys::llama_model_quantize(src_c.as_ptr(), dst_c.as_ptr(), &params)
    };
    if status == 0 {
        Ok(())
    } else {
        Err(QuantizeError::Failed {
            source_path: src.display().to_string(),
            reason: format!(
                "llama_model_quantize returned {status} (the log above says why; a source that \
                 is already quantized needs allow_requantize)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_in_any_case_and_unknown_ones_list_the_choices() {
        assert_eq!(parse_type("q4_k_m").unwrap().name, "Q4_K_M");
        assert_eq!(parse_type(" Q8_0 ").unwrap().name, "Q8_0");
        let err = parse_type("q3_xl").unwrap_err().to_string();
        assert!(
            err.contains("q3_xl") && err.contains("q4_0") && err.contains("q8_0"),
            "{err}"
        );
        assert!(is_full_precision(Some("F16")) && is_full_precision(Some("bf16")));
        assert!(!is_full_precision(Some("Q4_1")) && !is_full_precision(None));
    }
}
