//! Judging and annotating a stored run: a scripted judge on 127.0.0.1 that answers well, badly
//! then well, or badly twice; the scores land in a real SQLite history and in the reports, a
//! person's score outranks the judge's, and a bad annotation file changes nothing.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use hearth::bench::mock::{MockScript, MockServer};
use hearth::bench::recorder::Recorder;
use hearth::bench::{self, prompts::PromptSpec, BenchOptions, PromptCache};
use hearth::eval::annotate;
use hearth::eval::judge::{self, JudgeEndpoint, RUBRIC_VERSION};
use hearth::report::{self, Format};
use hearth::store::record::{Environment, LoadShape, RunData, RunRecord, RunStatus, ScoreSource};
use hearth::store::Store;

use common::bench::Quiet;

const RUN: &str = "judge-run-0001";

/// One prompt, two timed rounds of it by the mock model `answerer`: two identical answers.
async fn answered_run(server: &MockServer, db: &std::path::Path) -> RunData {
    let options = BenchOptions {
        prompts: vec![PromptSpec {
            id: "notes".into(),
            prompt: "Summarize: the budget was approved.".into(),
            max_tokens: Some(8),
            facets: vec!["budget approved".into()],
            checks: vec![],
            reference: Some("The budget was approved.".into()),
            response_format: None,
        }],
        shapes: vec![LoadShape::Concurrency { concurrency: 1 }],
        warmup: 1,
        rounds: 2,
        requests_per_round: None,
        max_tokens: 8,
        stream: true,
        temperature: 0.0,
        seed: 1,
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
    };
    let store = Store::open_sqlite(db).unwrap();
    let run = RunRecord {
        id: RUN.into(),
        started_unix_ms: 0,
        finished_unix_ms: None,
        status: RunStatus::Running,
        options: serde_json::from_value(serde_json::json!({"bench": &options})).unwrap(),
        environment: Environment::default(),
        client: serde_json::json!({}),
    };
    let target = common::bench::endpoint_target(&server.base_url, "answerer");
    let (recorder, writer) = Recorder::start(store, &run).unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    assert!(!bench::run_targets(&options, vec![target], &recorder, &Quiet, stop).await);
    drop(recorder);
    let mut store = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .unwrap()
        .unwrap();
    store.load_run(RUN).unwrap()
}

fn judge_script(replies: &[&str]) -> MockScript {
    MockScript {
        ttft: Duration::from_millis(1),
        itl: Duration::from_millis(1),
        replies: replies.iter().map(|r| r.to_string()).collect(),
        ..MockScript::default()
    }
}

