//! GPU figures of a level — memory used, utilisation, power and energy — read through NVML.
//!
//! NVML (`libnvidia-ml.so.1`, part of NVIDIA's driver) is loaded at run time by
//! `nvml-wrapper`, so every build runs everywhere: without the library or a GPU there is no
//! meter and levels simply carry no GPU figures. Readings are whole-device (every visible
//! GPU, summed), like the RAPL counters on the CPU side: a benchmark machine is meant to be
//! otherwise idle, and the report says so.

use std::ffi::OsStr;
use std::sync::OnceLock;

use nvml_wrapper::Nvml;

use crate::store::record::GpuLevel;

/// Libraries tried, in order: the driver's versioned name, then the development link.
const NVML_LIBRARIES: &[&str] = &["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// The GPUs NVML sees, opened once per process (initialising NVML costs tens of
/// milliseconds and holds driver state).
pub struct GpuMeter {
    nvml: Nvml,
    devices: Vec<u32>,
    names: Vec<String>,
}

/// One reading, summed over the watched GPUs (utilisation: their mean).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GpuReading {
    /// Device memory in use, bytes (every process's, like `nvidia-smi`).
    pub memory_used_bytes: u64,
    /// Share of time a kernel was running over NVML's last sampling period, percent.
    pub utilization_pct: f64,
    /// Board power draw now, watts.
    pub power_w: f64,
    /// The board's energy counter (millijoules since the driver loaded), where the GPU has
    /// one (Volta and newer).
    pub energy_mj: Option<u64>,
}

/// How a level's GPU energy was obtained.
pub const METHOD_COUNTER: &str = "nvml: GPU energy counter";
/// The fallback when a GPU has no energy counter.
pub const METHOD_POWER: &str = "nvml: GPU power samples integrated over time";

impl GpuMeter {
    /// The process's meter, or None where NVML or a GPU is absent (the CPU-only case).
    /// `CUDA_VISIBLE_DEVICES` narrows the GPUs watched to those the engine can use, when it
    /// names indices.
    pub fn shared() -> Option<&'static GpuMeter> {
        static METER: OnceLock<Option<GpuMeter>> = OnceLock::new();
        METER
            .get_or_init(|| {
                let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
                Self::open(NVML_LIBRARIES, visible.as_deref())
            })
            .as_ref()
    }

    /// Opens NVML from the first of `libraries` that loads; None when none does or no GPU
    /// is visible.
    pub fn open(libraries: &[&str], visible: Option<&str>) -> Option<Self> {
        let nvml = libraries
            .iter()
            .find_map(|lib| Nvml::builder().lib_path(OsStr::new(lib)).init().ok())?;
        let count = nvml.device_count().ok()?;
        let devices = visible_devices(visible, count);
        if devices.is_empty() {
            return None;
        }
        let names = devices
            .iter()
            .map(|&i| {
                nvml.device_by_index(i)
                    .and_then(|d| d.name())
                    .unwrap_or_else(|_| format!("GPU {i}"))
            })
            .collect::<Vec<_>>();
        tracing::debug!(?names, "NVML: measuring GPUs");
        Some(Self {
            nvml,
            devices,
            names,
        })
    }

    /// The GPUs watched, by name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads every watched GPU now; a figure a GPU cannot give is left out of the sum.
    pub fn read(&self) -> GpuReading {
        let mut r = GpuReading::default();
        let mut util_sum = 0.0;
        let mut energy: Option<u64> = Some(0);
        for &i in &self.devices {
            let Ok(d) = self.nvml.device_by_index(i) else {
                energy = None;
                continue;
            };
            if let Ok(m) = d.memory_info() {
                r.memory_used_bytes += m.used;
            }
            if let Ok(u) = d.utilization_rates() {
                util_sum += f64::from(u.gpu);
            }
            if let Ok(mw) = d.power_usage() {
                r.power_w += f64::from(mw) / 1000.0;
            }
            energy = match (energy, d.total_energy_consumption()) {
                (Some(sum), Ok(mj)) => Some(sum + mj),
                _ => None,
            };
        }
        r.utilization_pct = util_sum / self.devices.len() as f64;
        r.energy_mj = energy;
        r
    }
}

/// The device indices `CUDA_VISIBLE_DEVICES` leaves visible (all when unset, or when it names
/// devices by UUID, which NVML's indices cannot be matched against here).
fn visible_devices(visible: Option<&str>, count: u32) -> Vec<u32> {
    let all = || (0..count).collect::<Vec<_>>();
    let Some(list) = visible.map(str::trim) else {
        return all();
    };
    if list.is_empty() {
        return Vec::new();
    }
    let parsed: Option<Vec<u32>> = list.split(',').map(|s| s.trim().parse().ok()).collect();
    match parsed {
        // CUDA stops at the first invalid index; so does this.
        Some(ids) => ids.into_iter().take_while(|&i| i < count).collect(),
        None => all(),
    }
}

