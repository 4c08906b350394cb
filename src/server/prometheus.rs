//! Prometheus metrics for `GET /metrics`: request counts, tokens, latency histograms (time to
//! first token, inter-token latency, end-to-end), and load gauges read from the engines at
//! scrape time (queue length, active requests, KV cache use, speculative decoding's drafted and
//! accepted tokens and their ratio).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::registry::LoadedInfo;
use crate::engine::Usage;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

/// All metrics the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    prompt_tokens: Counter,
    prompt_tokens_cached: Counter,
    completion_tokens: Counter,
    ttft: Histogram,
    inter_token: Histogram,
    e2e: Histogram,
    queued: Family<ModelLabels, Gauge>,
    active: Family<ModelLabels, Gauge>,
    slots: Family<ModelLabels, Gauge>,
    kv_used: Family<ModelLabels, Gauge>,
    kv_capacity: Family<ModelLabels, Gauge>,
    draft_tokens: Family<ModelLabels, Gauge>,
    draft_accepted: Family<ModelLabels, Gauge>,
    draft_acceptance: Family<ModelLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hearth");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by endpoint and status",
            requests.clone(),
        );
        let prompt_tokens = Counter::default();
        registry.register(
            "prompt_tokens",
            "Prompt tokens processed",
            prompt_tokens.clone(),
        );
        let prompt_tokens_cached = Counter::default();
        registry.register(
            "prompt_tokens_cached",
            "Prompt tokens reused from a cached prefix instead of computed (a share of prompt_tokens)",
            prompt_tokens_cached.clone(),
        );
        let completion_tokens = Counter::default();
        registry.register(
            "completion_tokens",
            "Tokens generated",
            completion_tokens.clone(),
        );
        let ttft = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "time_to_first_token_seconds",
            "Time to first token",
            ttft.clone(),
        );
        let inter_token = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "inter_token_latency_seconds",
            "Time between streamed tokens",
            inter_token.clone(),
        );
        let e2e = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        registry.register(
            "request_duration_seconds",
            "End-to-end generation time",
            e2e.clone(),
        );
        let queued = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "queue_length",
            "Requests waiting for a sequence slot",
            queued.clone(),
        );
        let active = Family::<ModelLabels, Gauge>::default();
        registry.register("active_requests", "Requests being decoded", active.clone());
        let slots = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "slots",
            "Sequence slots (max concurrent requests per batch)",
            slots.clone(),
        );
        let kv_used = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "kv_cache_used_cells",
            "KV cache cells in use",
            kv_used.clone(),
        );
        let kv_capacity = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "kv_cache_capacity_cells",
            "KV cache cells in all",
            kv_capacity.clone(),
        );
        let draft_tokens = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "draft_tokens",
            "Tokens drafted by speculative decoding since the model loaded",
            draft_tokens.clone(),
        );
        let draft_accepted = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "draft_accepted_tokens",
            "Drafted tokens the model accepted since it loaded",
            draft_accepted.clone(),
        );
        let draft_acceptance = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "draft_acceptance_ratio",
            "Share of drafted tokens accepted since the model loaded (0 before any draft)",
            draft_acceptance.clone(),
        );
        Self {
            registry,
            draft_tokens,
            draft_accepted,
            draft_acceptance,
            requests,
            prompt_tokens,
            prompt_tokens_cached,
            completion_tokens,
            ttft,
            inter_token,
            e2e,
            queued,
            active,
            slots,
            kv_used,
            kv_capacity,
        }
    }

    /// Counts a finished HTTP request.
    pub fn request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    /// Records a finished generation; `usage.cached_prompt_tokens` of its prompt were reused,
    /// the rest computed.
    pub fn generation(&self, usage: &Usage, seconds: f64) {
        let prompt_tokens = usage.prompt_tokens;
        let completion_tokens = usage.completion_tokens;
        self.prompt_tokens_cached
            .inc_by(usage.cached_prompt_tokens.min(prompt_tokens) as u64);
        self.prompt_tokens.inc_by(prompt_tokens as u64);
        self.completion_tokens.inc_by(completion_tokens as u64);
        self.e2e.observe(seconds);
    }

    /// Records a time to first token.
    pub fn first_token(&self, seconds: f64) {
        self.ttft.observe(seconds);
    }

    /// Records a gap between two streamed tokens.
    pub fn inter_token(&self, seconds: f64) {
        self.inter_token.observe(seconds);
    }

    /// The text exposition, with gauges refreshed from `loaded`.
    pub fn render(&self, loaded: &[LoadedInfo]) -> String {
        for family in [
            &self.queued,
            &self.active,
            &self.slots,
            &self.kv_used,
            &self.kv_capacity,
            &self.draft_tokens,
            &self.draft_accepted,
        ] {
            family.clear();
        }
        self.draft_acceptance.clear();
        for m in loaded {
            let labels = ModelLabels {
                model: m.model.clone(),
            };
            let set = |f: &Family<ModelLabels, Gauge>, v: usize| {
                f.get_or_create(&labels).set(v as i64);
            };
            set(&self.queued, m.stats.queued);
            set(&self.active, m.stats.active);
            set(&self.slots, m.stats.slots);
            set(&self.kv_used, m.stats.kv_used);
            set(&self.kv_capacity, m.stats.kv_capacity);
            set(&self.draft_tokens, m.stats.draft_tokens as usize);
            set(&self.draft_accepted, m.stats.draft_accepted as usize);
            let ratio = if m.stats.draft_tokens > 0 {
                m.stats.draft_accepted as f64 / m.stats.draft_tokens as f64
            } else {
                0.0
            };
            self.draft_acceptance.get_or_create(&labels).set(ratio);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
