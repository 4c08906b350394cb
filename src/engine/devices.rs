//! Compute devices and GPU offload: what llama.cpp sees in this build on this machine, and
//! how many layers go to a GPU. A request for GPU layers that this build or machine cannot
//! honour is an error that says what to do, never a silent run on the CPU under a GPU label.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How many transformer layers to offload to the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum GpuLayers {
    /// This many layers (0 = CPU only).
    Count(u32),
    /// Every layer (and the output layer).
    All,
}

impl GpuLayers {
    /// True when nothing is offloaded.
    pub fn is_cpu(self) -> bool {
        self == GpuLayers::Count(0)
    }

    /// The value llama.cpp takes (`n_gpu_layers`; a count beyond the model's layers means all).
    pub fn n_gpu_layers(self) -> u32 {
        match self {
            GpuLayers::Count(n) => n,
            GpuLayers::All => 999,
        }
    }

    /// Layers of a model with `blocks` blocks that end up on the GPU.
    pub fn offloaded(self, blocks: u64) -> u64 {
        match self {
            GpuLayers::Count(n) => u64::from(n).min(blocks),
            GpuLayers::All => blocks,
        }
    }
}

impl fmt::Display for GpuLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuLayers::Count(n) => write!(f, "{n}"),
            GpuLayers::All => f.write_str("all"),
        }
    }
}

impl FromStr for GpuLayers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "max" | "-1" => Ok(GpuLayers::All),
            n => n
                .parse()
                .map(GpuLayers::Count)
                .map_err(|_| format!("`{s}` is not a layer count or `all`")),
        }
    }
}

impl From<GpuLayers> for String {
    fn from(g: GpuLayers) -> String {
        g.to_string()
    }
}

impl TryFrom<String> for GpuLayers {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Where a model's layers go: how many to a GPU, and which GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offload {
    /// Layers on the GPU.
    pub gpu_layers: GpuLayers,
    /// The GPU (ggml device index); `None` lets llama.cpp choose.
    pub device: Option<usize>,
}

impl Default for Offload {
    /// CPU only: what every build can do.
    fn default() -> Self {
        Offload {
            gpu_layers: GpuLayers::Count(0),
            device: None,
        }
    }
}

/// One device llama.cpp can run on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Device {
    /// ggml's device index (what `--device` takes).
    pub index: usize,
    /// `CPU`, `CUDA0`, `Vulkan0`…
    pub name: String,
    /// The hardware, as the driver names it.
    pub description: String,
    /// The ggml backend (`CPU`, `CUDA`, `Vulkan`, `Metal`).
    pub backend: String,
    /// `cpu`, `gpu`, `igpu` (integrated) or `accel`.
    pub kind: String,
    /// Memory, bytes.
    pub memory_total: u64,
    /// Free memory now, bytes.
    pub memory_free: u64,
}

impl Device {
    /// GPUs, integrated or not: what layers can be offloaded to.
    pub fn is_gpu(&self) -> bool {
        self.kind == "gpu" || self.kind == "igpu"
    }
}

/// GPU backends compiled into this build (cargo features `cuda`, `vulkan`, `metal`).
pub fn gpu_backends_compiled() -> Vec<&'static str> {
    let mut out = Vec::new();
    if cfg!(feature = "cuda") {
        out.push("cuda");
    }
    if cfg!(feature = "vulkan") {
        out.push("vulkan");
    }
    if cfg!(feature = "metal") {
        out.push("metal");
    }
    out
}

/// Every device llama.cpp sees (the CPU included).
pub fn devices() -> Vec<Device> {
    if super::backend::llama_backend().is_err() {
        return Vec::new();
    }
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| Device {
            index: d.index,
            name: d.name,
            description: d.description,
            backend: d.backend,
            kind: match d.device_type {
                llama_cpp_2::LlamaBackendDeviceType::Cpu => "cpu",
                llama_cpp_2::LlamaBackendDeviceType::Gpu => "gpu",
                llama_cpp_2::LlamaBackendDeviceType::IntegratedGpu => "igpu",
                _ => "accel",
            }
            .to_string(),
            memory_total: d.memory_total as u64,
            memory_free: d.memory_free as u64,
        })
        .collect()
}

/// The default offload: every layer when a GPU backend is built in and a GPU is found, else
/// none.
pub fn default_gpu_layers() -> GpuLayers {
    if !gpu_backends_compiled().is_empty() && devices().iter().any(Device::is_gpu) {
        GpuLayers::All
    } else {
        GpuLayers::Count(0)
    }
}

/// Why `layers` (on `device`, when one is named) cannot be honoured here, if it cannot: a
/// build without a GPU backend, no GPU found, or an unknown device.
pub fn offload_problem(layers: GpuLayers, device: Option<usize>) -> Option<String> {
    if layers.is_cpu() && device.is_none() {
        return None;
    }
    let compiled = gpu_backends_compiled();
    if compiled.is_empty() {
        return Some(
            "this hearth was built without a GPU backend; rebuild with `cargo build --release \
             --features cuda` (or `vulkan`, `metal`; see the README) to offload layers"
                .to_string(),
        );
    }
    let all = devices();
    let gpus: Vec<&Device> = all.iter().filter(|d| d.is_gpu()).collect();
    if gpus.is_empty() {
        return Some(format!(
            "no GPU found by the {} backend on this machine (see `hearth devices`)",
            compiled.join("/")
        ));
    }
    match device {
        Some(i) if !gpus.iter().any(|d| d.index == i) => Some(format!(
            "device {i} is not a GPU here; GPUs: {}",
            gpus.iter()
                .map(|d| format!("{} {}", d.index, d.name))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_counts_parse_and_print() {
        assert_eq!("all".parse(), Ok(GpuLayers::All));
        assert_eq!(" 12 ".parse(), Ok(GpuLayers::Count(12)));
        assert_eq!("0".parse::<GpuLayers>().map(GpuLayers::is_cpu), Ok(true));
        assert!("many".parse::<GpuLayers>().is_err());
        assert_eq!(GpuLayers::All.to_string(), "all");
        assert_eq!(GpuLayers::Count(40).offloaded(30), 30);
        assert_eq!(GpuLayers::All.offloaded(30), 30);
    }

    #[test]
    fn this_build_sees_its_cpu_and_refuses_offload_without_a_gpu_backend() {
        let all = devices();
        assert!(all.iter().any(|d| d.kind == "cpu"), "{all:?}");
        assert_eq!(offload_problem(GpuLayers::Count(0), None), None);
        if gpu_backends_compiled().is_empty() {
            let why = offload_problem(GpuLayers::All, None).unwrap();
            assert!(why.contains("--features cuda"), "{why}");
            assert_eq!(default_gpu_layers(), GpuLayers::Count(0));
        }
    }
}
