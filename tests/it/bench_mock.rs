//! The benchmark's measurement against a scripted mock OpenAI server on 127.0.0.1: known
//! delays give the right TTFT / ITL / E2E, a role-only first chunk is not a token, a server
//! without usage falls back and says so, failing models are marked failed while the others
//! complete, and open-loop arrivals keep their schedule (coordinated omission is accounted).

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use hearth::bench::mock::{MockScript, MockServer};
use hearth::bench::recorder::Recorder;
use hearth::bench::{self, prompts, BenchOptions, PromptCache, Target};
use hearth::store::record::{
    Environment, LoadShape, ModelStatus, RequestStatus, RunData, RunRecord, RunStatus, TokenSource,
};
use hearth::store::Store;

use common::bench::Quiet;

fn options(shapes: Vec<LoadShape>, rounds: u32, requests: Option<u32>) -> BenchOptions {
    BenchOptions {
        prompts: prompts::default_set(),
        shapes,
        warmup: 1,
        rounds,
        requests_per_round: requests,
        max_tokens: 64,
        stream: true,
        temperature: 0.0,
        seed: 7,
        ignore_eos: false,
        timeout_secs: 30.0,
        prompt_cache: PromptCache::Cold,
        slo: HashMap::new(),
        energy_price_per_kwh: 0.3,
        sample_interval_ms: 50,
        sweep: None,
        stop_over_saturated_secs: None,
        interleave: false,
        input_tokens: None,
        output_tokens: None,
        depths: Vec::new(),
    }
}

fn target(server: &MockServer, model: &str) -> Target {
    common::bench::endpoint_target(&server.base_url, model)
}

/// Runs `targets` into a fresh SQLite store and reads the run back from it.
async fn run(options: BenchOptions, targets: Vec<Target>) -> RunData {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("history.db")).unwrap();
    let run = RunRecord {
        id: "test-run-0001".into(),
        started_unix_ms: 0,
        finished_unix_ms: None,
        status: RunStatus::Running,
        options: hearth::store::record::RunOptions {
            bench: serde_json::to_value(&options).unwrap(),
            interleaved: options.interleave,
            ..Default::default()
        },
        environment: Environment::default(),
        client: serde_json::json!({}),
    };
    let (recorder, writer) = Recorder::start(store, &run).unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let interrupted = bench::run_targets(&options, targets, &recorder, &Quiet, stop).await;
    assert!(!interrupted);
    drop(recorder);
    let mut store = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .unwrap()
        .unwrap();
    tokio::task::spawn_blocking(move || store.load_run("test-run-0001"))
        .await
        .unwrap()
        .unwrap()
}

/// The arrival rates of a run's open-loop levels, in order.
fn rate_levels(data: &RunData) -> Vec<f64> {
    data.levels
        .iter()
        .filter_map(|l| match l.shape {
            LoadShape::Rate { rate, .. } => Some(rate),
            LoadShape::Concurrency { .. } => None,
        })
        .collect()
}

