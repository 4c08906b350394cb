//! The client's own floor: how far the TTFT it measures is from what a scripted server really
//! did, so a run can say whether its client was fast enough for the load it generated.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::client::{Clock, Endpoint, Job, RequestParams};
use super::{load, mock, resources};
use crate::store::record::LoadShape;

/// How far the client's measured TTFT is from what a scripted server really did.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// Streams in flight.
    pub concurrency: u32,
    /// Requests measured.
    pub requests: u32,
    /// Client TTFT minus the server's own TTFT, milliseconds: median.
    pub ttft_error_p50_ms: f64,
    /// … 99th percentile.
    pub ttft_error_p99_ms: f64,
    /// … largest.
    pub ttft_error_max_ms: f64,
    /// Client CPU time per request, milliseconds.
    pub client_cpu_ms_per_request: f64,
    /// Client timer lag p99 during the calibration, milliseconds.
    pub lag_p99_ms: f64,
}

/// Measures the client's own floor against the built-in mock server with scripted timings
/// (on its own thread, as a server in its own process): open-loop Poisson arrivals at the rate
/// that keeps about `concurrency` streams in flight, `requests` of them, after one warm-up
/// round that opens the connections. The error compares the TTFT the client measures (send to
/// first content token) with the TTFT the server actually produced (request received to first
/// token written), both on this process's monotonic clock.
pub async fn calibrate(concurrency: u32, requests: u32) -> std::io::Result<Calibration> {
    let script = mock::MockScript {
        ttft: Duration::from_millis(100),
        itl: Duration::from_millis(20),
        tokens: 16,
        ..mock::MockScript::default()
    };
    let busy = script.ttft + script.itl * (script.tokens - 1);
    let server =
        mock::MockServer::start(HashMap::from([("calibration".to_string(), script)])).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()
        .map_err(std::io::Error::other)?;
    let clock = Clock::start();
    let ctx = load::LevelContext {
        http,
        endpoint: Endpoint {
            base_url: server.base_url.clone(),
            model: "calibration".into(),
            api_key: None,
        },
        params: RequestParams {
            stream: true,
            temperature: 0.0,
            seed: None,
            ignore_eos: false,
            timeout: Duration::from_secs(60),
        },
        clock,
        level: "calibration".into(),
        seed: 0,
    };
    let concurrency = concurrency.max(1);
    let jobs = |round: u32, n: u32| -> Vec<Job> {
        (0..n)
            .map(|i| Job {
                prompt_id: "calibration".into(),
                nonce: String::new(),
                prompt: format!("calibration round {round} request {i}"),
                max_tokens: 16,
                round,
                seq: i,
                response_format: None,
            })
            .collect()
    };
    let (_stop_tx, mut stop) = watch::channel(false);
    // Warm-up: one closed-loop round opens `concurrency` connections.
    let (warm_tx, _warm_rx) = mpsc::unbounded_channel();
    let warm = LoadShape::Concurrency { concurrency };
    load::run_round(&ctx, warm, jobs(0, concurrency), &warm_tx, &mut stop, None).await;
    let requests = requests.max(1);
    let shape = LoadShape::Rate {
        rate: f64::from(concurrency) / busy.as_secs_f64(),
        burstiness: 1.0,
        max_concurrency: None,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, mut stop) = watch::channel(false);
    let cpu_before = resources::client_cpu_ms();
    let lag = load::LagMonitor::start(Duration::from_millis(10));
    load::run_round(&ctx, shape, jobs(1, requests), &tx, &mut stop, None).await;
    let lag_p99_ms = lag.finish();
    let cpu = resources::client_cpu_ms() - cpu_before;
    drop(tx);
    let log: HashMap<String, mock::MockLogEntry> = server
        .log()
        .into_iter()
        .map(|e| (e.prompt.clone(), e))
        .collect();
    let mut errors = Vec::new();
    while let Some(record) = rx.recv().await {
        let entry = log.get(&format!("calibration round 1 request {}", record.seq));
        if let (Some(entry), Some(sent), Some(first)) =
            (entry, record.sent_ms, record.first_token_ms)
        {
            if let Some(server_first) = entry.first_token {
                let server_ttft =
                    server_first.duration_since(entry.received).as_secs_f64() * 1000.0;
                errors.push((first - sent) - server_ttft);
            }
        }
    }
    let pick = |p: f64| crate::stats::percentile(&errors, p).unwrap_or(f64::NAN);
    Ok(Calibration {
        concurrency,
        requests: errors.len() as u32,
        ttft_error_p50_ms: pick(50.0),
        ttft_error_p99_ms: pick(99.0),
        ttft_error_max_ms: pick(100.0),
        client_cpu_ms_per_request: cpu / f64::from(requests),
        lag_p99_ms,
    })
}
