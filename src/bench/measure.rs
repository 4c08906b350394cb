//! Resource accounting over the timed rounds of one level: memory and CPU of the serving
//! process, the client's own CPU and timer lag, energy, and the server's `/metrics` sampled on
//! the level's clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{Clock, Endpoint};
use super::gpu::{self, GpuMeter, GpuReading};
use super::resources::{self, EnergyMeter, ProcessProbe};
use super::{load, scrape, BenchOptions, Target, CLIENT_CPU_LIMIT, CLIENT_LAG_LIMIT_MS};
use crate::store::record::{LevelRecord, LoadShape, Sample};

/// Samples resources and server metrics every `interval` until stopped.
pub(super) struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    peak_rss: Arc<Mutex<Option<u64>>>,
    gpu: Arc<Mutex<Vec<(f64, GpuReading)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(http: reqwest::Client, target: &Target, clock: Clock, interval: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let peak_rss = Arc::new(Mutex::new(None::<u64>));
        let gpu_samples = Arc::new(Mutex::new(Vec::new()));
        let (s, p, g) = (samples.clone(), peak_rss.clone(), gpu_samples.clone());
        let probe = target.probe.clone();
        let endpoint = target.endpoint.clone();
        let task = tokio::spawn(async move {
            let mut last_cpu: Option<(f64, Instant)> = None;
            let mut has_metrics = true;
            loop {
                let now = Instant::now();
                let mut sample = Sample {
                    t_ms: clock.ms(now),
                    ..Sample::default()
                };
                if let Some(probe) = &probe {
                    let reading = probe.read();
                    sample.rss_bytes = reading.rss_bytes;
                    if let Some(cpu) = reading.cpu_ms {
                        if let Some((before, at)) = last_cpu {
                            let wall = now.duration_since(at).as_secs_f64() * 1000.0;
                            if wall > 0.0 {
                                sample.cpu_cores = Some((cpu - before) / wall);
                            }
                        }
                        last_cpu = Some((cpu, now));
                    }
                    let peak = reading.peak_rss_bytes.max(reading.rss_bytes);
                    let mut guard = p.lock().expect("peak lock");
                    *guard = (*guard).max(peak);
                }
                if let Some(meter) = GpuMeter::shared() {
                    let reading = meter.read();
                    sample.gpu_memory_bytes = Some(reading.memory_used_bytes);
                    sample.gpu_utilization_pct = Some(reading.utilization_pct);
                    sample.gpu_power_w = Some(reading.power_w);
                    g.lock().expect("gpu lock").push((sample.t_ms, reading));
                }
                if has_metrics {
                    match scrape::scrape(&http, &endpoint.base_url, endpoint.api_key.as_deref())
                        .await
                    {
                        Some(m) => {
                            sample.server_queue = m.queue();
                            sample.server_active = m.active();
                            sample.server_kv_usage = m.kv_usage();
                        }
                        None => has_metrics = false,
                    }
                }
                s.lock().expect("samples lock").push(sample);
                tokio::time::sleep_until((now + interval).into()).await;
            }
        });
        Self {
            samples,
            peak_rss,
            gpu: gpu_samples,
            task,
        }
    }

    fn finish(self) -> (Vec<Sample>, Option<u64>, Vec<(f64, GpuReading)>) {
        self.task.abort();
        let samples = std::mem::take(&mut *self.samples.lock().expect("samples lock"));
        let peak = *self.peak_rss.lock().expect("peak lock");
        let gpu = std::mem::take(&mut *self.gpu.lock().expect("gpu lock"));
        (samples, peak, gpu)
    }
}

/// Resource accounting over the timed rounds of one level.
pub(super) struct Measurement {
    started: Instant,
    probe: Option<ProcessProbe>,
    server_cpu_before: Option<f64>,
    client_cpu_before: f64,
    energy: Option<(EnergyMeter, Vec<u64>)>,
    gpu_before: Option<GpuReading>,
    scrape_before: Option<scrape::Scrape>,
    sampler: Sampler,
    lag: load::LagMonitor,
    http: reqwest::Client,
    endpoint: Endpoint,
}

