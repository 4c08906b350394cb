//! The process-wide llama.cpp backend.
//!
//! `LlamaBackend::init()` succeeds once per process (a second call fails), yet the engine, the
//! device listing and quantization all need it, tests included, which load many engines in
//! one process. It lives here, apart from its users, so that none of them depends on another
//! just to reach it.

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

use super::EngineError;

/// llama.cpp's backend may be initialised once per process; keep it for the process lifetime.
/// llama.cpp's log goes to `tracing` from the first call on.
pub(crate) fn llama_backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load(e.clone()))
}

/// Makes the calling thread, and every thread it starts afterwards (they inherit the SSE
/// control register: llama.cpp's compute threads are started by the engine thread), flush
/// denormal floats to zero. Why: a real model's attention is peaked, so its softmax produces
/// values below 1e-38 by the thousand, and on x86 every operation on such a denormal takes a
/// microcode assist. They contribute nothing a float can show in the logits. No-op elsewhere
/// (AArch64 flushes in its default mode for these kernels).
pub(crate) fn flush_denormals_to_zero() {
    #[cfg(target_arch = "x86_64")]
    {
        // FTZ (bit 15: results flushed) and DAZ (bit 6: inputs read as zero).
        const FTZ_DAZ: u32 = 0x8040;
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores this thread's MXCSR into `csr`, a valid, aligned u32.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr |= FTZ_DAZ;
        // SAFETY: ldmxcsr loads a valid MXCSR value (the current one with two mode bits set).
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
        }
    }
}
