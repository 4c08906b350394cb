//! What a benchmark measures: the options resolved from flags and settings, the sweep, and
//! what they imply (levels, requests per round, requests in all).

use std::collections::HashMap;

use serde::Serialize;

use super::prompts::PromptSpec;
use super::workload;
use crate::store::record::{LoadShape, SCALING_MIN_RATIO};

/// Whether repeated prompts may be answered from the server's prompt cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptCache {
    /// Every request's prompt is made unique with a short nonce prefix, for every runtime
    /// alike, so no request is served from a cache of an earlier one.
    Cold,
    /// Prompts repeat word for word across rounds: later rounds time cache hits, as a chat
    /// app with a fixed system prompt would see.
    Warm,
}

/// What to measure, resolved from flags, environment and defaults.
#[derive(Clone, Debug, Serialize)]
pub struct BenchOptions {
    /// The prompt set.
    pub prompts: Vec<PromptSpec>,
    /// Load levels, measured in order for each model.
    pub shapes: Vec<LoadShape>,
    /// Warm-up rounds per level (recorded as round 0, never counted).
    pub warmup: u32,
    /// Timed rounds per level.
    pub rounds: u32,
    /// Requests per round (default: the prompt set, at least as many as the concurrency).
    pub requests_per_round: Option<u32>,
    /// Most tokens per answer, unless a prompt says otherwise.
    pub max_tokens: u32,
    /// Stream answers (TTFT and ITL need it).
    pub stream: bool,
    /// Sampling temperature.
    pub temperature: f32,
    /// Sampling and schedule seed.
    pub seed: u64,
    /// Ask servers to ignore end-of-sequence (fixed-length answers).
    pub ignore_eos: bool,
    /// Per-request time limit, seconds.
    pub timeout_secs: f64,
    /// Prompt-cache policy.
    pub prompt_cache: PromptCache,
    /// Service-level objectives for goodput, milliseconds by metric (`ttft_ms`, `e2e_ms`…).
    pub slo: HashMap<String, f64>,
    /// Price of a kWh for the cost estimate.
    pub energy_price_per_kwh: f64,
    /// How often resources and server metrics are sampled, milliseconds.
    pub sample_interval_ms: u64,
    /// Prompt lengths to generate instead of the prompt set's texts (filler fitted with the
    /// server's tokenizer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<workload::TokenLengths>,
    /// Answer lengths to ask for (end-of-sequence ignored, so each answer has its length).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<workload::TokenLengths>,
    /// Context depths, tokens: each level is measured once per depth, every prompt behind
    /// that much distinct filler context (empty: prompts as they are).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depths: Vec<u32>,
    /// Find each model's saturation instead of measuring `shapes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// End an open-loop level early once the server falls behind its arrivals, judged over
    /// this many seconds (on in sweeps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_over_saturated_secs: Option<f64>,
    /// Measure the targets in alternating rounds of one session (A B, then B A, …) instead of
    /// one after another, so `compare` can pair their rounds and the machine's drift cancels.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interleave: bool,
}

/// A sweep, as GuideLLM's: the synchronous point (one request at a time), the most the
/// server can do (many requests in flight), then open-loop rates spread between the two and
/// one step past the top, so the report shows where latency turns up (the knee) and which
/// rate the server no longer keeps up with.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sweep {
    /// Open-loop rates measured after the two bounds.
    pub rates: u32,
    /// Requests in flight for the throughput bound.
    pub max_concurrency: u32,
    /// Arrival burstiness of the rate levels (1 = Poisson).
    pub burstiness: f64,
}

