//! The run history against both databases it supports: every test body below runs once on a
//! real SQLite file in a temporary folder and once on a real PostgreSQL (in a fresh schema of
//! the database named by `HEARTH_TEST_PG_URL`, dropped afterwards). The databases are in
//! `backend`, the records written and expected in `records`.

mod backend;
mod records;

use backend::Backend;
use hearth::report::{self, Format};
use hearth::store::record::{
    LoadShape, ModelStatus, RequestRecord, RunStatus, ScoreRecord, ScoreSource, TuneRecord,
};
use hearth::store::testdata;
use hearth::store::{Store, StoreError, SCHEMA_VERSION};
use records::{level, model, request, run, write_sample_run};
use serde_json::json;

/// Each test body, once per database.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::sqlite()); } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::postgres(stringify!($name))); } )*
        }
    };
}

on_both!(
    round_trip_is_exact,
    report_run_reads_back_the_same,
    upserts_overwrite_and_keep_order,
    list_and_resolve,
    migrations_apply_once,
    future_schema_is_refused,
    crash_keeps_finished_requests,
    request_batches_are_all_or_nothing,
    unstorable_values_are_refused,
    scores_round_trip_replace_and_refuse_strays,
    tunes_round_trip_list_newest_first_and_resolve,
);

fn round_trip_is_exact(db: Backend) {
    let mut store = db.open();
    assert_eq!(store.kind(), db.kind());
    let expected = write_sample_run(&mut store, "20260101-120000-abcd", 1_767_268_800_000);
    assert_eq!(store.load_run("20260101-120000-abcd").unwrap(), expected);

    let mut done = expected.run.clone();
    done.status = RunStatus::Complete;
    done.finished_unix_ms = Some(1_767_268_900_000);
    done.client = json!({"floor_ms": 0.25, "bottleneck": false, "lag_p99_ms": [1, 2]});
    done.options = serde_json::from_value(json!({"rounds": 5})).unwrap();
    store.update_run(&done).unwrap();
    drop(store);

    // What a later process reads, through a fresh connection.
    let loaded = db.open().load_run("20260101-120000-abcd").unwrap();
    assert_eq!(loaded.run, done);
    assert_eq!(loaded.models, expected.models);
    assert_eq!(loaded.levels, expected.levels);
    assert_eq!(loaded.requests, expected.requests);

    let mut store = db.open();
    let missing = run("nope", 0);
    assert!(matches!(
        store.update_run(&missing),
        Err(StoreError::RunNotFound(_))
    ));
    assert!(matches!(
        store.load_run("nope"),
        Err(StoreError::RunNotFound(_))
    ));
}

/// The run every report test is worked out on, stored and read back: the same records (in the
/// store's order: model, level, round, seq) and, from them, the same JSON report.
fn report_run_reads_back_the_same(db: Backend) {
    let mut store = db.open();
    let mut data = testdata::sample_run();
    let id = data.run.id.clone();
    store.insert_run(&data.run).unwrap();
    for m in &data.models {
        store.upsert_model(&id, m).unwrap();
    }
    for l in &data.levels {
        store.upsert_level(&id, l).unwrap();
    }
    store.insert_requests(&id, &data.requests).unwrap();
    let loaded = db.open().load_run(&id).unwrap();
    let place = |r: &RequestRecord| {
        let level = data
            .levels
            .iter()
            .position(|l| l.model == r.model && l.level == r.level);
        (level, r.round, r.seq)
    };
    let mut requests = data.requests.clone();
    requests.sort_by_key(place);
    data.requests = requests;
    assert_eq!(loaded, data);
    assert_eq!(
        report::render(&loaded, Format::Json).unwrap(),
        report::render(&data, Format::Json).unwrap()
    );
}