fn script(ttft_ms: u64, itl_ms: u64, tokens: u32) -> MockScript {
    MockScript {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(itl_ms),
        tokens,
        ..MockScript::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_delays_give_the_measured_latencies() {
    let server = MockServer::start(HashMap::from([("m".to_string(), script(60, 15, 6))]))
        .await
        .unwrap();
    let data = run(
        options(vec![LoadShape::Concurrency { concurrency: 1 }], 2, None),
        vec![target(&server, "m")],
    )
    .await;
    assert_eq!(data.models[0].status, ModelStatus::Ok);
    // 1 warm-up + 2 timed rounds of the 4 built-in prompts.
    assert_eq!(data.requests.len(), 12);
    assert_eq!(data.requests.iter().filter(|r| r.round == 0).count(), 4);
    let log: HashMap<String, _> = server
        .log()
        .into_iter()
        .map(|e| (e.prompt.clone(), e))
        .collect();
    assert_eq!(log.len(), 12 + 1, "12 measured requests and one load check");
    // Per request only what a slow or stalled machine cannot break: the server cannot answer
    // earlier than its script (lower bounds); how much later the client sees it is judged on
    // the run's medians below, with room for a loaded machine.
    let (mut ttfts, mut gaps, mut waits) = (Vec::new(), Vec::new(), Vec::new());
    for r in &data.requests {
        assert_eq!(r.status, RequestStatus::Ok, "{:?}", r.error);
        let sent = r.sent_ms.unwrap();
        let ttft = r.first_token_ms.unwrap() - sent;
        // The role-only first chunk is sent at once, the first token 60 ms later: were the
        // role chunk taken for the first token, this would fail.
        assert!(ttft >= 60.0 - 1.0, "ttft {ttft}");
        assert_eq!(r.chunk_ms.len(), 6);
        assert_eq!(r.first_token_ms, Some(r.chunk_ms[0]), "{r:?}");
        // The last token is written 5 × 15 ms after the first.
        assert!(
            r.chunk_ms[5] - sent >= 60.0 + 75.0 - 1.0,
            "{:?}",
            r.chunk_ms
        );
        assert!(r.first_chunk_ms.unwrap() <= r.first_token_ms.unwrap());
        assert!(r.end_ms.unwrap() >= *r.chunk_ms.last().unwrap());
        ttfts.push(ttft);
        gaps.extend(r.chunk_ms.windows(2).map(|w| w[1] - w[0]));
        waits.push(sent - r.scheduled_ms);
        assert_eq!(r.token_source, TokenSource::Usage);
        assert_eq!(r.completion_tokens, Some(6));
        assert_eq!(r.counted_completion_tokens, Some(6));
    }
    // The client adds only its own overhead on loopback: the medians stay near the script.
    // Loose on purpose (a loaded machine delays reads; bounds of 3× the script would still
    // catch a TTFT taken at a later token or at the end, or chunks read all at once).
    let median = |v: &[f64]| hearth::stats::percentile(v, 50.0).unwrap();
    assert!(median(&ttfts) < 3.0 * 60.0, "ttft {ttfts:?}");
    let gap = median(&gaps);
    assert!((15.0 / 2.0..3.0 * 15.0).contains(&gap), "gaps {gaps:?}");
    // Closed loop: no wait for a client slot (which would be a whole answer, ≥ 135 ms).
    assert!(median(&waits) < 50.0, "waits {waits:?}");
    // The report's percentiles are those of the recorded values (timed rounds only).
    let ttft: Vec<f64> = data
        .requests
        .iter()
        .filter(|r| r.round > 0)
        .map(|r| r.first_token_ms.unwrap() - r.scheduled_ms)
        .collect();
    let e2e: Vec<f64> = data
        .requests
        .iter()
        .filter(|r| r.round > 0)
        .map(|r| r.end_ms.unwrap() - r.scheduled_ms)
        .collect();
    let report = serde_json::to_value(hearth::report::summarize(&data)).unwrap();
    let row = &report["levels"][0];
    assert_eq!(row["completed"], 8);
    for (field, values, p) in [
        ("median_ttft_ms", &ttft, 50.0),
        ("p99_ttft_ms", &ttft, 99.0),
        ("p95_e2el_ms", &e2e, 95.0),
    ] {
        let expected = hearth::stats::percentile(values, p).unwrap();
        let got = row[field].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-9,
            "{field}: {got} vs {expected}"
        );
    }
    // Six tokens 15 ms apart after a 60 ms first token: E2E ≈ 60 + 5 × 15 ms, never less
    // (and, loosely, not many times more: see the medians above).
    let median_e2e = row["median_e2el_ms"].as_f64().unwrap();
    assert!(
        (135.0 - 1.0..3.0 * 135.0).contains(&median_e2e),
        "{median_e2e}"
    );
    let level = &data.levels[0];
    assert_eq!(level.level, "c=1");
    assert!(!level.samples.is_empty(), "the mock's /metrics is scraped");
    // Timed requests start after the warm-up ones, on one clock.
    let last_warmup = data
        .requests
        .iter()
        .filter(|r| r.round == 0)
        .map(|r| r.end_ms.unwrap());
    let first_timed = data
        .requests
        .iter()
        .filter(|r| r.round == 1)
        .map(|r| r.scheduled_ms);
    assert!(last_warmup.fold(0.0, f64::max) <= first_timed.fold(f64::MAX, f64::min));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_usage_tokens_are_counted_otherwise_and_the_report_says_how() {
    let mut no_usage = script(5, 2, 9);
    no_usage.usage = false;
    no_usage.role_chunk = false;
    let mut with_tokenizer = no_usage.clone();
    with_tokenizer.tokenize = true;
    let server = MockServer::start(HashMap::from([
        ("plain".to_string(), no_usage),
        ("tokenizing".to_string(), with_tokenizer),
    ]))
    .await
    .unwrap();
    let data = run(
        options(vec![LoadShape::Concurrency { concurrency: 2 }], 1, None),
        vec![target(&server, "plain"), target(&server, "tokenizing")],
    )
    .await;
    let (plain, tokenized): (Vec<_>, Vec<_>) =
        data.requests.iter().partition(|r| r.model == "plain");
    assert_eq!(plain.len(), 8);
    assert!(plain.iter().all(|r| r.token_source == TokenSource::Chunks
        && r.completion_tokens == Some(9)
        && r.prompt_tokens.is_none()));
    // The mock's tokenizer counts words: "tok tok …" is 9 of them, like the 9 chunks.
    assert_eq!(tokenized.len(), 8);
    assert!(tokenized
        .iter()
        .all(|r| r.token_source == TokenSource::Tokenizer
            && r.completion_tokens == Some(9)
            && r.counted_completion_tokens == Some(9)));
    let summary = serde_json::to_value(hearth::report::summarize(&data)).unwrap();
    let text = summary.to_string();
    assert!(
        text.contains("chunks") && text.contains("tokenizer"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_models_are_marked_and_the_others_complete() {
    let mut broken = script(5, 1, 3);
    broken.fail_status = Some(500);
    let mut hanging = script(5, 1, 3);
    hanging.hang = true;
    // A server dying mid-answer: 4 tokens, then the connection closes (no finish, no [DONE]).
    let mut cut = script(5, 1, 8);
    cut.cut_after = Some(4);
    let server = MockServer::start(HashMap::from([
        ("good".to_string(), script(5, 1, 3)),
        ("broken".to_string(), broken),
        ("hanging".to_string(), hanging),
        ("cut".to_string(), cut),
    ]))
    .await
    .unwrap();
    let mut opts = options(vec![LoadShape::Concurrency { concurrency: 1 }], 1, Some(2));
    // Long enough that the good model's answers (~10 ms) finish on a stalled machine too; the
    // hanging one waits it out.
    opts.timeout_secs = 5.0;
    let targets = vec![
        target(&server, "broken"),
        target(&server, "hanging"),
        target(&server, "good"),
        target(&server, "absent"),
        target(&server, "cut"),
    ];
    let data = run(opts, targets).await;
    let status: HashMap<&str, (ModelStatus, Option<&str>)> = data
        .models
        .iter()
        .map(|m| (m.model.as_str(), (m.status, m.error.as_deref())))
        .collect();
    assert_eq!(status["good"].0, ModelStatus::Ok);
    for bad in ["broken", "hanging", "absent", "cut"] {
        assert_eq!(status[bad].0, ModelStatus::Failed, "{bad}");
    }
    assert!(status["broken"].1.unwrap().contains("500"));
    assert!(status["hanging"].1.unwrap().contains("no complete answer"));
    assert!(status["absent"].1.unwrap().contains("404"));
    // A cut stream is a failed request, never a short success; what came is kept.
    assert!(status["cut"].1.unwrap().contains("stream ended early"));
    let cut: Vec<_> = data.requests.iter().filter(|r| r.model == "cut").collect();
    assert_eq!(cut.len(), 4);
    for r in cut {
        assert_eq!(r.status, RequestStatus::Error);
        assert_eq!(r.output, "tok tok tok tok ");
        assert_eq!(r.chunk_ms.len(), 4);
    }
    let good: Vec<_> = data.requests.iter().filter(|r| r.model == "good").collect();
    assert_eq!(good.len(), 4);
    assert!(good.iter().all(|r| r.status == RequestStatus::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_schedule_and_queueing_shows_as_latency() {
    // The server takes ~50 ms per request, one at a time (20/s); arrivals come at 40/s.
    let mut slow = script(10, 10, 5);
    slow.slots = Some(1);
    let server = MockServer::start(HashMap::from([("slow".to_string(), slow)]))
        .await
        .unwrap();
    let shape = LoadShape::Rate {
        rate: 40.0,
        burstiness: 1.0,
        max_concurrency: None,
    };
    let mut opts = options(vec![shape], 1, Some(40));
    opts.warmup = 0;
    let data = run(opts, vec![target(&server, "slow")]).await;
    let mut requests = data.requests.clone();
    requests.sort_by_key(|r| r.seq);
    assert_eq!(requests.len(), 40);
    // Scheduled starts are the seeded Poisson offsets, whatever the server did.
    let offsets = bench::load::arrival_offsets(40, 40.0, 1.0, 7 ^ 1);
    let origin = requests[0].scheduled_ms;
    for (r, offset) in requests.iter().zip(&offsets) {
        let expected = origin + offset.as_secs_f64() * 1000.0;
        assert!((r.scheduled_ms - expected).abs() < 0.01, "seq {}", r.seq);
    }
    // Latency measured from the schedule grows as the queue builds.
    let e2e = |r: &&hearth::store::record::RequestRecord| r.end_ms.unwrap() - r.scheduled_ms;
    let early: f64 = requests[..10].iter().map(|r| e2e(&r)).sum::<f64>() / 10.0;
    let late: f64 = requests[30..].iter().map(|r| e2e(&r)).sum::<f64>() / 10.0;
    assert!(late > 2.0 * early, "early {early:.1} ms, late {late:.1} ms");
    // Open loop without a cap: sent at once (the client's own lag only), not held back until
    // the server answers. Held back, the late requests' wait would be most of their latency
    // (the queue is the server's); sent at once, a small part of it even on a loaded machine.
    let wait = |r: &&hearth::store::record::RequestRecord| r.sent_ms.unwrap() - r.scheduled_ms;
    let late_wait: f64 = requests[30..].iter().map(|r| wait(&r)).sum::<f64>() / 10.0;
    assert!(
        late_wait < 0.25 * late,
        "late requests waited {late_wait:.1} ms of {late:.1} ms to be sent"
    );

    // The same load with a client-side cap of one request in flight on a fast server: the
    // wait for the slot is recorded and counted in latency, not hidden.
    let server = MockServer::start(HashMap::from([("fast".to_string(), script(30, 5, 3))]))
        .await
        .unwrap();
    let capped = LoadShape::Rate {
        rate: 100.0,
        burstiness: 1.0,
        max_concurrency: Some(1),
    };
    let mut opts = options(vec![capped], 1, Some(20));
    opts.warmup = 0;
    let data = run(opts, vec![target(&server, "fast")]).await;
    let waits: Vec<f64> = data
        .requests
        .iter()
        .map(|r| r.sent_ms.unwrap() - r.scheduled_ms)
        .collect();
    let max_wait = waits.iter().cloned().fold(0.0, f64::max);
    assert!(max_wait > 200.0, "max wait {max_wait:.1} ms");
    for r in &data.requests {
        let e2e = r.end_ms.unwrap() - r.scheduled_ms;
        assert!(e2e >= r.sent_ms.unwrap() - r.scheduled_ms + 30.0 - 1.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibration_compares_the_client_with_the_server() {
    let c = bench::calibrate(8, 16).await.unwrap();
    assert_eq!(c.requests, 16);
    // The client cannot see a token before the server wrote it (a lower bound); the upper one
    // is loose for loaded machines, yet an error as large as the scripted 100 ms TTFT would
    // mean the client timed something else (the end, or a later token).
    assert!(
        c.ttft_error_p50_ms >= 0.0 && c.ttft_error_p50_ms < 100.0,
        "{c:?}"
    );
    assert!(c.ttft_error_p99_ms >= c.ttft_error_p50_ms);
}

/// A sweep against a server of known capacity (4 slots, 100 ms an answer: 40 requests/s):
/// its bounds are the synchronous rate and the capacity, its rates run from one to one step
/// past the other, the level past the capacity is stopped as over-saturated (recorded, not a
/// failure), the highest rate kept up with lies between the level well below the capacity and
/// the capacity, and the knee is a level that kept up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_finds_the_knee_of_a_server_with_known_capacity() {
    let mut limited = script(30, 10, 8);
    limited.slots = Some(4);
    let server = MockServer::start(HashMap::from([("cap40".to_string(), limited)]))
        .await
        .unwrap();
    let mut opts = options(vec![], 1, None);
    opts.warmup = 0;
    opts.sweep = Some(bench::Sweep {
        rates: 3,
        max_concurrency: 16,
        // Nearly even arrivals: the verdicts below are about the rates, not about Poisson luck.
        burstiness: 16.0,
    });
    opts.stop_over_saturated_secs = Some(1.5);
    let data = run(opts, vec![target(&server, "cap40")]).await;
    assert_eq!(
        data.models[0].status,
        ModelStatus::Ok,
        "{:?}",
        data.models[0].error
    );
    let labels: Vec<&str> = data.levels.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(labels.len(), 5, "{labels:?}");
    assert_eq!(&labels[..2], ["c=1", "c=16"]);

    let summary = hearth::report::summarize(&data);
    let sweep = &summary.sweeps[0];
    let sync = sweep.synchronous_rate.unwrap();
    let (max, at) = sweep.maximum_rate.clone().unwrap();
    // The server's script caps both (one answer per 100 ms, four at once); a loaded machine
    // only lowers them, so below the caps there are no fixed bounds: the four slots must show
    // as a clearly higher rate at c=16 than one at a time, within this run.
    assert!(sync > 0.0 && sync <= 10.5, "synchronous {sync:.1}/s");
    assert!(max <= 40.5, "maximum {max:.1}/s");
    assert!(
        max > 2.0 * sync,
        "maximum {max:.1}/s, synchronous {sync:.1}/s"
    );
    assert_eq!(at, "c=16");
    let rates = rate_levels(&data);
    let step = (max - sync) / 2.0;
    // The bench sets its rates from its own count of the bounds (successes over the timed
    // span); the report's figures use the level's span: a few percent apart (more when a
    // stall stretches one span and not the other, hence the room).
    assert!(
        (rates[1] - max).abs() < 0.1 * max + 0.5,
        "{rates:?} against {max}"
    );
    assert!(
        (rates[2] - (max + step)).abs() < 0.1 * rates[2] + 0.5,
        "{rates:?}"
    );

    // Past the capacity: stopped, with its evidence, and nothing failed.
    let last = data.levels.last().unwrap();
    let evidence = last
        .stopped
        .as_deref()
        .unwrap_or_else(|| panic!("{last:?}"));
    assert!(evidence.starts_with("over-saturated"), "{evidence}");
    assert_eq!(sweep.over_saturated.last().unwrap().level, last.level);
    assert!(data.requests.iter().all(|r| r.status == RequestStatus::Ok));
    // Well below it: kept up with.
    assert!(
        data.levels[2].stopped.is_none(),
        "{:?}",
        data.levels[2].stopped
    );
    // The highest rate kept up with lies between that level and the capacity. Which of the two
    // it is depends on the machine: the level at the measured maximum runs at ~90% of capacity,
    // where a loaded CI machine can fall behind for long enough to read as saturation.
    let sustained = sweep.max_sustainable.as_ref().unwrap().rate.unwrap();
    assert!(
        sustained <= 40.0 * 1.05 && sustained >= rates[0] - 0.01,
        "kept up with {sustained} req/s, rates {rates:?}"
    );
    // The knee is a level that kept up, past one request at a time: with 4 slots, more
    // requests in flight raise throughput faster than latency until the slots fill.
    let knee = sweep.knee.as_ref().unwrap();
    assert!(knee.rate.is_some_and(|r| r <= sustained), "{knee:?}");
}

/// `--input-tokens 200:40 --output-tokens 30:8`: the stored records have those distributions
/// (prompts counted by the server, here one token a word as its `/tokenize` counts), every
/// prompt is distinct, and the same seed gives the same lengths again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_workloads_have_the_asked_length_distributions() {
    let mut long = script(2, 1, 1000);
    long.tokenize = true;
    let server = MockServer::start(HashMap::from([("m".to_string(), long)]))
        .await
        .unwrap();
    let mut opts = options(
        vec![LoadShape::Concurrency { concurrency: 8 }],
        1,
        Some(120),
    );
    opts.warmup = 0;
    opts.input_tokens = Some("200:40".parse().unwrap());
    opts.output_tokens = Some("30:8".parse().unwrap());
    let data = run(opts.clone(), vec![target(&server, "m")]).await;
    assert_eq!(data.requests.len(), 120);
    let stats = |v: Vec<f64>| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        (mean, sd)
    };
    let (pm, psd) = stats(
        data.requests
            .iter()
            .map(|r| r.prompt_tokens.unwrap() as f64)
            .collect(),
    );
    assert!(
        (pm - 200.0).abs() < 12.0 && (psd - 40.0).abs() < 9.0,
        "input {pm:.1} ± {psd:.1}"
    );
    let (om, osd) = stats(
        data.requests
            .iter()
            .map(|r| r.completion_tokens.unwrap() as f64)
            .collect(),
    );
    assert!(
        (om - 30.0).abs() < 2.5 && (osd - 8.0).abs() < 2.0,
        "output {om:.1} ± {osd:.1}"
    );
    let log = server.log();
    let prompts: std::collections::HashSet<&str> = log
        .iter()
        .filter(|e| e.prompt != "Hi")
        .map(|e| e.prompt.as_str())
        .collect();
    assert_eq!(prompts.len(), 120, "every generated prompt is distinct");

    let again = run(opts, vec![target(&server, "m")]).await;
    let lengths = |d: &RunData| {
        let mut v: Vec<(u32, Option<u64>, Option<u64>)> = d
            .requests
            .iter()
            .map(|r| (r.seq, r.prompt_tokens, r.completion_tokens))
            .collect();
        v.sort();
        v
    };
    assert_eq!(lengths(&data), lengths(&again));
}

/// #33: a server that answers one request at a time (Foundry Local's way) has the same rate
/// at c=1 and at the sweep's top; its rate levels must still run requests around that
/// capacity (some kept up with, the last past it), and a level whose warm-up already fell
/// behind is recorded as stopped, never as a level that passed with nothing measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_a_one_slot_server_measures_its_rate_levels() {
    let mut one_slot = script(100, 10, 20);
    one_slot.slots = Some(1);
    let server = MockServer::start(HashMap::from([("one".to_string(), one_slot)]))
        .await
        .unwrap();
    let mut opts = options(vec![], 1, None);
    opts.sweep = Some(bench::Sweep {
        rates: 3,
        max_concurrency: 32,
        // Nearly even arrivals: the verdicts below are about the rates, not Poisson luck.
        burstiness: 16.0,
    });
    opts.stop_over_saturated_secs = Some(2.0);
    let data = run(opts, vec![target(&server, "one")]).await;
    let labels: Vec<&str> = data.levels.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(labels.len(), 5, "{labels:?}");
    let timed = |level: &str| {
        data.requests
            .iter()
            .filter(|r| r.level == level && r.round > 0)
            .count()
    };
    for level in &data.levels {
        assert!(
            timed(&level.level) > 0 || level.stopped.is_some(),
            "{} ran no timed request and says nothing",
            level.level
        );
    }
    // Capacity is 1 / (100 ms + 20 × 10 ms) = 3.3 requests/s; the rates lie around it: the
    // lowest well below it (a loaded machine only lowers it), the highest past what this run
    // measured as the maximum (on a loaded machine that is below the script's 3.3).
    let rates = rate_levels(&data);
    let measured = hearth::report::summarize(&data).sweeps[0]
        .maximum_rate
        .clone()
        .unwrap()
        .0;
    assert!(
        rates[0] < 3.3 * 0.7 && rates[2] > measured,
        "{rates:?}, maximum {measured:.2}/s"
    );
    // Half the capacity is kept up with and measured.
    let lowest = &data.levels[2];
    assert!(
        lowest.stopped.is_none(),
        "{}: {:?}",
        lowest.level,
        lowest.stopped
    );
    assert!(timed(&lowest.level) > 0);
    // 30% past it: the server cannot keep up. Either the detector stopped the level with its
    // evidence, or (a short level with even arrivals may end before the queue is long enough
    // to judge) the level's answers came at the capacity, well below the arrivals.
    let last = data.levels.last().unwrap();
    let LoadShape::Rate { rate, .. } = last.shape else {
        panic!("the last level is a rate")
    };
    let achieved = timed(&last.level) as f64 * 1000.0 / last.duration_ms.max(1.0);
    assert!(
        last.stopped
            .as_deref()
            .is_some_and(|s| s.starts_with("over-saturated"))
            || achieved < rate * 0.9,
        "{}: {achieved:.2}/s answered, stopped {:?}",
        last.level,
        last.stopped
    );
    let summary = hearth::report::summarize(&data);
    assert_eq!(summary.sweeps.len(), 1);
    // And the reports say why the rates lie around one capacity.
    assert_eq!(summary.sweeps[0].scales_with_concurrency, Some(false));
    let md = hearth::report::render(&data, hearth::report::Format::Markdown).unwrap();
    assert!(md.contains("does not scale"), "{md}");
}

/// An interleaved session of `a` and `a-again` (both `same`) and `a-slower`, one request at a
/// time, six rounds of three; and its comparison within the run.
async fn interleaved_session(
    same: MockScript,
    slower: MockScript,
) -> (RunData, hearth::report::Comparison) {
    let server = MockServer::start(HashMap::from([
        ("a".to_string(), same.clone()),
        ("a-again".to_string(), same),
        ("a-slower".to_string(), slower),
    ]))
    .await
    .unwrap();
    let mut opts = options(vec![LoadShape::Concurrency { concurrency: 1 }], 6, Some(3));
    opts.interleave = true;
    let data = run(
        opts,
        ["a", "a-again", "a-slower"]
            .iter()
            .map(|m| target(&server, m))
            .collect(),
    )
    .await;
    let c =
        hearth::report::compare_within(&data, &hearth::report::CompareOptions::default()).unwrap();
    (data, c)
}

/// How much slower than the first scripts the interleaved sessions' servers answer: at twice
/// the times, a stall of the loaded machine weighs half as much against the 10 % looked for.
const SLOW: u64 = 2;

/// One row of a comparison, by model and metric.
fn compared(
    c: &hearth::report::Comparison,
    model: &str,
    metric: &str,
) -> hearth::report::CompareRow {
    c.rows
        .iter()
        .find(|r| r.model == model && r.metric == metric)
        .unwrap_or_else(|| panic!("{model} {metric}\n{}", c.table()))
        .clone()
}

/// An interleaved session against scripted servers whose truth is known: the rounds alternate
/// A B, B A, …; two identical configurations raise nothing, and one 10 % slower in every token
/// is found by the paired comparison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interleaved_session_alternates_rounds_and_finds_ten_percent() {
    let slower = MockScript {
        ttft: Duration::from_micros(33_000 * SLOW),
        itl: Duration::from_micros(6_600 * SLOW),
        tokens: 12,
        ..MockScript::default()
    };
    let (data, c) = interleaved_session(script(30 * SLOW, 6 * SLOW, 12), slower).await;
    assert!(data.run.options.interleaved);
    // Round by round, every model ran before the next round of any; the order reverses.
    let mut order_of_round = Vec::new();
    for round in 1..=6u32 {
        let mut firsts: Vec<(f64, &str)> = ["a", "a-again", "a-slower"]
            .iter()
            .map(|m| {
                let start = data
                    .requests
                    .iter()
                    .filter(|r| r.model == *m && r.round == round)
                    .map(|r| r.scheduled_ms)
                    .fold(f64::INFINITY, f64::min);
                (start, *m)
            })
            .collect();
        assert!(firsts.iter().all(|(t, _)| t.is_finite()), "round {round}");
        firsts.sort_by(|x, y| x.0.total_cmp(&y.0));
        order_of_round.push(firsts.iter().map(|(_, m)| *m).collect::<Vec<_>>());
    }
    assert_ne!(order_of_round[0], order_of_round[1], "{order_of_round:?}");
    assert_eq!(order_of_round[0], order_of_round[2], "{order_of_round:?}");
    assert_eq!(c.pairing, hearth::report::Pairing::Interleaved);
    let row = |model: &str, metric: &str| compared(&c, model, metric);
    use hearth::report::Verdict;
    assert_ne!(
        row("a-again", "e2el_ms").verdict,
        Verdict::Regression,
        "{}",
        c.table()
    );
    assert_ne!(
        row("a-again", "tpot_ms").verdict,
        Verdict::Regression,
        "{}",
        c.table()
    );
    let e2e = row("a-slower", "e2el_ms");
    assert_eq!(e2e.verdict, Verdict::Regression, "{}", c.table());
    // A paired ratio within the run: the machine's speed divides out, its stalls do not
    // (hence the room, and the slowed scripts).
    assert!(
        (e2e.change_pct.unwrap() - 10.0).abs() < 5.0,
        "{}",
        c.table()
    );
    assert_eq!(e2e.replicates, Some([6, 6]));
    assert_eq!(
        row("a-slower", "tpot_ms").verdict,
        Verdict::Regression,
        "{}",
        c.table()
    );
}

/// The same, on a machine that drifts ±30 % from round to round (the same for both, as a
/// shared machine does): an identical pair stays quiet and +10 % is still found, because the
/// paired comparison divides each round by its partner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interleaved_session_finds_ten_percent_through_drift_between_rounds() {
    // The load check, then the warm-up and six rounds of three requests: each round its own
    // speed, the same for every model.
    let per_round = [1.0, 1.0, 1.3, 0.8, 1.2, 0.7, 1.1];
    let drift: Vec<f64> = std::iter::once(1.0)
        .chain(per_round.iter().flat_map(|f| [*f; 3]))
        .collect();
    let drifting = |ttft_us: u64, itl_us: u64| MockScript {
        ttft: Duration::from_micros(ttft_us),
        itl: Duration::from_micros(itl_us),
        tokens: 12,
        drift: drift.clone(),
        drift_every: 1,
        ..MockScript::default()
    };
    let (data, c) = interleaved_session(
        drifting(30_000 * SLOW, 6_000 * SLOW),
        drifting(33_000 * SLOW, 6_600 * SLOW),
    )
    .await;
    use hearth::report::{compare_within, CompareOptions, Verdict};
    let row = |model: &str, metric: &str| compared(&c, model, metric);
    for metric in ["e2el_ms", "tpot_ms", "ttft_ms"] {
        assert_ne!(
            row("a-again", metric).verdict,
            Verdict::Regression,
            "{}",
            c.table()
        );
        assert_eq!(
            row("a-slower", metric).verdict,
            Verdict::Regression,
            "{metric}\n{}",
            c.table()
        );
    }
    let e2e = row("a-slower", "e2el_ms");
    assert!(
        (e2e.change_pct.unwrap() - 10.0).abs() < 5.0,
        "{}",
        c.table()
    );
    // The rounds themselves moved far more than 10 %: pooled, the drift would swamp it.
    let round_means: Vec<f64> = (1..=6u32)
        .map(|round| {
            let v: Vec<f64> = data
                .requests
                .iter()
                .filter(|r| r.model == "a" && r.round == round)
                .filter_map(|r| Some(r.end_ms? - r.scheduled_ms))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        })
        .collect();
    let (lo, hi) = round_means
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
    // Nominally 1.3 / 0.7; a loaded machine only widens it (the scripted drift is a floor).
    assert!(hi / lo > 1.4, "{round_means:?}");
    // The same data compared as if the two had been separate runs cannot tell.
    let mut sequential = data.clone();
    sequential.run.options.interleaved = false;
    let c = compare_within(&sequential, &CompareOptions::default()).unwrap();
    let slower = c
        .rows
        .iter()
        .find(|r| r.model == "a-slower" && r.metric == "e2el_ms")
        .unwrap();
    assert_ne!(slower.verdict, Verdict::Regression, "{}", c.table());
}
