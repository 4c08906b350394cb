//! What serving costs: resident memory and CPU time of the serving process (read from
//! `/proc`, Linux), the benchmark client's own CPU (its threads are named `bench-*`), and
//! energy from RAPL counters when the kernel exposes them, otherwise an estimate from CPU time
//! whose formula and constants are written into the report.

use std::path::PathBuf;

/// Threads of the benchmark client and its store writer carry this name prefix, so their CPU
/// time can be told apart from the in-process server's.
pub const CLIENT_THREAD_PREFIX: &str = "bench-";

/// Watts one fully busy core is assumed to draw when no RAPL counter is readable. A typical
/// desktop or laptop x86 core under AVX2 load draws 8–20 W; the middle is taken and printed.
pub const ESTIMATE_WATTS_PER_CORE: f64 = 12.0;

/// Clock ticks per second of `/proc/*/stat` CPU times (USER_HZ, 100 on every Linux we run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process to watch.
#[derive(Clone, Debug)]
pub struct ProcessProbe {
    pid: u32,
    /// When the client runs in the same process, its own threads are excluded.
    exclude_client_threads: bool,
}

/// One reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessReading {
    /// Resident memory now, bytes.
    pub rss_bytes: Option<u64>,
    /// Peak resident memory since the last reset, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU time so far (user + system), milliseconds, of the serving threads.
    pub cpu_ms: Option<f64>,
}

impl ProcessProbe {
    /// Watches the process `pid`.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            exclude_client_threads: false,
        }
    }

    /// Watches this process, leaving out the benchmark client's own threads.
    pub fn this_process() -> Self {
        Self {
            pid: std::process::id(),
            exclude_client_threads: true,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}", self.pid))
    }

    /// Resets the kernel's peak-RSS mark (VmHWM) so the next peak belongs to what runs next.
    /// Returns false where that is not allowed (another user's process, old kernels); the
    /// peak then falls back to the highest sampled RSS.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(self.dir().join("clear_refs"), "5").is_ok()
    }

    /// Reads memory and CPU now.
    pub fn read(&self) -> ProcessReading {
        let status = std::fs::read_to_string(self.dir().join("status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|k| k * 1024)
        };
        ProcessReading {
            rss_bytes: kib("VmRSS:"),
            peak_rss_bytes: kib("VmHWM:"),
            cpu_ms: self.cpu_ms(),
        }
    }

    fn cpu_ms(&self) -> Option<f64> {
        if !self.exclude_client_threads {
            return stat_cpu_ms(&std::fs::read_to_string(self.dir().join("stat")).ok()?);
        }
        let (total, client) = thread_cpu_ms(self.pid)?;
        Some(total - client)
    }
}

/// CPU time of this process's benchmark-client threads, milliseconds.
pub fn client_cpu_ms() -> f64 {
    thread_cpu_ms(std::process::id()).map_or(0.0, |(_, client)| client)
}

/// (all threads, client threads) CPU milliseconds of `pid`, summed over `/proc/PID/task`.
fn thread_cpu_ms(pid: u32) -> Option<(f64, f64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let (mut total, mut client) = (0.0, 0.0);
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some(ms) = stat_cpu_ms(&stat) else {
            continue;
        };
        total += ms;
        if stat_comm(&stat).is_some_and(|c| c.starts_with(CLIENT_THREAD_PREFIX)) {
            client += ms;
        }
    }
    Some((total, client))
}

/// utime + stime of a `/proc/*/stat` line, in milliseconds.
fn stat_cpu_ms(stat: &str) -> Option<f64> {
    // The command name is in parentheses and may hold spaces: fields count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000.0 / TICKS_PER_SECOND)
}

fn stat_comm(stat: &str) -> Option<&str> {
    Some(&stat[stat.find('(')? + 1..stat.rfind(')')?])
}

/// Energy counters of the CPU package(s), when the kernel lets us read them.
#[derive(Clone, Debug)]
pub struct EnergyMeter {
    domains: Vec<(PathBuf, u64)>,
}

impl EnergyMeter {
    /// The readable RAPL package domains, if any (`/sys/class/powercap/intel-rapl:N`).
    pub fn rapl() -> Option<Self> {
        let mut domains = Vec::new();
        for entry in std::fs::read_dir("/sys/class/powercap").ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            // Package domains only (intel-rapl:0, not the sub-domains intel-rapl:0:0).
            if name.starts_with("intel-rapl:") && name.matches(':').count() == 1 {
                let path = entry.path();
                let max = std::fs::read_to_string(path.join("max_energy_range_uj"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(u64::MAX);
                if read_u64(&path.join("energy_uj")).is_some() {
                    domains.push((path, max));
                }
            }
        }
        (!domains.is_empty()).then_some(Self { domains })
    }

    /// Counter values now, microjoules, one per domain.
    pub fn read(&self) -> Vec<u64> {
        self.domains
            .iter()
            .map(|(p, _)| read_u64(&p.join("energy_uj")).unwrap_or(0))
            .collect()
    }

    /// Joules between two readings, allowing for counter wrap-around.
    pub fn joules_between(&self, before: &[u64], after: &[u64]) -> f64 {
        self.domains
            .iter()
            .zip(before.iter().zip(after))
            .map(|((_, max), (&b, &a))| {
                let delta = if a >= b { a - b } else { max - b + a };
                delta as f64 / 1e6
            })
            .sum()
    }
}

fn read_u64(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Energy estimated from CPU time when no counter is readable, and the method as printed.
pub fn estimate_energy(cpu_ms: f64) -> (f64, String) {
    let joules = cpu_ms / 1000.0 * ESTIMATE_WATTS_PER_CORE;
    (
        joules,
        format!(
            "estimate: server CPU seconds × {ESTIMATE_WATTS_PER_CORE} W per busy core (no readable RAPL counter); idle and memory power not included"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 1 1";
        assert_eq!(stat_cpu_ms(stat), Some(3000.0));
        assert_eq!(stat_comm(stat), Some("tokio rt"));
    }

    #[test]
    fn this_process_is_readable() {
        let reading = ProcessProbe::this_process().read();
        assert!(reading.rss_bytes.unwrap() > 0);
        assert!(reading.peak_rss_bytes.unwrap() >= reading.rss_bytes.unwrap());
        assert!(reading.cpu_ms.is_some());
    }
}