fn upserts_overwrite_and_keep_order(db: Backend) {
    let mut store = db.open();
    let id = "20260101-120000-abcd";
    let mut expected = write_sample_run(&mut store, id, 1);

    // The first model is written again later: it changes, but stays first.
    let mut a = expected.models[0].clone();
    a.status = ModelStatus::Interrupted;
    a.load_ms = None;
    a.error = Some("stopped".into());
    a.tags = vec![];
    store.upsert_model(id, &a).unwrap();
    expected.models[0] = a;

    let mut c1 = expected.levels[0].clone();
    c1.samples = level("smollm2", LoadShape::Concurrency { concurrency: 1 }, 7).samples;
    c1.client_bottleneck = false;
    c1.server_metrics = None;
    c1.energy_j = None;
    store.upsert_level(id, &c1).unwrap();
    expected.levels[0] = c1;

    // A third model, measured after the first two.
    let c = model("gemma", ModelStatus::Ok, None);
    store.upsert_model(id, &c).unwrap();
    expected.models.push(c);
    let lc = level("gemma", LoadShape::Concurrency { concurrency: 4 }, 1);
    store.upsert_level(id, &lc).unwrap();
    expected.levels.push(lc);
    store
        .insert_requests(id, &[request("gemma", "c=4", 1, 0)])
        .unwrap();
    expected.requests.push(request("gemma", "c=4", 1, 0));

    assert_eq!(store.load_run(id).unwrap(), expected);
}

fn list_and_resolve(db: Backend) {
    let mut store = db.open();
    assert!(store.list_runs().unwrap().is_empty());
    assert!(matches!(
        store.resolve("latest"),
        Err(StoreError::RunNotFound(_))
    ));

    // Written out of time order on purpose.
    write_sample_run(&mut store, "20260102-000000-aaab", 2_000);
    store
        .insert_run(&run("20260101-000000-aaaa", 1_000))
        .unwrap();
    store
        .insert_run(&run("20260103-000000-bbbb", 3_000))
        .unwrap();

    let list = store.list_runs().unwrap();
    let ids: Vec<&str> = list.iter().map(|l| l.run.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "20260103-000000-bbbb",
            "20260102-000000-aaab",
            "20260101-000000-aaaa"
        ]
    );
    assert_eq!(list[1].models, ["smollm2", "qwen"]);
    // Warm-up (round 0) requests are not counted; two timed ones failed.
    assert_eq!((list[1].requests, list[1].failed_requests), (4, 1));
    assert!(list[0].models.is_empty());
    assert_eq!((list[0].requests, list[0].failed_requests), (0, 0));
    assert_eq!(list[2].run, run("20260101-000000-aaaa", 1_000));

    let resolve = |store: &mut Store, s: &str| store.resolve(s);
    assert_eq!(
        resolve(&mut store, "20260102-000000-aaab").unwrap(),
        "20260102-000000-aaab"
    );
    assert_eq!(
        resolve(&mut store, "20260103").unwrap(),
        "20260103-000000-bbbb"
    );
    assert_eq!(
        resolve(&mut store, "latest").unwrap(),
        "20260103-000000-bbbb"
    );
    assert_eq!(
        resolve(&mut store, "latest~1").unwrap(),
        "20260102-000000-aaab"
    );
    assert_eq!(
        resolve(&mut store, "latest~2").unwrap(),
        "20260101-000000-aaaa"
    );
    match resolve(&mut store, "latest~3") {
        Err(e @ StoreError::RunNotFound(_)) => assert!(e.to_string().contains("latest~3")),
        other => panic!("latest~3 resolved to {other:?}"),
    }
    match resolve(&mut store, "2027") {
        Err(e @ StoreError::RunNotFound(_)) => {
            assert!(e.to_string().contains("no run `2027`"), "{e}")
        }
        other => panic!("unknown id resolved to {other:?}"),
    }
    assert!(matches!(
        resolve(&mut store, ""),
        Err(StoreError::RunNotFound(_))
    ));
    match resolve(&mut store, "2026010") {
        Err(e @ StoreError::AmbiguousRun { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("matches several runs"), "{msg}");
            assert!(msg.contains("20260101-000000-aaaa") && msg.contains("20260103-000000-bbbb"));
        }
        other => panic!("ambiguous prefix resolved to {other:?}"),
    }
    // A prefix is matched as text: SQL wildcards mean nothing.
    assert!(matches!(
        resolve(&mut store, "2026010_"),
        Err(StoreError::RunNotFound(_))
    ));
    assert!(matches!(
        resolve(&mut store, "%"),
        Err(StoreError::RunNotFound(_))
    ));
}

