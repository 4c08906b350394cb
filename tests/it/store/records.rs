//! The records the store tests write and expect back.

use hearth::store::record::{
    Environment, GpuLevel, LevelRecord, LoadShape, ModelRecord, ModelStatus, RequestRecord,
    RequestStatus, RunData, RunRecord, RunStatus, Sample, TokenSource,
};
use hearth::store::testdata;
use hearth::store::Store;
use serde_json::json;

// The records below start from the report tests' hand-made ones (`hearth::store::testdata`)
// and put awkward values where a driver could lose them: floats that do not round-trip
// through a naive decimal, `u64` at the edge of `BIGINT`, Unicode, empty and absent fields.

pub(crate) fn run(id: &str, started: i64) -> RunRecord {
    let base = testdata::run_record(id);
    RunRecord {
        started_unix_ms: started,
        finished_unix_ms: None,
        status: RunStatus::Running,
        options: serde_json::from_value(
            json!({"models": ["smollm2", "qwen"], "rounds": 3, "prompts": "default"}),
        )
        .unwrap(),
        environment: Environment {
            os: "Debian 12".into(),
            kernel: "6.1".into(),
            cpu_model: "Some CPU @ 3.0GHz".into(),
            cpu_features: vec!["avx2".into(), "fma".into()],
            llama_cpp_version: "b1234".into(),
            git_commit: None,
            gpu_backends: vec![],
            devices: vec!["CPU: Some CPU (CPU, cpu, 8.0 GiB)".into()],
            ..base.environment
        },
        client: json!({}),
        ..base
    }
}

pub(crate) fn model(name: &str, status: ModelStatus, error: Option<&str>) -> ModelRecord {
    ModelRecord {
        tags: vec!["chat".into(), "small".into()],
        disk_bytes: Some(i64::MAX as u64),
        load_ms: Some(812.25),
        status,
        error: error.map(str::to_string),
        ..testdata::model(name)
    }
}

pub(crate) fn level(model: &str, shape: LoadShape, samples: usize) -> LevelRecord {
    LevelRecord {
        level: shape.label(),
        shape,
        duration_ms: 12_345.678_901_234_567,
        peak_rss_bytes: Some(123_456_789),
        server_cpu_ms: None,
        client_cpu_ms: 0.1 + 0.2,
        client_lag_p99_ms: 1.0 / 3.0,
        client_bottleneck: true,
        energy_j: Some(42.0),
        samples: (0..samples)
            .map(|i| Sample {
                t_ms: i as f64 * 100.000_000_1 + 0.1,
                rss_bytes: Some(1 << 30),
                cpu_cores: Some(1.0 / 7.0),
                server_queue: None,
                server_active: Some(i as f64),
                server_kv_usage: Some(0.123_456_789_012_345_67),
                gpu_memory_bytes: Some((20 << 30) + i as u64),
                gpu_utilization_pct: Some(97.5),
                gpu_power_w: Some(612.345_678_9),
            })
            .collect(),
        server_metrics: Some(json!({"requests": 4, "ttft_mean_ms": 12.5})),
        // A GPU level survives the store exactly (JSON in its own column).
        gpu: Some(GpuLevel {
            devices: vec!["NVIDIA H200".into()],
            peak_memory_bytes: 21 << 30,
            mean_utilization_pct: 88.8,
            peak_utilization_pct: 100.0,
            mean_power_w: 455.123_456_789,
            peak_power_w: 690.0,
            energy_j: 1.0 / 3.0,
            energy_method: "nvml: GPU energy counter".into(),
        }),
        ..testdata::level(model, 1)
    }
}

pub(crate) fn request(model: &str, level: &str, round: u32, seq: u32) -> RequestRecord {
    let base = seq as f64 * 1000.0 / 3.0;
    RequestRecord {
        scheduled_ms: base,
        sent_ms: Some(base + 0.017),
        first_byte_ms: Some(base + 2.718_281_9e-3 * 1234.0),
        first_chunk_ms: Some(base + 4.0),
        first_token_ms: Some(base + 5.5),
        end_ms: Some(base + 99.999_999_999),
        chunk_ms: vec![base + 5.5, base + 17.123_456_789_012_3, base + 99.9],
        prompt_tokens: Some(31),
        completion_tokens: Some(3),
        cached_tokens: Some(0),
        counted_completion_tokens: Some(3),
        server_timings: Some(json!({"prompt_ms": 1.5, "predicted_per_second": 88.125})),
        output: "Résumé: 会議のメモ — «ok» 🚀\n\"quoted\"\t\\".into(),
        ..testdata::request(model, level, round, seq, 0.0, 0.0, 0.0, 0)
    }
}

/// A request that got nowhere: every optional field `None`.
pub(crate) fn failed_request(model: &str, level: &str, round: u32, seq: u32) -> RequestRecord {
    RequestRecord {
        sent_ms: None,
        first_byte_ms: None,
        first_chunk_ms: None,
        first_token_ms: None,
        end_ms: None,
        chunk_ms: vec![],
        status: RequestStatus::Timeout,
        http_status: None,
        error: Some("no answer within 60 s".into()),
        prompt_tokens: None,
        completion_tokens: None,
        cached_tokens: None,
        token_source: TokenSource::Chunks,
        counted_completion_tokens: None,
        server_timings: None,
        output: String::new(),
        ..request(model, level, round, seq)
    }
}

/// A run with two models (the second failed), levels with samples, and requests written in
/// several batches and out of order.
pub(crate) fn write_sample_run(store: &mut Store, id: &str, started: i64) -> RunData {
    let run = run(id, started);
    store.insert_run(&run).unwrap();
    let a = model("smollm2", ModelStatus::Ok, None);
    let b = model(
        "qwen",
        ModelStatus::Failed,
        Some("could not load: out of memory"),
    );
    store.upsert_model(id, &a).unwrap();
    store.upsert_model(id, &b).unwrap();
    let c1 = level("smollm2", LoadShape::Concurrency { concurrency: 1 }, 3);
    let r2 = level(
        "smollm2",
        LoadShape::Rate {
            rate: 2.5,
            burstiness: 0.5,
            max_concurrency: None,
        },
        0,
    );
    store.upsert_level(id, &c1).unwrap();
    store.upsert_level(id, &r2).unwrap();

    let mut b_req = failed_request("qwen", "c=1", 0, 0);
    b_req.status = RequestStatus::Error;
    b_req.http_status = Some(503);
    let written = [
        vec![request("smollm2", "r=2.5", 1, 1), b_req.clone()],
        vec![
            request("smollm2", "c=1", 1, 2),
            request("smollm2", "c=1", 1, 1),
        ],
        vec![
            request("smollm2", "c=1", 0, 0),
            failed_request("smollm2", "r=2.5", 1, 0),
        ],
    ];
    for batch in &written {
        store.insert_requests(id, batch).unwrap();
    }
    store.insert_requests(id, &[]).unwrap();
    RunData {
        run,
        models: vec![a, b],
        levels: vec![c1, r2],
        requests: vec![
            request("smollm2", "c=1", 0, 0),
            request("smollm2", "c=1", 1, 1),
            request("smollm2", "c=1", 1, 2),
            failed_request("smollm2", "r=2.5", 1, 0),
            request("smollm2", "r=2.5", 1, 1),
            b_req,
        ],
        scores: vec![],
    }
}
