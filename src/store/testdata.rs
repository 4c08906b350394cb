//! Hand-made runs for the report tests: small enough that every expected number can be
//! worked out by hand (the arithmetic is in the comments of `sample_run`).

use crate::store::record::*;

/// A successful request: sent 0.5 ms after `scheduled`, first byte at TTFT − 1, `tokens`
/// content chunks `gap` apart starting at TTFT, ending on the last chunk.
#[allow(clippy::too_many_arguments)] // a test row: reads best as one call with every field
pub fn request(
    model: &str,
    level: &str,
    round: u32,
    seq: u32,
    scheduled: f64,
    ttft: f64,
    gap: f64,
    tokens: u64,
) -> RequestRecord {
    let first = scheduled + ttft;
    let chunk_ms: Vec<f64> = (0..tokens).map(|i| first + i as f64 * gap).collect();
    RequestRecord {
        model: model.into(),
        level: level.into(),
        round,
        seq,
        prompt_id: format!("p{seq}"),
        scheduled_ms: scheduled,
        sent_ms: Some(scheduled + 0.5),
        first_byte_ms: Some(first - 1.0),
        first_chunk_ms: Some(first - 0.5),
        first_token_ms: Some(first),
        end_ms: chunk_ms.last().copied().or(Some(first)),
        chunk_ms,
        status: RequestStatus::Ok,
        http_status: Some(200),
        error: None,
        prompt_tokens: Some(20),
        completion_tokens: Some(tokens),
        cached_tokens: Some(0),
        token_source: TokenSource::Usage,
        counted_completion_tokens: None,
        server_timings: None,
        output: "hello <world> & \"friends\"".into(),
    }
}

/// A failed request that ended `after` ms after its schedule.
pub fn failed(
    model: &str,
    level: &str,
    round: u32,
    seq: u32,
    scheduled: f64,
    after: f64,
) -> RequestRecord {
    let mut r = request(model, level, round, seq, scheduled, after, 0.0, 0);
    r.first_token_ms = None;
    r.first_chunk_ms = None;
    r.chunk_ms.clear();
    r.end_ms = Some(scheduled + after);
    r.status = RequestStatus::Error;
    r.http_status = Some(500);
    r.error = Some("upstream said <no> & closed".into());
    r.completion_tokens = None;
    r.prompt_tokens = None;
    r.output.clear();
    r
}

/// A model record with the usual catalog facts.
pub fn model(name: &str) -> ModelRecord {
    ModelRecord {
        model: name.into(),
        backend: "hearth".into(),
        endpoint: "http://127.0.0.1:5273/v1".into(),
        license: Some("apache-2.0".into()),
        tags: vec!["chat".into()],
        quantization: Some("Q4_1".into()),
        disk_bytes: Some(98_362_432),
        load_ms: Some(90.0),
        status: ModelStatus::Ok,
        error: None,
    }
}

/// A closed-loop level record with a few time-series samples.
pub fn level(model: &str, concurrency: u32) -> LevelRecord {
    LevelRecord {
        model: model.into(),
        level: format!("c={concurrency}"),
        shape: LoadShape::Concurrency { concurrency },
        duration_ms: 310.0,
        peak_rss_bytes: Some(200 << 20),
        server_cpu_ms: Some(500.0),
        client_cpu_ms: 20.0,
        client_lag_p99_ms: 0.3,
        client_bottleneck: false,
        energy_j: Some(36.0),
        energy_method: Some("estimate: 15 W × cpu share".into()),
        samples: (0..8)
            .map(|i| Sample {
                t_ms: i as f64 * 60.0,
                rss_bytes: Some((180 + i * 2) << 20),
                cpu_cores: Some(1.5),
                server_queue: Some((i % 3) as f64),
                server_active: Some((i % 2 + 1) as f64),
                server_kv_usage: Some(i as f64 / 10.0),
                ..Sample::default()
            })
            .collect(),
        server_metrics: Some(serde_json::json!({"requests": 4, "mean_ttft_ms": 38.5})),
        gpu: None,
        stopped: None,
        depth: None,
    }
}