fn migrations_apply_once(db: Backend) {
    let mut store = db.open();
    store.insert_run(&run("r1", 1)).unwrap();
    drop(store);
    let first = db.migrations();
    assert_eq!(first.len() as i64, SCHEMA_VERSION);
    assert_eq!(first.last().unwrap().0, SCHEMA_VERSION);

    // A sentinel in place of the times the migrations were applied: reapplying one would
    // fail, add a row or write the current time over it (no clock has to move to see that).
    const SENTINEL: i64 = 4242;
    db.raw(&format!(
        "UPDATE schema_migrations SET applied_unix_ms = {SENTINEL}"
    ));
    let marked: Vec<(i64, i64)> = first.iter().map(|&(v, _)| (v, SENTINEL)).collect();
    assert_eq!(db.migrations(), marked);
    let mut store = db.open();
    let again = db.open();
    drop(again);
    assert_eq!(db.migrations(), marked, "a migration was applied twice");
    assert_eq!(store.resolve("latest").unwrap(), "r1");
}

fn future_schema_is_refused(db: Backend) {
    drop(db.open());
    let future = SCHEMA_VERSION + 1;
    db.raw(&format!(
        "INSERT INTO schema_migrations (version, applied_unix_ms) VALUES ({future}, 0)"
    ));
    match Store::open(&db.url()) {
        Err(e @ StoreError::SchemaTooNew { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("newer hearth"), "{msg}");
            assert!(msg.contains(&format!("schema version {future}")), "{msg}");
            assert!(!msg.contains(":hearth@"), "password leaked: {msg}");
        }
        Err(e) => panic!("wrong error for a future schema: {e}"),
        Ok(_) => panic!("a database from a newer hearth was opened"),
    }
}

fn crash_keeps_finished_requests(db: Backend) {
    let mut store = db.open();
    let id = "20260101-000000-dead";
    store.insert_run(&run(id, 5)).unwrap();
    store
        .upsert_model(id, &model("smollm2", ModelStatus::Running, None))
        .unwrap();
    let reqs = vec![
        request("smollm2", "c=1", 0, 0),
        request("smollm2", "c=1", 1, 1),
    ];
    store.insert_requests(id, &reqs).unwrap();
    // The process dies here: no level, no update_run.
    drop(store);

    let mut store = db.open();
    let data = store.load_run(id).unwrap();
    assert_eq!(data.run.status, RunStatus::Running);
    assert_eq!(data.run.finished_unix_ms, None);
    assert_eq!(data.models[0].status, ModelStatus::Running);
    assert!(data.levels.is_empty());
    assert_eq!(data.requests, reqs);
    let listing = &store.list_runs().unwrap()[0];
    assert_eq!(
        (listing.run.status, listing.requests),
        (RunStatus::Running, 1)
    );
}

fn request_batches_are_all_or_nothing(db: Backend) {
    let mut store = db.open();
    let id = "r";
    store.insert_run(&run(id, 1)).unwrap();
    store
        .insert_requests(id, &[request("m", "c=1", 1, 0)])
        .unwrap();
    // The second request duplicates the stored one: the whole batch is refused.
    let batch = [request("m", "c=1", 1, 1), request("m", "c=1", 1, 0)];
    assert!(store.insert_requests(id, &batch).is_err());
    assert_eq!(
        store.load_run(id).unwrap().requests,
        [request("m", "c=1", 1, 0)]
    );
    // And the connection is still usable afterwards.
    store
        .insert_requests(id, &[request("m", "c=1", 1, 1)])
        .unwrap();
    assert_eq!(store.load_run(id).unwrap().requests.len(), 2);
    // Requests of an unknown run are refused (foreign key).
    assert!(store
        .insert_requests("no-such-run", &[request("m", "c=1", 1, 0)])
        .is_err());
}