fn judge_at(server: &MockServer, model: &str) -> JudgeEndpoint {
    JudgeEndpoint {
        base_url: server.base_url.clone(),
        model: model.into(),
        api_key: None,
        constrain: false,
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_judges_score_retry_and_give_up() {
    let server = MockServer::start(HashMap::from([
        ("answerer".to_string(), MockScript::default()),
        (
            "good".to_string(),
            judge_script(&[r#"{"score": 4, "reason": "covers the budget"}"#]),
        ),
        (
            "retry".to_string(),
            judge_script(&[
                "It is a decent answer.",
                r#"{"score": 2, "reason": "thin"}"#,
            ]),
        ),
        (
            "bad".to_string(),
            judge_script(&["Great answer!", "Still great, 5 stars."]),
        ),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let data = answered_run(&server, &db).await;
    assert_eq!(judge::scorable(&data).len(), 2, "two timed answers");
    let judged = |model: &str| server.log().iter().filter(|e| e.model == model).count();

    // A valid verdict: one request for the two identical answers, a score for each.
    let scores = judge::judge_run(&data, &judge_at(&server, "good"), |_, _| {}).await;
    assert_eq!(judged("good"), 1, "identical answers are judged once");
    assert_eq!(scores.len(), 2);
    for s in &scores {
        assert_eq!(s.score, Some(4));
        assert_eq!(s.reason.as_deref(), Some("covers the budget"));
        assert_eq!(s.rubric_version.as_deref(), Some(RUBRIC_VERSION));
        assert_eq!(s.source, ScoreSource::Judge);
        assert!(s.scorer.starts_with("good @ http://127.0.0.1:"));
    }

    // Malformed, then valid after being told what was wrong.
    let retried = judge::judge_run(&data, &judge_at(&server, "retry"), |_, _| {}).await;
    assert_eq!(judged("retry"), 2, "one retry");
    let log = server.log();
    let retry_prompt = &log
        .iter()
        .filter(|e| e.model == "retry")
        .nth(1)
        .unwrap()
        .prompt;
    assert!(retry_prompt.contains("Reply again"), "{retry_prompt}");
    assert_eq!(retried[0].score, Some(2));
    let raw: Vec<String> = serde_json::from_str(retried[0].raw.as_deref().unwrap()).unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0], "It is a decent answer.");

    // Malformed twice: unscored, never guessed (the prose says 5 stars).
    let given_up = judge::judge_run(&data, &judge_at(&server, "bad"), |_, _| {}).await;
    assert_eq!(judged("bad"), 2, "one retry, then no more");
    assert!(given_up.iter().all(|s| s.score.is_none()));
    assert!(given_up[0]
        .reason
        .as_deref()
        .unwrap()
        .starts_with("unscored:"));

    // Stored: the unreadable verdict is recorded as unscored beside nothing else.
    let mut store = Store::open_sqlite(&db).unwrap();
    store.upsert_scores(RUN, &given_up).unwrap();
    let stored = store.load_run(RUN).unwrap();
    let summary = report::summarize(&stored);
    let q = &summary.levels[0].quality;
    assert_eq!(
        (q.score, q.judge_unscored, q.scored_by.as_deref()),
        (None, 2, None)
    );

    // The valid verdicts replace them (same source, same answers).
    store.upsert_scores(RUN, &scores).unwrap();
    let stored = store.load_run(RUN).unwrap();
    assert_eq!(stored.scores.len(), 2);
    let summary = report::summarize(&stored);
    let q = &summary.models[0].quality;
    assert_eq!(
        (q.score, q.scored_by.as_deref()),
        (Some(4.0), Some("judge"))
    );
    assert_eq!(summary.recommendation.pick.as_deref(), Some("answerer"));
    assert!(summary.recommendation.quality_applied);
    let md = report::render(&stored, Format::Markdown).unwrap();
    assert!(
        md.contains("## Recommendation") && md.contains("4.0 (judge)"),
        "{md}"
    );
    assert!(md.contains(RUBRIC_VERSION));
    let html = report::render(&stored, Format::Html).unwrap();
    assert!(html.contains("Quality against latency") && html.contains("id=\"recommendation\""));

    // A score for an answer the run does not have: refused, nothing written.
    let mut stray = scores.clone();
    stray[1].seq = 999;
    let err = store.upsert_scores(RUN, &stray).unwrap_err().to_string();
    assert!(err.contains("seq 999"), "{err}");
    assert_eq!(store.load_run(RUN).unwrap().scores, stored.scores);

    // People: export, fill, import; their score wins over the judge's in every report.
    let rows = annotate::export_rows(&stored);
    assert_eq!(rows.len(), 1, "one distinct answer");
    assert_eq!((rows[0].answers, rows[0].judge_score.as_str()), (2, "4"));
    let mut filled = rows.clone();
    filled[0].score = "2".into();
    filled[0].comment = "only repeats a word".into();
    let parsed = annotate::parse(&annotate::to_csv(&filled).unwrap()).unwrap();
    let human = annotate::import_scores(&stored, &parsed, "ana", 5).unwrap();
    store.upsert_scores(RUN, &human).unwrap();
    let stored = store.load_run(RUN).unwrap();
    let summary = report::summarize(&stored);
    let q = &summary.models[0].quality;
    assert_eq!(q.score, Some(2.0));
    assert_eq!(q.scored_by.as_deref(), Some("human"));
    assert_eq!((q.judge_score, q.human_score), (Some(4.0), Some(2.0)));
    assert!(
        summary.recommendation.pick.is_none(),
        "2.0 is below the 3.5 bar"
    );
    let json: serde_json::Value =
        serde_json::from_str(&report::render(&stored, Format::Json).unwrap()).unwrap();
    assert_eq!(json["models"][0]["quality"]["score"], 2.0);
    assert!(json["recommendation"]["candidates"][0]["not_picked"]
        .as_str()
        .unwrap()
        .contains("below the bar"));

    // A bad file (a score of 9) is refused whole.
    filled[0].score = "9".into();
    let parsed = annotate::parse(&annotate::to_csv(&filled).unwrap()).unwrap();
    let errors = annotate::import_scores(&stored, &parsed, "ana", 6).unwrap_err();
    assert_eq!(errors[0].location, "line 2");
}
