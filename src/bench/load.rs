//! Load generation: turns a load shape into request start times and runs the requests.
//!
//! A load shape is two independent things: the *arrival schedule* (closed loop with N clients,
//! or open-loop arrivals at rate R, Poisson or gamma) and the *stop condition* (the jobs of a
//! round). Every request keeps the instant it was *scheduled*; under a concurrency cap it may
//! be sent later, and that wait is recorded, never hidden (coordinated omission: vllm#54101).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::client::{self, Clock, Endpoint, Job, RequestParams};
use crate::store::record::{LoadShape, RequestRecord};

/// Arrival offsets from the start of a round for `n` open-loop requests at `rate` per second:
/// gaps drawn from a gamma distribution with shape `burstiness` and mean `1 / rate` (Poisson
/// arrivals when `burstiness` is 1, as vLLM's `--burstiness`). The first request starts at 0.
/// Seeded, so a run's schedule can be repeated exactly.
pub fn arrival_offsets(n: usize, rate: f64, burstiness: f64, seed: u64) -> Vec<Duration> {
    let mut offsets = Vec::with_capacity(n);
    if n == 0 {
        return offsets;
    }
    let rate = rate.max(f64::MIN_POSITIVE);
    let shape = if burstiness > 0.0 { burstiness } else { 1.0 };
    let gamma = Gamma::new(shape, 1.0 / (rate * shape)).expect("positive gamma parameters");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut t = 0.0f64;
    offsets.push(Duration::ZERO);
    for _ in 1..n {
        t += gamma.sample(&mut rng);
        offsets.push(Duration::from_secs_f64(t));
    }
    offsets
}

/// Everything a level's requests share.
#[derive(Clone)]
pub struct LevelContext {
    /// The HTTP client (one connection pool for the whole run).
    pub http: reqwest::Client,
    /// Where requests go.
    pub endpoint: Endpoint,
    /// How each request is made.
    pub params: RequestParams,
    /// The level's clock.
    pub clock: Clock,
    /// The level's label.
    pub level: String,
    /// Seed for the arrival schedule.
    pub seed: u64,
}

/// Runs one round of `jobs` with `shape`; every finished request goes to `records` at once.
/// Returns early (dropping requests in flight) when `stop` turns true; returns whether it did.
pub async fn run_round(
    ctx: &LevelContext,
    shape: LoadShape,
    jobs: Vec<Job>,
    records: &mpsc::UnboundedSender<RequestRecord>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut tasks = JoinSet::new();
    let round = jobs.first().map_or(0, |j| j.round);
    match shape {
        LoadShape::Concurrency { concurrency } => {
            // Closed loop: each client sends its next request when its last one ends; the
            // request is scheduled at that moment.
            let jobs = Arc::new(jobs);
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..concurrency.max(1) {
                let (ctx, jobs, next, records) =
                    (ctx.clone(), jobs.clone(), next.clone(), records.clone());
                tasks.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(job) = jobs.get(i) else { break };
                        let scheduled = Instant::now();
                        let record = client::execute(
                            &ctx.http,
                            &ctx.endpoint,
                            &ctx.params,
                            job,
                            ctx.clock,
                            scheduled,
                            &ctx.level,
                        )
                        .await;
                        let _ = records.send(record);
                    }
                });
            }
        }
        LoadShape::Rate {
            rate,
            burstiness,
            max_concurrency,
        } => {
            // Open loop: arrivals follow the schedule whatever the server does; a cap makes
            // late arrivals wait for a slot, and the wait counts in their latency.
            let offsets =
                arrival_offsets(jobs.len(), rate, burstiness, ctx.seed ^ u64::from(round));
            let slots = max_concurrency.map(|n| Arc::new(Semaphore::new(n.max(1) as usize)));
            let start = Instant::now();
            for (job, offset) in jobs.into_iter().zip(offsets) {
                let scheduled = start + offset;
                tokio::select! {
                    _ = tokio::time::sleep_until(scheduled.into()) => {}
                    _ = stop.wait_for(|s| *s) => return true,
                }
                let (ctx, records, slots) = (ctx.clone(), records.clone(), slots.clone());
                tasks.spawn(async move {
                    let _permit = match &slots {
                        Some(s) => Some(s.clone().acquire_owned().await.expect("open semaphore")),
                        None => None,
                    };
                    let record = client::execute(
                        &ctx.http,
                        &ctx.endpoint,
                        &ctx.params,
                        &job,
                        ctx.clock,
                        scheduled,
                        &ctx.level,
                    )
                    .await;
                    let _ = records.send(record);
                });
            }
        }
    }
    loop {
        tokio::select! {
            joined = tasks.join_next() => {
                if joined.is_none() {
                    return false;
                }
            }
            _ = stop.wait_for(|s| *s) => {
                tasks.abort_all();
                return true;
            }
        }
    }
}

/// Watches the client's own scheduling: a timer that should fire every `period` records how
/// late it actually woke. Late wake-ups mean the client (or the machine) delays the instants
/// it records, so the run can say so instead of reporting inflated latencies.
pub struct LagMonitor {
    lags_ms: Arc<Mutex<Vec<f64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LagMonitor {
    /// Starts watching on the current runtime.
    pub fn start(period: Duration) -> Self {
        let lags_ms = Arc::new(Mutex::new(Vec::new()));
        let sink = lags_ms.clone();
        let task = tokio::spawn(async move {
            let mut due = Instant::now() + period;
            loop {
                tokio::time::sleep_until(due.into()).await;
                let late = Instant::now().saturating_duration_since(due);
                sink.lock()
                    .expect("lag lock")
                    .push(late.as_secs_f64() * 1000.0);
                due = Instant::now() + period;
            }
        });
        Self { lags_ms, task }
    }

    /// Stops and returns the 99th percentile of the lag in milliseconds (0 with no samples).
    pub fn finish(self) -> f64 {
        self.task.abort();
        let lags = std::mem::take(&mut *self.lags_ms.lock().expect("lag lock"));
        crate::stats::percentile(&lags, 99.0).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_offsets_have_the_asked_rate_and_repeat_with_the_seed() {
        let offsets = arrival_offsets(20_000, 4.0, 1.0, 7);
        assert_eq!(offsets[0], Duration::ZERO);
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
        let mean_gap = offsets.last().unwrap().as_secs_f64() / 19_999.0;
        assert!((mean_gap - 0.25).abs() < 0.01, "mean gap {mean_gap}");
        // Exponential gaps: the coefficient of variation is 1.
        let gaps: Vec<f64> = offsets
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        let var = gaps.iter().map(|g| (g - mean_gap).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean_gap;
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
        assert_eq!(offsets, arrival_offsets(20_000, 4.0, 1.0, 7));
        assert_ne!(offsets, arrival_offsets(20_000, 4.0, 1.0, 8));
    }

    #[test]
    fn burstiness_changes_the_spread_not_the_rate() {
        let cv = |b: f64| {
            let o = arrival_offsets(20_000, 2.0, b, 3);
            let gaps: Vec<f64> = o.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            assert!((mean - 0.5).abs() < 0.03, "mean {mean} at burstiness {b}");
            let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
            var.sqrt() / mean
        };
        // Gamma gaps: cv = 1 / sqrt(shape).
        assert!((cv(0.25) - 2.0).abs() < 0.15);
        assert!((cv(4.0) - 0.5).abs() < 0.05);
    }
}
