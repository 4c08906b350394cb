//! Latency and throughput of requests: the metric functions of one request (TTFT, TPOT, ITL
//! gaps, E2E, tokens/s) and a level's latency distributions under vLLM's flat JSON names —
//! the definitions in docs/report.md, written once, for the summary and for `compare`. (The
//! server's own Prometheus metrics are another thing: `server/prometheus.rs`.)

use std::collections::BTreeMap;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::stats::Distribution;
use crate::store::record::{RequestRecord, RunData};

/// The four latency distributions vLLM's benchmark reports, serialized under vLLM's flat
/// names (`mean_ttft_ms`, `p99_itl_ms`, …, plus hearth's `min_*`, `max_*` and `count_*`) so
/// existing tooling reads hearth's JSON without a mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latencies {
    /// Time to first content token, ms.
    pub ttft: Option<Distribution>,
    /// Time per output token after the first, ms.
    pub tpot: Option<Distribution>,
    /// Gaps between content chunks, pooled over requests, ms.
    pub itl: Option<Distribution>,
    /// End-to-end latency from the scheduled start, ms.
    pub e2el: Option<Distribution>,
}

/// Metric names in `Latencies`, in serialization order.
pub(crate) const LATENCY_METRICS: [&str; 4] = ["ttft", "tpot", "itl", "e2el"];
/// Statistic names in the flat keys, in serialization order.
pub(crate) const LATENCY_STATS: [&str; 8] =
    ["mean", "median", "std", "p90", "p95", "p99", "min", "max"];

impl Latencies {
    /// The distribution for one of `LATENCY_METRICS`.
    pub fn get(&self, metric: &str) -> Option<&Distribution> {
        match metric {
            "ttft" => self.ttft.as_ref(),
            "tpot" => self.tpot.as_ref(),
            "itl" => self.itl.as_ref(),
            "e2el" => self.e2el.as_ref(),
            _ => None,
        }
    }

    fn slot(&mut self, metric: &str) -> Option<&mut Option<Distribution>> {
        match metric {
            "ttft" => Some(&mut self.ttft),
            "tpot" => Some(&mut self.tpot),
            "itl" => Some(&mut self.itl),
            "e2el" => Some(&mut self.e2el),
            _ => None,
        }
    }
}

/// One statistic of a distribution by its flat-key name.
pub(crate) fn stat_of(d: &Distribution, stat: &str) -> f64 {
    match stat {
        "mean" => d.mean,
        "median" => d.median,
        "std" => d.std,
        "p90" => d.p90,
        "p95" => d.p95,
        "p99" => d.p99,
        "min" => d.min,
        "max" => d.max,
        _ => f64::NAN,
    }
}