impl Measurement {
    pub(super) async fn begin(
        http: &reqwest::Client,
        target: &Target,
        clock: Clock,
        options: &BenchOptions,
    ) -> Self {
        let probe = target.probe.clone();
        if let Some(p) = &probe {
            p.reset_peak();
        }
        let energy = EnergyMeter::rapl().map(|m| {
            let start = m.read();
            (m, start)
        });
        let scrape_before = scrape::scrape(
            http,
            &target.endpoint.base_url,
            target.endpoint.api_key.as_deref(),
        )
        .await;
        let gpu_before = GpuMeter::shared().map(GpuMeter::read);
        Self {
            started: Instant::now(),
            gpu_before,
            server_cpu_before: probe.as_ref().and_then(|p| p.read().cpu_ms),
            probe,
            client_cpu_before: resources::client_cpu_ms(),
            energy,
            scrape_before,
            sampler: Sampler::start(
                http.clone(),
                target,
                clock,
                Duration::from_millis(options.sample_interval_ms.max(10)),
            ),
            lag: load::LagMonitor::start(Duration::from_millis(10)),
            http: http.clone(),
            endpoint: target.endpoint.clone(),
        }
    }

    pub(super) async fn end(self, shape: &LoadShape, level: &str, model: &str) -> LevelRecord {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let lag_p99 = self.lag.finish();
        let (samples, sampled_peak, gpu_samples) = self.sampler.finish();
        let gpu = match (GpuMeter::shared(), self.gpu_before) {
            (Some(meter), Some(before)) => gpu::summarize(
                meter.names(),
                before,
                &gpu_samples,
                (duration_ms, meter.read()),
            ),
            _ => None,
        };
        let reading = self.probe.as_ref().map(ProcessProbe::read);
        let server_cpu_ms = match (reading.and_then(|r| r.cpu_ms), self.server_cpu_before) {
            (Some(after), Some(before)) => Some(after - before),
            _ => None,
        };
        let client_cpu_ms = resources::client_cpu_ms() - self.client_cpu_before;
        let peak_rss_bytes = reading
            .and_then(|r| r.peak_rss_bytes)
            .max(sampled_peak)
            .filter(|_| self.probe.is_some());
        let (energy_j, energy_method) = match (&self.energy, server_cpu_ms) {
            (Some((meter, start)), _) => (
                Some(meter.joules_between(start, &meter.read())),
                Some("rapl: CPU package counters (whole machine)".to_string()),
            ),
            (None, Some(cpu)) => {
                let (j, method) = resources::estimate_energy(cpu);
                (Some(j), Some(method))
            }
            (None, None) => (None, None),
        };
        // A GPU that ran kernels in this level adds its own measured energy; an idle one
        // beside a CPU-only level does not (its idle draw is not the level's work).
        let (energy_j, energy_method) = match gpu.as_ref().filter(|g| g.busy()) {
            Some(g) => (
                Some(g.energy_j + energy_j.unwrap_or(0.0)),
                Some(match energy_method {
                    Some(cpu) => format!("{} ({:.1} J) + CPU {cpu}", g.energy_method, g.energy_j),
                    None => format!("{} (CPU not measured)", g.energy_method),
                }),
            ),
            None => (energy_j, energy_method),
        };
        let server_metrics = match &self.scrape_before {
            Some(before) => scrape::scrape(
                &self.http,
                &self.endpoint.base_url,
                self.endpoint.api_key.as_deref(),
            )
            .await
            .map(|after| after.delta_summary(before)),
            None => None,
        };
        // The client is the bottleneck when it keeps a whole core busy or its own timer wakes
        // late: then the instants it records are late too.
        let client_share = if duration_ms > 0.0 {
            client_cpu_ms / duration_ms
        } else {
            0.0
        };
        let client_bottleneck = client_share > CLIENT_CPU_LIMIT || lag_p99 > CLIENT_LAG_LIMIT_MS;
        LevelRecord {
            model: model.to_string(),
            level: level.to_string(),
            shape: *shape,
            duration_ms,
            peak_rss_bytes,
            server_cpu_ms,
            client_cpu_ms,
            client_lag_p99_ms: lag_p99,
            client_bottleneck,
            energy_j,
            energy_method,
            samples,
            server_metrics,
            gpu,
            stopped: None,
            depth: None,
        }
    }
}
