//! The server's side on the same clock: while a level runs, the serving endpoint's Prometheus
//! `/metrics` (hearth's, vLLM's, llama-server's with `--metrics`) is read with the resource
//! probe, so queue length and KV use line up with the requests in the report.

use std::collections::HashMap;

/// One scrape: metric name → value, summed over label sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Parses the Prometheus text exposition format; unknown lines are skipped. Hand-written:
    /// only names and values are needed, and the format is line-based.
    pub fn parse(text: &str) -> Self {
        let mut values = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, rest) = match line.find(['{', ' ']) {
                Some(i) => (&line[..i], &line[i..]),
                None => continue,
            };
            let rest = match rest.strip_prefix('{') {
                Some(r) => match r.rfind('}') {
                    Some(end) => &r[end + 1..],
                    None => continue,
                },
                None => rest,
            };
            let Some(value) = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            *values.entry(name.to_string()).or_insert(0.0) += value;
        }
        Self(values)
    }

    fn first(&self, names: &[&str]) -> Option<f64> {
        names.iter().find_map(|n| self.0.get(*n).copied())
    }

    /// Requests waiting for the server to start them.
    pub fn queue(&self) -> Option<f64> {
        self.first(&[
            "hearth_queue_length",
            "vllm:num_requests_waiting",
            "llamacpp:requests_deferred",
        ])
    }

    /// Requests the server is decoding.
    pub fn active(&self) -> Option<f64> {
        self.first(&[
            "hearth_active_requests",
            "vllm:num_requests_running",
            "llamacpp:requests_processing",
        ])
    }

    /// Share of the KV cache in use, 0..1.
    pub fn kv_usage(&self) -> Option<f64> {
        let hearth = match (
            self.0.get("hearth_kv_cache_used_cells"),
            self.0.get("hearth_kv_cache_capacity_cells"),
        ) {
            (Some(used), Some(cap)) if *cap > 0.0 => Some(used / cap),
            _ => None,
        };
        hearth.or_else(|| {
            self.first(&[
                "vllm:kv_cache_usage_perc",
                "vllm:gpu_cache_usage_perc",
                "llamacpp:kv_cache_usage_ratio",
            ])
        })
    }

    /// The server's own account of what happened between two scrapes: requests finished,
    /// tokens, and the mean of its TTFT and end-to-end histograms over that span.
    pub fn delta_summary(&self, before: &Scrape) -> serde_json::Value {
        let delta = |names: &[&str]| -> Option<f64> {
            let after = self.first(names)?;
            Some(after - before.first(names).unwrap_or(0.0))
        };
        let mean_ms = |base: &[&str]| -> Option<f64> {
            let sums: Vec<String> = base.iter().map(|b| format!("{b}_sum")).collect();
            let counts: Vec<String> = base.iter().map(|b| format!("{b}_count")).collect();
            let sums: Vec<&str> = sums.iter().map(String::as_str).collect();
            let counts: Vec<&str> = counts.iter().map(String::as_str).collect();
            let (s, c) = (delta(&sums)?, delta(&counts)?);
            (c > 0.0).then(|| s / c * 1000.0)
        };
        let mut out = serde_json::Map::new();
        let mut put = |key: &str, value: Option<f64>| {
            if let Some(v) = value {
                out.insert(key.into(), serde_json::json!(v));
            }
        };
        put(
            "requests",
            delta(&[
                "hearth_request_duration_seconds_count",
                "vllm:e2e_request_latency_seconds_count",
                "llamacpp:requests_processed_total",
            ]),
        );
        put(
            "prompt_tokens",
            delta(&[
                "hearth_prompt_tokens_total",
                "vllm:prompt_tokens_total",
                "llamacpp:prompt_tokens_total",
            ]),
        );
        put(
            "completion_tokens",
            delta(&[
                "hearth_completion_tokens_total",
                "vllm:generation_tokens_total",
                "llamacpp:tokens_predicted_total",
            ]),
        );
        put(
            "mean_ttft_ms",
            mean_ms(&[
                "hearth_time_to_first_token_seconds",
                "vllm:time_to_first_token_seconds",
            ]),
        );
        put(
            "mean_e2e_ms",
            mean_ms(&[
                "hearth_request_duration_seconds",
                "vllm:e2e_request_latency_seconds",
            ]),
        );
        put(
            "mean_itl_ms",
            mean_ms(&[
                "hearth_inter_token_latency_seconds",
                "vllm:inter_token_latency_seconds",
                "vllm:time_per_output_token_seconds",
            ]),
        );
        serde_json::Value::Object(out)
    }
}

/// Reads `/metrics` next to a `/v1` base URL; `None` when the server has none.
pub async fn scrape(
    http: &reqwest::Client,
    base_url: &str,
    api_key: Option<&str>,
) -> Option<Scrape> {
    let root = crate::openai::server_root(base_url);
    let mut request = http
        .get(format!("{root}/metrics"))
        .timeout(std::time::Duration::from_secs(2));
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    let scrape = Scrape::parse(&text);
    (!scrape.0.is_empty()).then_some(scrape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_sums() {
        let text = "# HELP x y\n# TYPE hearth_queue_length gauge\n\
            hearth_queue_length{model=\"a\"} 2\nhearth_queue_length{model=\"b\",x=\"}\"} 3\n\
            hearth_active_requests 4\nhearth_kv_cache_used_cells 50\n\
            hearth_kv_cache_capacity_cells 200\nvllm:num_requests_waiting 9 1700000000\n\
            hearth_time_to_first_token_seconds_sum 1.5\nhearth_time_to_first_token_seconds_count 3\n\
            garbage line\n";
        let s = Scrape::parse(text);
        assert_eq!(s.queue(), Some(5.0));
        assert_eq!(s.active(), Some(4.0));
        assert_eq!(s.kv_usage(), Some(0.25));
        let before = Scrape::parse(
            "hearth_time_to_first_token_seconds_sum 0.5\nhearth_time_to_first_token_seconds_count 1\n",
        );
        let d = s.delta_summary(&before);
        assert_eq!(d["mean_ttft_ms"], serde_json::json!(500.0));
        let vllm = Scrape::parse("vllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc 0.5\n");
        assert_eq!((vllm.queue(), vllm.kv_usage()), (Some(1.0), Some(0.5)));
    }
}