impl Serialize for Latencies {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for metric in LATENCY_METRICS {
            let d = self.get(metric);
            map.serialize_entry(&format!("count_{metric}"), &d.map(|d| d.count))?;
            for stat in LATENCY_STATS {
                map.serialize_entry(&format!("{stat}_{metric}_ms"), &d.map(|d| stat_of(d, stat)))?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Latencies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Latencies;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("flat latency fields such as mean_ttft_ms")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Latencies, A::Error> {
                // metric -> stat -> value
                let mut found: BTreeMap<(String, String), f64> = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    match parse_latency_key(&key) {
                        Some((stat, metric)) => {
                            if let Some(v) = map.next_value::<Option<f64>>()? {
                                found.insert((metric, stat), v);
                            }
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let mut out = Latencies::default();
                for metric in LATENCY_METRICS {
                    let get =
                        |stat: &str| found.get(&(metric.to_string(), stat.to_string())).copied();
                    let Some(mean) = get("mean") else { continue };
                    let nan = f64::NAN;
                    let d = Distribution {
                        count: get("count").unwrap_or(0.0) as usize,
                        mean,
                        median: get("median").unwrap_or(nan),
                        std: get("std").unwrap_or(nan),
                        p90: get("p90").unwrap_or(nan),
                        p95: get("p95").unwrap_or(nan),
                        p99: get("p99").unwrap_or(nan),
                        min: get("min").unwrap_or(nan),
                        max: get("max").unwrap_or(nan),
                    };
                    if let Some(slot) = out.slot(metric) {
                        *slot = Some(d);
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// `mean_ttft_ms` → (`mean`, `ttft`); `count_itl` → (`count`, `itl`).
fn parse_latency_key(key: &str) -> Option<(String, String)> {
    if let Some(metric) = key.strip_prefix("count_") {
        return LATENCY_METRICS
            .contains(&metric)
            .then(|| ("count".into(), metric.into()));
    }
    let body = key.strip_suffix("_ms")?;
    let (stat, metric) = body.split_once('_')?;
    (LATENCY_STATS.contains(&stat) && LATENCY_METRICS.contains(&metric))
        .then(|| (stat.to_string(), metric.to_string()))
}

/// Requests that count for `model`/`level`: timed rounds only (round 0 is warm-up).
pub(crate) fn counted<'a>(
    data: &'a RunData,
    model: &'a str,
    level: &'a str,
) -> impl Iterator<Item = &'a RequestRecord> + 'a {
    data.requests
        .iter()
        .filter(move |r| r.round >= 1 && r.model == model && r.level == level)
}

/// Requests grouped by their round, in round order: rounds, not requests, are the replicates a
/// verdict rests on, and an interleaved configuration's time is the sum of its own rounds.
pub(crate) fn by_round<'a>(
    reqs: impl IntoIterator<Item = &'a RequestRecord>,
) -> std::collections::BTreeMap<u32, Vec<&'a RequestRecord>> {
    let mut rounds = std::collections::BTreeMap::<u32, Vec<&RequestRecord>>::new();
    for r in reqs {
        rounds.entry(r.round).or_default().push(r);
    }
    rounds
}

/// TTFT: first content token − scheduled start, ms.
pub(crate) fn ttft_ms(r: &RequestRecord) -> Option<f64> {
    r.first_token_ms.map(|t| t - r.scheduled_ms)
}

/// E2E latency: end − scheduled start, ms.
pub(crate) fn e2el_ms(r: &RequestRecord) -> Option<f64> {
    r.end_ms.map(|t| t - r.scheduled_ms)
}

/// TPOT: (E2E − TTFT) / (completion tokens − 1), for ≥ 2 tokens.
pub(crate) fn tpot_ms(r: &RequestRecord) -> Option<f64> {
    let n = r.completion_tokens?;
    (n >= 2).then_some(())?;
    Some((r.end_ms? - r.first_token_ms?) / (n - 1) as f64)
}

/// Gaps between consecutive content chunks, ms.
pub(crate) fn itl_gaps(r: &RequestRecord) -> Vec<f64> {
    r.chunk_ms.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Output tokens per second of one request, over its whole E2E latency.
pub(crate) fn output_tps(r: &RequestRecord) -> Option<f64> {
    let e2e = e2el_ms(r)?;
    (e2e > 0.0).then(|| r.completion_tokens.map(|n| n as f64 / (e2e / 1000.0)))?
}

/// Decode tokens per second of one request: tokens after the first over the time after it.
pub(crate) fn decode_tps(r: &RequestRecord) -> Option<f64> {
    let n = r.completion_tokens?;
    let span = r.end_ms? - r.first_token_ms?;
    (n >= 2 && span > 0.0).then(|| (n - 1) as f64 / (span / 1000.0))
}

/// Duration in seconds over a set of requests: max end − min scheduled start.
pub(crate) fn span_s<'a>(reqs: impl Iterator<Item = &'a RequestRecord>) -> Option<f64> {
    let mut start = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    for r in reqs {
        start = start.min(r.scheduled_ms);
        if let Some(e) = r.end_ms {
            end = end.max(e);
        }
    }
    (end.is_finite() && start.is_finite() && end > start).then(|| (end - start) / 1000.0)
}

/// `x` per second of `duration` (seconds), when the duration is positive.
pub(crate) fn per_s(x: f64, duration: Option<f64>) -> Option<f64> {
    duration.filter(|d| *d > 0.0).map(|d| x / d)
}