/// A level's GPU figures from its samples (milliseconds on the level's clock, in order) and
/// the readings at its start and end. Energy is the counter's difference when both ends have
/// one, else power integrated over the samples (trapezoids). None without samples.
pub fn summarize(
    devices: &[String],
    start: GpuReading,
    samples: &[(f64, GpuReading)],
    end: (f64, GpuReading),
) -> Option<GpuLevel> {
    if samples.is_empty() {
        return None;
    }
    let n = samples.len() as f64;
    let peak_memory_bytes = samples
        .iter()
        .map(|(_, r)| r.memory_used_bytes)
        .chain([start.memory_used_bytes, end.1.memory_used_bytes])
        .max()
        .unwrap_or(0);
    let fold = |f: fn(&GpuReading) -> f64| {
        let values = samples.iter().map(|(_, r)| f(r));
        let mean = values.clone().sum::<f64>() / n;
        let peak = values.fold(0.0_f64, f64::max);
        (mean, peak)
    };
    let (mean_utilization_pct, peak_utilization_pct) = fold(|r| r.utilization_pct);
    let (mean_power_w, peak_power_w) = fold(|r| r.power_w);
    let (energy_j, energy_method) = match (start.energy_mj, end.1.energy_mj) {
        (Some(a), Some(b)) if b >= a => ((b - a) as f64 / 1000.0, METHOD_COUNTER),
        _ => {
            let mut points: Vec<(f64, f64)> = vec![(0.0, start.power_w)];
            points.extend(samples.iter().map(|(t, r)| (*t, r.power_w)));
            points.push((end.0, end.1.power_w));
            let joules = points
                .windows(2)
                .map(|w| (w[1].0 - w[0].0).max(0.0) / 1000.0 * (w[0].1 + w[1].1) / 2.0)
                .sum();
            (joules, METHOD_POWER)
        }
    };
    Some(GpuLevel {
        devices: devices.to_vec(),
        peak_memory_bytes,
        mean_utilization_pct,
        peak_utilization_pct,
        mean_power_w,
        peak_power_w,
        energy_j,
        energy_method: energy_method.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(mem: u64, util: f64, power: f64, energy: Option<u64>) -> GpuReading {
        GpuReading {
            memory_used_bytes: mem,
            utilization_pct: util,
            power_w: power,
            energy_mj: energy,
        }
    }

    #[test]
    fn absent_library_means_no_meter() {
        // The path a CPU-only machine takes: the library does not load, nothing is measured.
        assert!(GpuMeter::open(&["libhearth-no-such-nvml.so.1"], None).is_none());
        assert!(GpuMeter::open(&[], None).is_none());
    }

    #[test]
    fn visible_devices_follow_cuda_rules() {
        assert_eq!(visible_devices(None, 2), vec![0, 1]);
        assert_eq!(visible_devices(Some(""), 2), Vec::<u32>::new());
        assert_eq!(visible_devices(Some("1"), 2), vec![1]);
        assert_eq!(visible_devices(Some(" 1, 0 "), 2), vec![1, 0]);
        // Stops at the first index that does not exist, as CUDA does.
        assert_eq!(visible_devices(Some("0,5,1"), 2), vec![0]);
        // UUIDs cannot be matched to indices here: all are watched.
        assert_eq!(visible_devices(Some("GPU-8d2c"), 2), vec![0, 1]);
    }

    #[test]
    fn energy_from_the_counter_when_both_ends_have_it() {
        let samples = [
            (100.0, reading(10 << 30, 50.0, 300.0, Some(1_000_100))),
            (200.0, reading(12 << 30, 100.0, 500.0, Some(1_000_150))),
        ];
        let level = summarize(
            &["NVIDIA H200".into()],
            reading(8 << 30, 0.0, 100.0, Some(1_000_000)),
            &samples,
            (300.0, reading(9 << 30, 0.0, 120.0, Some(1_090_000))),
        )
        .unwrap();
        assert_eq!(level.energy_method, METHOD_COUNTER);
        assert!((level.energy_j - 90.0).abs() < 1e-9);
        assert_eq!(level.peak_memory_bytes, 12 << 30);
        assert!((level.mean_utilization_pct - 75.0).abs() < 1e-9);
        assert_eq!(level.peak_utilization_pct, 100.0);
        assert!((level.mean_power_w - 400.0).abs() < 1e-9);
        assert_eq!(level.peak_power_w, 500.0);
        assert!(level.busy());
    }

    #[test]
    fn energy_from_power_samples_without_a_counter() {
        // 0→1 s at 100 W, 1→2 s rising to 300 W: 100 J + 200 J.
        let level = summarize(
            &[],
            reading(0, 0.0, 100.0, None),
            &[(1000.0, reading(0, 0.0, 100.0, None))],
            (2000.0, reading(0, 0.0, 300.0, None)),
        )
        .unwrap();
        assert_eq!(level.energy_method, METHOD_POWER);
        assert!((level.energy_j - 300.0).abs() < 1e-9);
        assert!(
            !level.busy(),
            "no kernel ran: an idle GPU's draw is not the level's"
        );
    }

    #[test]
    fn a_counter_that_went_backwards_falls_back_to_power() {
        // The driver reloaded mid-level (the counter restarts at zero).
        let level = summarize(
            &[],
            reading(0, 10.0, 50.0, Some(5_000)),
            &[(500.0, reading(0, 10.0, 50.0, Some(1)))],
            (1000.0, reading(0, 10.0, 50.0, Some(2))),
        )
        .unwrap();
        assert_eq!(level.energy_method, METHOD_POWER);
        assert!((level.energy_j - 50.0).abs() < 1e-9);
    }

    #[test]
    fn no_samples_no_figures() {
        assert!(summarize(
            &[],
            GpuReading::default(),
            &[],
            (1.0, GpuReading::default())
        )
        .is_none());
    }

    #[test]
    fn stored_form_round_trips() {
        let level = GpuLevel {
            devices: vec!["NVIDIA H200".into()],
            peak_memory_bytes: 1 << 34,
            mean_utilization_pct: 42.5,
            peak_utilization_pct: 99.0,
            mean_power_w: 310.25,
            peak_power_w: 612.0,
            energy_j: 1234.5,
            energy_method: METHOD_COUNTER.into(),
        };
        let json = serde_json::to_string(&level).unwrap();
        assert_eq!(serde_json::from_str::<GpuLevel>(&json).unwrap(), level);
    }
}