fn unstorable_values_are_refused(db: Backend) {
    let mut store = db.open();
    store.insert_run(&run("r", 1)).unwrap();
    let mut m = model("m", ModelStatus::Ok, None);
    m.disk_bytes = Some(u64::MAX);
    match store.upsert_model("r", &m) {
        Err(e @ StoreError::Unstorable { .. }) => assert!(e.to_string().contains("disk_bytes")),
        other => panic!("u64::MAX stored: {other:?}"),
    }
    assert!(
        store.insert_run(&run("r", 2)).is_err(),
        "duplicate run id accepted"
    );
}

#[test]
fn sqlite_urls_and_locations() {
    let dir = tempfile::tempdir().unwrap();
    for (i, prefix) in ["sqlite://", "sqlite:", ""].iter().enumerate() {
        let path = dir.path().join(format!("deep/er/{i}/history.db"));
        let mut store = Store::open(&format!("{prefix}{}", path.display())).unwrap();
        assert_eq!(store.kind(), "sqlite");
        assert_eq!(store.location(), path.display().to_string());
        store.insert_run(&run("x", 1)).unwrap();
        assert!(path.exists());
    }
    for bad in ["", "mysql://u:p@h/db", "sqlite://"] {
        match Store::open(bad) {
            Err(e @ StoreError::BadUrl(_)) => assert!(!e.to_string().contains(":p@"), "{e}"),
            Err(e) => panic!("{bad:?}: wrong error {e}"),
            Ok(_) => panic!("{bad:?} opened"),
        }
    }
}

#[test]
fn sqlite_reader_sees_a_run_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut writer = Store::open_sqlite(&path).unwrap();
    writer.insert_run(&run("live", 1)).unwrap();
    writer
        .insert_requests("live", &[request("m", "c=1", 1, 0)])
        .unwrap();
    let mut reader = Store::open_sqlite(&path).unwrap();
    assert_eq!(reader.list_runs().unwrap()[0].requests, 1);
    writer
        .insert_requests("live", &[request("m", "c=1", 1, 1)])
        .unwrap();
    assert_eq!(reader.load_run("live").unwrap().requests.len(), 2);
}

#[test]
fn postgres_location_hides_the_password() {
    let db = Backend::postgres("location");
    let store = db.open();
    assert_eq!(store.kind(), "postgres");
    let location = store.location();
    assert!(location.starts_with("postgres"), "{location}");
    if let Backend::Postgres { base_url, .. } = &db {
        if let Some(password) = base_url
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .map(|(_, p)| p)
        {
            assert!(!location.contains(&format!(":{password}@")), "{location}");
            assert!(location.contains(":***@"), "{location}");
        }
    }
}

