//! The machine and software a run measured, so that figures from two runs are only compared
//! knowing what differed (CPU features change llama.cpp's kernels and even its output).

use crate::store::record::Environment;

/// CPU flags that change which llama.cpp kernels run.
const RELEVANT_FLAGS: [&str; 12] = [
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vnni",
    "avx_vnni",
    "amx_tile",
    "sse4_2",
    "neon",
    "asimd",
];

/// Reads the environment of this process; `threads` is what the engine was given.
pub fn current(threads: u32) -> Environment {
    use crate::engine::devices;
    use crate::text::human_bytes;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let flags = field("flags")
        .or_else(|| field("Features"))
        .unwrap_or_default();
    let cpu_features = RELEVANT_FLAGS
        .iter()
        .filter(|f| flags.split_whitespace().any(|x| x == **f))
        .map(|f| f.to_string())
        .collect();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let commit = env!("HEARTH_GIT_COMMIT");
    Environment {
        hostname: read("/proc/sys/kernel/hostname"),
        os,
        kernel: read("/proc/sys/kernel/osrelease"),
        cpu_model: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        cpu_features,
        logical_cpus: num_cpus::get() as u32,
        physical_cores: num_cpus::get_physical() as u32,
        memory_bytes: system.total_memory(),
        threads,
        hearth_version: env!("CARGO_PKG_VERSION").to_string(),
        llama_cpp_version: format!(
            "llama-cpp-sys-2 {} (vendored llama.cpp)",
            env!("HEARTH_LLAMA_CPP_SYS_VERSION")
        ),
        git_commit: (!commit.is_empty()).then(|| commit.to_string()),
        gpu_backends: devices::gpu_backends_compiled()
            .into_iter()
            .map(String::from)
            .collect(),
        devices: devices::devices()
            .into_iter()
            .map(|d| {
                format!(
                    "{}: {} ({}, {}, {})",
                    d.name,
                    d.description,
                    d.backend,
                    d.kind,
                    human_bytes(d.memory_total)
                )
            })
            .collect(),
    }
}
