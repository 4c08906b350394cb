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

/// How a round ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RoundEnd {
    /// Every job was sent and answered (or failed).
    Done,
    /// `stop` turned true (Ctrl-C): requests in flight were dropped.
    Interrupted,
    /// The server fell behind the arrivals (the detector's evidence): requests in flight were
    /// dropped, since waiting for an unbounded queue to drain measures nothing more.
    OverSaturated(String),
}

/// Runs one round of `jobs` with `shape`; every finished request goes to `records` at once.
/// Returns early (dropping requests in flight) when `stop` turns true, or, for open-loop
/// arrivals with a `saturation` window, when the server falls behind them.
pub async fn run_round(
    ctx: &LevelContext,
    shape: LoadShape,
    jobs: Vec<Job>,
    records: &mpsc::UnboundedSender<RequestRecord>,
    stop: &mut watch::Receiver<bool>,
    saturation: Option<Duration>,
) -> RoundEnd {
    let mut tasks = JoinSet::new();
    let round_start = Instant::now();
    // Arrived and not yet answered, by scheduled instant: the queue the detector watches.
    let waiting: Arc<Mutex<std::collections::BTreeSet<(Instant, u32)>>> = Default::default();
    // Latencies of the answers, seconds, for the detector to date the end of the ramp-up.
    let (answered_tx, mut answered_rx) = mpsc::unbounded_channel::<f64>();
    let (saturated_tx, mut saturated_rx) = watch::channel(None::<String>);
    // Watches the queue of an open-loop round; stopped with the round.
    let mut detector = None;
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
            if let Some(window) = saturation {
                let (waiting, saturated_tx) = (waiting.clone(), saturated_tx.clone());
                detector = Some(AbortOnDrop(tokio::spawn(async move {
                    let mut detector = SaturationDetector::new(window, rate);
                    let mut tick = tokio::time::interval(window / SaturationDetector::TICKS);
                    loop {
                        tick.tick().await;
                        while let Ok(latency) = answered_rx.try_recv() {
                            detector.answered(latency);
                        }
                        let now = Instant::now();
                        let (queue, oldest) = {
                            let waiting = waiting.lock().expect("waiting lock");
                            let oldest = waiting.first().map(|(t, _)| now.duration_since(*t));
                            (waiting.len(), oldest.unwrap_or_default())
                        };
                        let at = now.duration_since(round_start).as_secs_f64();
                        if let Some(evidence) = detector.observe(at, queue, oldest.as_secs_f64()) {
                            let _ = saturated_tx.send(Some(evidence));
                            break;
                        }
                    }
                })));
            }
            let start = Instant::now();
            for (job, offset) in jobs.into_iter().zip(offsets) {
                let scheduled = start + offset;
                tokio::select! {
                    _ = tokio::time::sleep_until(scheduled.into()) => {}
                    _ = stop.wait_for(|s| *s) => return RoundEnd::Interrupted,
                    Ok(evidence) = saturated_rx.wait_for(Option::is_some) => {
                        let evidence = evidence.clone().unwrap_or_default();
                        tasks.abort_all();
                        return RoundEnd::OverSaturated(evidence);
                    }
                }
                // The queue is tracked only for the detector.
                let judged = saturation.is_some();
                if judged {
                    waiting
                        .lock()
                        .expect("waiting lock")
                        .insert((scheduled, job.seq));
                }
                let (ctx, records, slots, waiting, answered) = (
                    ctx.clone(),
                    records.clone(),
                    slots.clone(),
                    waiting.clone(),
                    answered_tx.clone(),
                );
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
                    if judged {
                        waiting
                            .lock()
                            .expect("waiting lock")
                            .remove(&(scheduled, job.seq));
                        let _ = answered.send(scheduled.elapsed().as_secs_f64());
                    }
                    let _ = records.send(record);
                });
            }
        }
    }
    let _detector = detector;
    loop {
        tokio::select! {
            joined = tasks.join_next() => {
                if joined.is_none() {
                    return RoundEnd::Done;
                }
            }
            _ = stop.wait_for(|s| *s) => {
                tasks.abort_all();
                return RoundEnd::Interrupted;
            }
            Ok(evidence) = saturated_rx.wait_for(Option::is_some) => {
                let evidence = evidence.clone().unwrap_or_default();
                tasks.abort_all();
                return RoundEnd::OverSaturated(evidence);
            }
        }
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decides that open-loop arrivals have outrun the server: over the last `window`, the
/// requests waiting (arrived, unanswered) grew by a clear margin and the oldest of them kept
/// ageing, at every check of the last few. A server that keeps up lets both fluctuate around
/// a level; one that cannot lets both grow without bound, and measuring longer would only
/// measure the queue (GuideLLM's `--stop-over-saturated` answers the same question).
///
/// Hand-written: no crate offers an over-saturation test for a live arrival process.
#[derive(Debug)]
pub struct SaturationDetector {
    window: f64,
    rate: f64,
    /// (seconds since the round began, requests waiting, age of the oldest in seconds).
    samples: std::collections::VecDeque<(f64, usize, f64)>,
    streak: u32,
    /// Latencies of the first answers, seconds, until the ramp-up is known.
    first_latencies: Vec<f64>,
    /// When the round's ramp-up is over and observations count (`None`: not yet known).
    settled_at: Option<f64>,
}

impl SaturationDetector {
    /// Checks per window.
    pub const TICKS: u32 = 10;
    /// Consecutive checks that must agree, so one burst of Poisson arrivals is not a verdict.
    const STREAK: u32 = 3;
    /// Answers whose latency dates the end of the ramp-up.
    const SETTLING_ANSWERS: usize = 3;

    /// A detector for arrivals at `rate` per second, judging growth over `window`.
    pub fn new(window: Duration, rate: f64) -> Self {
        Self {
            window: window.as_secs_f64(),
            rate,
            samples: Default::default(),
            streak: 0,
            first_latencies: Vec::new(),
            settled_at: None,
        }
    }

    /// Takes an answer's latency (scheduled start to end, seconds). A round starts with an
    /// empty queue that fills to its steady size (arrival rate × latency, Little's law) over
    /// about one latency: growth a healthy server shows at every start. Observations count
    /// from twice the median latency of the first answers on.
    pub fn answered(&mut self, latency: f64) {
        if self.settled_at.is_some() {
            return;
        }
        self.first_latencies.push(latency);
        if self.first_latencies.len() >= Self::SETTLING_ANSWERS {
            let median = crate::stats::percentile(&self.first_latencies, 50.0).unwrap_or(0.0);
            self.settled_at = Some(2.0 * median);
        }
    }

    /// Takes one observation; returns the evidence once the queue is judged to grow without
    /// bound.
    pub fn observe(&mut self, at: f64, waiting: usize, oldest_age: f64) -> Option<String> {
        if self.settled_at.is_none_or(|settled| at < settled) {
            return None;
        }
        self.samples.push_back((at, waiting, oldest_age));
        while self.samples.get(1).is_some_and(|s| s.0 <= at - self.window) {
            self.samples.pop_front();
        }
        let &(since, waiting_then, age_then) = self.samples.front()?;
        if at - since < self.window * 0.999 {
            return None;
        }
        // Growth a queue that keeps up would rarely show: a tenth of the window's arrivals.
        let margin = (0.1 * self.rate * self.window).max(4.0);
        let grew = waiting as f64 - waiting_then as f64 >= margin;
        let aged = oldest_age > age_then + 0.05 * self.window;
        self.streak = if grew && aged { self.streak + 1 } else { 0 };
        (self.streak >= Self::STREAK).then(|| {
            format!(
                "over-saturated: requests waiting grew from {waiting_then} to {waiting} in {:.1} s \
                 ({:.1}/s at {:.2} arrivals/s) and the oldest waited {:.1} s (was {:.1} s)",
                at - since,
                (waiting as f64 - waiting_then as f64) / (at - since),
                self.rate,
                oldest_age,
                age_then
            )
        })
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

    /// A detector whose first three answers took `latency` seconds.
    fn settled(window: Duration, rate: f64, latency: f64) -> SaturationDetector {
        let mut d = SaturationDetector::new(window, rate);
        for _ in 0..3 {
            d.answered(latency);
        }
        d
    }

    #[test]
    fn saturation_is_a_queue_that_grows_and_ages_not_a_burst() {
        let window = Duration::from_secs(2);
        let tick = 0.2;
        // Kept up: the queue fluctuates around 6, even with one burst of 10.
        let mut steady = settled(window, 20.0, 0.3);
        for i in 0..100u32 {
            let queue = if i == 50 { 16 } else { 6 + i as usize % 3 };
            assert_eq!(
                steady.observe(f64::from(i) * tick, queue, 0.3),
                None,
                "tick {i}"
            );
        }
        // Fell behind: 5 more waiting every second, the oldest ageing with them.
        let mut growing = settled(window, 20.0, 0.3);
        let verdict = (0..100).find_map(|i| {
            let at = f64::from(i) * tick;
            growing.observe(at, 6 + (5.0 * at) as usize, 0.3 + 0.25 * at)
        });
        let verdict = verdict.expect("a growing queue is over-saturated");
        assert!(verdict.starts_with("over-saturated"), "{verdict}");
        // A queue that grows while its oldest request does not age (a burst being served in
        // order) is no verdict either.
        let mut young = settled(window, 20.0, 0.3);
        for i in 0..100 {
            let at = f64::from(i) * tick;
            assert_eq!(young.observe(at, 6 + (5.0 * at) as usize, 0.3), None);
        }
        // A round's ramp-up on a server with long answers (3 s at 20/s: the queue fills to
        // 60 over 3 s, the oldest ages to 3 s, then both hold) is no verdict; judged before
        // the latency is known, it would be.
        let ramp = |at: f64| ((20.0 * at.min(3.0)) as usize, at.min(3.0));
        let mut fresh = SaturationDetector::new(window, 20.0);
        for i in 0..100u32 {
            let at = f64::from(i) * tick;
            if i == 16 {
                (0..3).for_each(|_| fresh.answered(3.0));
            }
            let (waiting, oldest) = ramp(at);
            assert_eq!(fresh.observe(at, waiting, oldest), None, "at {at:.1} s");
        }
        let mut hasty = settled(window, 20.0, 0.0);
        let judged = (0..100u32).find_map(|i| {
            let at = f64::from(i) * tick;
            let (waiting, oldest) = ramp(at);
            hasty.observe(at, waiting, oldest)
        });
        assert!(
            judged.is_some(),
            "the ramp is what the settling guards against"
        );
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