/// A run record with an SLO (TTFT ≤ 45 ms, E2E ≤ 1000 ms) and a price of 0.25 per kWh.
pub fn run_record(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        started_unix_ms: 1_764_300_000_000,
        finished_unix_ms: Some(1_764_300_060_000),
        status: RunStatus::Complete,
        options: serde_json::from_value(serde_json::json!({
            "slo": {"ttft_ms": 45, "e2e_ms": 1000},
            "energy_price_per_kwh": 0.25,
            "rounds": 2,
        }))
        .expect("run options"),
        environment: Environment {
            hostname: "box".into(),
            os: "Linux".into(),
            cpu_model: "Test CPU".into(),
            cpu_features: vec!["avx2".into()],
            logical_cpus: 2,
            physical_cores: 1,
            memory_bytes: 8 << 30,
            threads: 2,
            hearth_version: "0.1.0".into(),
            ..Environment::default()
        },
        client: serde_json::json!({"calibration_floor_ms": 0.05}),
    }
}

/// smollm2 at c=1 and c=4, qwen at c=1 and c=4 (client-bottlenecked at c=4) and a model
/// that failed to load.
///
/// smollm2 c=1, counted requests (round 0 is a warm-up with TTFT 999 that must not count):
/// - A: sched 100, TTFT 50, 5 tokens 10 ms apart → end 190, E2E 90, TPOT 10, cache warm, usage
/// - B: sched 200, TTFT 30, 3 tokens 20 ms apart → end 270, E2E 70, TPOT 20, cold, tokenizer
/// - C (round 2): sched 300, TTFT 40, 4 tokens 10 ms apart → end 370, E2E 70, TPOT 10,
///   cache unknown, usage with an independent count of 5 (a disagreement)
/// - D (round 2): failed, sched 400, end 410
///
/// Duration 0.31 s; 12 output tokens, 60 input tokens; SLO met by B and C only (A's TTFT 50 >
/// 45, D failed): goodput 2/0.31, share 0.5. ITL gaps: seven of 10 and two of 20.
pub fn sample_run() -> RunData {
    let s = "smollm2";
    let mut a = request(s, "c=1", 1, 1, 100.0, 50.0, 10.0, 5);
    a.cached_tokens = Some(20);
    let mut b = request(s, "c=1", 1, 2, 200.0, 30.0, 20.0, 3);
    b.token_source = TokenSource::Tokenizer;
    let mut c = request(s, "c=1", 2, 3, 300.0, 40.0, 10.0, 4);
    c.cached_tokens = None;
    c.counted_completion_tokens = Some(5);
    let mut requests = vec![
        request(s, "c=1", 0, 0, 0.0, 999.0, 1.0, 2),
        a,
        b,
        c,
        failed(s, "c=1", 2, 4, 400.0, 10.0),
    ];
    for (m, base) in [(s, 40.0), ("qwen2.5-0.5b", 70.0)] {
        for i in 0..8u32 {
            let sched = (i / 4) as f64 * 200.0;
            let ttft = base + (i % 4) as f64 * 5.0;
            requests.push(request(
                m,
                "c=4",
                1 + i / 4,
                i,
                sched,
                ttft,
                12.0,
                6 + (i % 3) as u64,
            ));
        }
    }
    for i in 0..3u32 {
        requests.push(request(
            "qwen2.5-0.5b",
            "c=1",
            1,
            i,
            i as f64 * 150.0,
            60.0 + i as f64,
            15.0,
            5,
        ));
    }
    let mut q4 = level("qwen2.5-0.5b", 4);
    q4.client_bottleneck = true;
    q4.energy_method = Some("rapl".into());
    let mut broken = model("broken-model");
    broken.status = ModelStatus::Failed;
    broken.error = Some("load failed: <script>alert('x')</script> & bad | magic".into());
    broken.license = None;
    let mut qwen = model("qwen2.5-0.5b");
    qwen.disk_bytes = Some(400 << 20);
    qwen.license = Some("apache-2.0".into());
    RunData {
        run: run_record("20261128-041502-7f3a"),
        models: vec![model(s), qwen, broken],
        levels: vec![level(s, 1), level(s, 4), level("qwen2.5-0.5b", 1), q4],
        requests,
        scores: vec![],
    }
}

/// One model, one level (`c=1`), one counted request per E2E value: TTFT is a fifth of the
/// E2E, 10 tokens evenly spaced after it. Used by the `compare` tests.
pub fn run_with_e2e(id: &str, model_name: &str, e2e: &[f64]) -> RunData {
    let requests = e2e
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ttft = v / 5.0;
            request(
                model_name,
                "c=1",
                1 + (i % 3) as u32,
                i as u32,
                i as f64 * 10_000.0,
                ttft,
                (v - ttft) / 9.0,
                10,
            )
        })
        .collect();
    RunData {
        run: run_record(id),
        models: vec![model(model_name)],
        levels: vec![level(model_name, 1)],
        requests,
        scores: vec![],
    }
}