#[test]
fn postgres_unreachable_is_a_clear_error() {
    // Port 1 on localhost: nothing listens there.
    match Store::open("postgres://hearth:secret@127.0.0.1:1/hearth_test") {
        Err(e @ StoreError::Open { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("could not open the run history"), "{msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a database on port 1"),
    }
}

/// Judge and human scores of stored answers: exact round trip in (model, level, round, seq,
/// source) order, the same source replaces its earlier score, and a batch naming an answer the
/// run does not have is refused whole.
fn scores_round_trip_replace_and_refuse_strays(db: Backend) {
    let mut store = db.open();
    let id = "20260101-130000-beef";
    write_sample_run(&mut store, id, 1_767_272_400_000);
    let score = |seq: u32, source: ScoreSource, score: Option<u8>| ScoreRecord {
        model: "smollm2".into(),
        level: "c=1".into(),
        round: 1,
        seq,
        source,
        scorer: "judge-model @ http://127.0.0.1:1/v1".into(),
        rubric_version: Some("hearth-judge/1".into()),
        score,
        reason: Some("covers \"both\" points; ünïcode".into()),
        raw: Some(r#"["{\"score\": 4}"]"#.into()),
        scored_unix_ms: 1_767_272_500_000,
    };
    let first = vec![
        score(2, ScoreSource::Human, Some(5)),
        score(1, ScoreSource::Judge, None),
        score(1, ScoreSource::Human, Some(3)),
    ];
    store.upsert_scores(id, &first).unwrap();
    let loaded = store.load_run(id).unwrap().scores;
    assert_eq!(
        loaded,
        vec![first[2].clone(), first[1].clone(), first[0].clone()],
        "ordered by answer, then source by name (human, judge)"
    );
    // The judge scores seq 1 again: replaced, not added.
    store
        .upsert_scores(id, &[score(1, ScoreSource::Judge, Some(4))])
        .unwrap();
    let loaded = store.load_run(id).unwrap().scores;
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded[1].score, Some(4));
    // One stray in a batch: nothing of the batch lands.
    let err = store
        .upsert_scores(
            id,
            &[
                score(1, ScoreSource::Judge, Some(1)),
                score(77, ScoreSource::Judge, Some(1)),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::AnswerNotFound { .. }), "{err}");
    assert_eq!(store.load_run(id).unwrap().scores, loaded);
}

/// Several processes opening one new SQLite file at the same moment (two `hearth` commands
/// started together on a fresh home) all get the history: none is told the file is locked.
/// Threads stand in for the processes; each opens its own connection, as a process would.
#[test]
fn sqlite_a_new_file_opened_by_many_at_once_opens_for_all() {
    const OPENERS: usize = 6;
    for round in 0..40 {
        let db = Backend::sqlite();
        let url = db.url();
        let start = std::sync::Barrier::new(OPENERS);
        std::thread::scope(|scope| {
            let openers: Vec<_> = (0..OPENERS)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        Store::open(&url).map(|_| ())
                    })
                })
                .collect();
            for opener in openers {
                if let Err(e) = opener.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        });
        assert_eq!(
            db.migrations().len() as i64,
            SCHEMA_VERSION,
            "round {round}"
        );
    }
}

fn tunes_round_trip_list_newest_first_and_resolve(db: Backend) {
    let tune = |id: &str, at: i64| TuneRecord {
        id: id.into(),
        started_unix_ms: at,
        finished_unix_ms: at + 60_000,
        status: "finished".into(),
        summary: format!("default kept ({id})"),
        document: json!({"winner": {"serve_command": "hearth serve"}, "search": {"entries": [], "trace": ["stage 1: …"]}}),
    };
    let mut store = db.open();
    assert!(store.list_tunes().unwrap().is_empty());
    let (a, b) = (
        tune("tune-20261205-100000", 1),
        tune("tune-20261205-110000", 2),
    );
    store.insert_tune(&a).unwrap();
    store.insert_tune(&b).unwrap();
    drop(store);
    let mut store = db.open();
    assert_eq!(store.list_tunes().unwrap(), vec![b.clone(), a.clone()]);
    assert_eq!(store.load_tune("latest").unwrap(), b);
    assert_eq!(store.load_tune("latest~1").unwrap(), a);
    assert_eq!(store.load_tune("tune-20261205-10").unwrap(), a);
    assert!(matches!(
        store.load_tune("tune-2026"),
        Err(StoreError::AmbiguousRun { .. })
    ));
    assert!(matches!(
        store.load_tune("tune-1999"),
        Err(StoreError::TuneNotFound(_))
    ));
    // The same id twice is refused, never a silent overwrite.
    assert!(store.insert_tune(&a).is_err());
    // Tunes are not runs.
    assert!(store.list_runs().unwrap().is_empty());
}