impl Sweep {
    /// The sweep's open-loop rates, requests/s, from the two measured bounds: `rates` evenly
    /// spaced steps above the synchronous rate, the last but one at the maximum and the last
    /// one step beyond it; for a server that does not scale, around its capacity instead.
    /// Rounded to three significant digits, so level labels stay short.
    /// Empty when a bound is missing (nothing succeeded there).
    pub fn rates_between(&self, synchronous: f64, maximum: f64) -> Vec<f64> {
        if !(synchronous > 0.0 && maximum > 0.0) || self.rates == 0 {
            return Vec::new();
        }
        let top = maximum.max(synchronous);
        let n = f64::from(self.rates);
        let raw: Vec<f64> = if top < synchronous * SCALING_MIN_RATIO {
            // A server that does not scale with concurrency (the most at once within a fifth
            // of one at a time: one slot, as Foundry Local serves) has no range between its
            // bounds. Its rates are placed around that capacity instead, from half of it to 30%
            // past it (far enough past for the detector to see the queue grow within a level),
            // so the levels show where it keeps up and where it falls behind.
            let share = |i: f64| {
                if n == 1.0 {
                    1.3
                } else {
                    0.5 + 0.8 * i / (n - 1.0)
                }
            };
            (0..self.rates).map(|i| top * share(f64::from(i))).collect()
        } else {
            let step = if n == 1.0 {
                top - synchronous
            } else {
                (top - synchronous) / (n - 1.0)
            };
            (1..=self.rates)
                .map(|i| synchronous + step * f64::from(i))
                .collect()
        };
        let mut rates: Vec<f64> = raw.into_iter().map(|r| round_significant(r, 3)).collect();
        rates.dedup();
        rates
    }
}

/// `x` rounded to `digits` significant digits.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// How many requests a round of `shape` sends.
pub fn requests_per_round(options: &BenchOptions, shape: &LoadShape) -> u32 {
    if let Some(n) = options.requests_per_round {
        return n.max(1);
    }
    let prompts = options.prompts.len() as u32;
    let width = match shape {
        LoadShape::Concurrency { concurrency } => *concurrency,
        LoadShape::Rate {
            rate,
            max_concurrency,
            ..
        } => {
            // Arrivals must outlast two saturation windows for the detector to judge them.
            let seconds = options
                .stop_over_saturated_secs
                .map_or(4.0, |w| (2.0 * w).max(4.0));
            max_concurrency
                .unwrap_or(0)
                .max((rate * seconds).ceil() as u32)
        }
    };
    prompts.max(width).max(1)
}

/// The load levels of a model: the asked shapes, or a sweep's two bounds (its rates are
/// known only once the bounds are measured).
pub(super) fn first_shapes(options: &BenchOptions) -> Vec<LoadShape> {
    match options.sweep {
        Some(sweep) => vec![
            LoadShape::Concurrency { concurrency: 1 },
            LoadShape::Concurrency {
                concurrency: sweep.max_concurrency.max(2),
            },
        ],
        None => options.shapes.clone(),
    }
}

/// Requests planned for one model in all (a sweep's rate levels counted once they are known).
pub fn planned_requests(options: &BenchOptions) -> u64 {
    first_shapes(options)
        .iter()
        .map(|s| {
            u64::from(requests_per_round(options, s)) * u64::from(options.warmup + options.rounds)
        })
        .sum()
}

/// The levels every target is measured at, before a sweep adds its rates: each shape at each
/// depth.
pub(super) fn planned_levels(options: &BenchOptions) -> Vec<(LoadShape, Option<u32>)> {
    let depths: Vec<Option<u32>> = if options.depths.is_empty() {
        vec![None]
    } else {
        options.depths.iter().copied().map(Some).collect()
    };
    first_shapes(options)
        .into_iter()
        .flat_map(|s| depths.iter().map(move |d| (s, *d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Sweep;

    fn sweep(rates: u32) -> Sweep {
        Sweep {
            rates,
            max_concurrency: 32,
            burstiness: 1.0,
        }
    }

    #[test]
    fn sweep_rates_reach_one_step_past_the_maximum() {
        assert_eq!(sweep(4).rates_between(1.0, 4.0), [2.0, 3.0, 4.0, 5.0]);
        assert_eq!(sweep(1).rates_between(1.0, 4.0), [4.0]);
        // Three significant digits, so labels stay short.
        assert_eq!(sweep(2).rates_between(0.7, 2.23456), [2.23, 3.77]);
        // No better at the top than one at a time (one slot): around that capacity instead,
        // from half of it to 30% past it.
        assert_eq!(sweep(2).rates_between(2.0, 1.9), [1.0, 2.6]);
        assert_eq!(sweep(3).rates_between(3.3, 3.4), [1.7, 3.06, 4.42]);
        assert_eq!(sweep(1).rates_between(3.3, 3.3), [4.29]);
        assert!(sweep(3).rates_between(0.0, 5.0).is_empty());
    }
}
