use super::quality::pass_rate_row;
use super::*;
use crate::store::testdata::{self, run_with_e2e, sample_run};

/// 60 E2E values around 1000 ms with ±15% deterministic spread (three rounds).
fn base() -> Vec<f64> {
    (0..60)
        .map(|i| 1000.0 * (1.0 + 0.15 * ((i * 37 % 60) as f64 / 30.0 - 1.0)))
        .collect()
}

fn verdict(c: &Comparison, metric: &str) -> Verdict {
    find(c, metric).verdict
}

fn find<'a>(c: &'a Comparison, metric: &str) -> &'a CompareRow {
    c.rows
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("{metric}\n{}", c.table()))
}

/// One run measuring each `(model, factor)` in every round: round r's requests take
/// `1000 ms × drift[r] × factor`, with a little per-request spread. `interleaved` says the
/// models ran in alternating rounds of one session.
fn session(id: &str, models: &[(&str, f64)], drift: &[f64], interleaved: bool) -> RunData {
    let mut data = run_with_e2e(id, models[0].0, &[]);
    data.models.clear();
    data.levels.clear();
    data.run.options.interleaved = interleaved;
    let (mut seq, mut clock) = (0, 0.0);
    for (round, d) in drift.iter().enumerate() {
        for (model, factor) in models {
            for _ in 0..6 {
                let e2e = 1000.0 * d * factor * (1.0 + 0.02 * ((seq * 7 % 11) as f64 / 5.0 - 1.0));
                let ttft = e2e / 5.0;
                data.requests.push(testdata::request(
                    model,
                    "c=1",
                    round as u32 + 1,
                    seq,
                    clock,
                    ttft,
                    (e2e - ttft) / 9.0,
                    10,
                ));
                // One at a time: the next request starts when this one ends.
                clock += e2e;
                seq += 1;
            }
        }
    }
    for (model, _) in models {
        data.models.push(testdata::model(model));
        data.levels.push(testdata::level(model, 1));
    }
    data
}

/// The machine drifting ±15% from round to round.
const DRIFTING: [f64; 6] = [1.0, 1.15, 0.88, 1.1, 0.85, 1.05];
const STEADY: [f64; 6] = [1.0, 1.01, 0.99, 1.0, 1.005, 0.995];

/// The scored run with every counted answer scored `score(i)` by the judge.
fn scored(mut data: RunData, score: impl Fn(usize) -> u8) -> RunData {
    use crate::store::record::{ScoreRecord, ScoreSource};
    data.scores = data
        .requests
        .iter()
        .filter(|r| r.round > 0)
        .enumerate()
        .map(|(i, r)| ScoreRecord {
            model: r.model.clone(),
            level: r.level.clone(),
            round: r.round,
            seq: r.seq,
            source: ScoreSource::Judge,
            scorer: "j".into(),
            rubric_version: Some("hearth-judge/1".into()),
            score: Some(score(i)),
            reason: None,
            raw: None,
            scored_unix_ms: 0,
        })
        .collect();
    data
}

#[test]
fn a_quality_drop_is_a_regression_and_a_tiny_one_is_not() {
    let a = scored(run_with_e2e("a", "m", &base()), |i| 4 + (i % 2) as u8);
    let worse = scored(run_with_e2e("b", "m", &base()), |i| 2 + (i % 2) as u8);
    let c = compare(&a, &worse, &CompareOptions::default());
    assert_eq!(verdict(&c, "score"), Verdict::Regression, "{}", c.table());
    assert!(c.has_regression());
    // One answer in sixty a point lower: under a quarter point, unchanged.
    let same = scored(run_with_e2e("b", "m", &base()), |i| {
        4 + (i % 2) as u8 - u8::from(i == 1)
    });
    let c = compare(&a, &same, &CompareOptions::default());
    assert_eq!(verdict(&c, "score"), Verdict::Unchanged, "{}", c.table());
    assert!(!c.has_regression(), "{}", c.table());
    // A whole point lower on four prompts: too few to tell.
    let few_a = scored(run_with_e2e("a", "m", &base()[..4]), |_| 4);
    let few_b = scored(run_with_e2e("b", "m", &base()[..4]), |i| {
        3 + u8::from(i == 0)
    });
    let c = compare(&few_a, &few_b, &CompareOptions::default());
    let score = find(&c, "score");
    assert_eq!(score.verdict, Verdict::Noise, "{}", c.table());
    assert!(score.note.as_deref().unwrap().contains("too few prompts"));
}

#[test]
fn the_check_pass_rate_needs_enough_answers() {
    let o = CompareOptions::default();
    // The A/A pair of the issue: 36 % against 18 % of eleven prompts each.
    let r = pass_rate_row("m", (0.36, 11), (0.18, 11), &o);
    assert_eq!(r.verdict, Verdict::Noise, "{r:?}");
    assert!(r.note.as_deref().unwrap().contains("too few prompts"));
    assert!(r.detectable.unwrap() > 18.0, "{r:?}");
    // The same drop over 300 prompts each is real.
    let r = pass_rate_row("m", (0.36, 300), (0.18, 300), &o);
    assert_eq!(r.verdict, Verdict::Regression, "{r:?}");
    assert!(r.detectable.unwrap() < 18.0, "{r:?}");
    // And a rise is an improvement, a small move unchanged.
    assert_eq!(
        pass_rate_row("m", (0.18, 300), (0.36, 300), &o).verdict,
        Verdict::Improvement
    );
    assert_eq!(
        pass_rate_row("m", (0.50, 300), (0.48, 300), &o).verdict,
        Verdict::Unchanged
    );
}

#[test]
fn identical_runs_have_no_regression() {
    let a = run_with_e2e("a", "m", &base());
    let c = compare(&a, &a, &CompareOptions::default());
    assert!(!c.has_regression(), "{}", c.table());
    assert!(
        c.rows.iter().all(|r| r.verdict == Verdict::Unchanged),
        "{}",
        c.table()
    );
    let s = sample_run();
    assert!(!compare(&s, &s, &CompareOptions::default()).has_regression());
}

#[test]
fn half_again_slower_is_a_regression_even_between_runs() {
    let a = run_with_e2e("a", "m", &base());
    let b = run_with_e2e(
        "b",
        "m",
        &base().iter().map(|v| v * 1.5).collect::<Vec<_>>(),
    );
    let c = compare(&a, &b, &CompareOptions::default());
    assert!(c.has_regression());
    for m in [
        "e2el_ms",
        "ttft_ms",
        "tpot_ms",
        "itl_ms",
        "output_tok_s_per_request",
    ] {
        assert_eq!(verdict(&c, m), Verdict::Regression, "{m}\n{}", c.table());
    }
    let e2e = find(&c, "e2el_ms");
    assert!(
        (e2e.change_pct.unwrap() - 50.0).abs() < 2.0,
        "{}",
        c.table()
    );
    assert!(e2e.ci_low.unwrap() > 0.0 && e2e.p_value.unwrap() < 0.05);
    assert_eq!(e2e.replicates, Some([3, 3]));
    assert_eq!(c.pairing, Pairing::SeparateRuns);
    assert!(
        c.warnings[0].contains("run-to-run drift"),
        "{:?}",
        c.warnings
    );
    // And the other way round it is an improvement.
    let back = compare(&b, &a, &CompareOptions::default());
    assert_eq!(verdict(&back, "e2el_ms"), Verdict::Improvement);
    assert!(!back.has_regression(), "{}", back.table());
}

#[test]
fn an_aa_pair_of_drifting_runs_is_not_a_regression() {
    // Run B caught the machine 12 % slower in every round: within one run that is a
    // consistent shift (every request pooled would call it p ≈ 0), yet it is drift.
    let a = session("a", &[("m", 1.0)], &STEADY, false);
    let b = session("b", &[("m", 1.12)], &STEADY, false);
    let c = compare(&a, &b, &CompareOptions::default());
    assert!(!c.has_regression(), "{}", c.table());
    assert_eq!(verdict(&c, "e2el_ms"), Verdict::Noise, "{}", c.table());
    // What could it have detected? Beyond the drift allowance, and said so.
    let d = find(&c, "e2el_ms").detectable.unwrap();
    assert!(d > 10.0, "{d}");
    assert!(
        c.warnings.iter().any(|w| w.contains("could pass unseen")),
        "{:?}",
        c.warnings
    );
    // A machine known to be steadier (a calibrated drift of 1 %) does call it.
    let steady = CompareOptions {
        run_drift_pct: 1.0,
        ..CompareOptions::default()
    };
    assert_eq!(
        verdict(&compare(&a, &b, &steady), "e2el_ms"),
        Verdict::Regression
    );
}

#[test]
fn an_interleaved_session_finds_ten_percent_through_drift() {
    let opts = CompareOptions::default();
    // Identical configurations: quiet, whatever the machine does between rounds.
    let same = session("s", &[("m", 1.0), ("m~b", 1.0)], &DRIFTING, true);
    let c = compare_within(&same, &opts).unwrap();
    assert_eq!(c.pairing, Pairing::Interleaved);
    assert!(!c.has_regression(), "{}", c.table());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // B 10 % slower in every round, on a machine drifting ±15 %: found, to within a point.
    let slower = session("s", &[("m", 1.0), ("m~b", 1.1)], &DRIFTING, true);
    let c = compare_within(&slower, &opts).unwrap();
    assert_eq!(c.baseline_model.as_deref(), Some("m"));
    let e2e = find(&c, "e2el_ms");
    assert_eq!(e2e.model, "m~b");
    assert_eq!(e2e.verdict, Verdict::Regression, "{}", c.table());
    assert!(
        (e2e.change_pct.unwrap() - 10.0).abs() < 1.5,
        "{}",
        c.table()
    );
    assert!(e2e.detectable.unwrap() < 5.0, "{}", c.table());
    assert_eq!(
        verdict(&c, "output_throughput"),
        Verdict::Regression,
        "{}",
        c.table()
    );
    // The same rounds measured one after another (not interleaved) cannot tell.
    let mut sequential = slower.clone();
    sequential.run.options.interleaved = false;
    let c = compare_within(&sequential, &opts).unwrap();
    assert_eq!(c.pairing, Pairing::OneAfterAnother);
    assert_ne!(verdict(&c, "e2el_ms"), Verdict::Regression, "{}", c.table());
    // And one configuration has nothing to compare within.
    let one = session("o", &[("m", 1.0)], &STEADY, true);
    assert!(matches!(
        compare_within(&one, &opts),
        Err(CompareError::OneConfiguration(_))
    ));
}

#[test]
fn tiny_noise_is_unchanged() {
    let noisy: Vec<f64> = base()
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + 0.01 * (i as f64).sin()))
        .collect();
    let c = compare(
        &run_with_e2e("a", "m", &base()),
        &run_with_e2e("b", "m", &noisy),
        &CompareOptions::default(),
    );
    assert!(!c.has_regression(), "{}", c.table());
    assert_eq!(verdict(&c, "e2el_ms"), Verdict::Unchanged);
}

#[test]
fn a_big_change_on_three_noisy_rounds_is_noise() {
    let a = run_with_e2e("a", "m", &[100.0, 130.0, 90.0]);
    let b = run_with_e2e("b", "m", &[125.0, 150.0, 112.0]);
    let c = compare(&a, &b, &CompareOptions::default());
    let e2e = find(&c, "e2el_ms");
    assert!(e2e.change_pct.unwrap() > 15.0, "{}", c.table());
    assert_eq!(e2e.verdict, Verdict::Noise, "{}", c.table());
    assert!(!c.has_regression(), "{}", c.table());
}

#[test]
fn one_round_a_side_is_never_a_verdict() {
    let a = run_with_e2e("a", "m", &[100.0]);
    let b = run_with_e2e("b", "m", &[300.0]);
    let c = compare(&a, &b, &CompareOptions::default());
    let e2e = find(&c, "e2el_ms");
    assert_eq!(e2e.verdict, Verdict::Noise, "{}", c.table());
    assert_eq!(e2e.replicates, Some([1, 1]));
    assert!(c.warnings.iter().any(|w| w.contains("single round")));
}

#[test]
fn a_model_failing_in_b_is_a_regression_and_missing_models_are_listed() {
    let a = run_with_e2e("a", "m", &base());
    let mut b = a.clone();
    b.models[0].status = ModelStatus::Failed;
    b.models[0].error = Some("out of memory".into());
    b.requests.clear();
    b.levels.clear();
    let c = compare(&a, &b, &CompareOptions::default());
    assert!(c.has_regression());
    assert!(c.rows[0].note.as_deref().unwrap().contains("out of memory"));

    let mut stopped = a.clone();
    stopped.models[0].status = ModelStatus::Interrupted;
    let c = compare(&a, &stopped, &CompareOptions::default());
    assert!(!c.has_regression(), "{}", c.table());
    assert_eq!(c.rows[0].verdict, Verdict::Missing);
    assert!(c.rows.len() > 1, "levels are still compared");

    let other = run_with_e2e("b", "other", &base());
    let c = compare(&a, &other, &CompareOptions::default());
    assert!(!c.has_regression());
    assert_eq!(
        c.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Missing)
            .count(),
        2
    );
    assert!(c.table().contains("only in run B"));
}

#[test]
fn comparison_is_reproducible_and_serializes() {
    let a = run_with_e2e("a", "m", &base());
    let b = run_with_e2e(
        "b",
        "m",
        &base().iter().map(|v| v * 1.1).collect::<Vec<_>>(),
    );
    let o = CompareOptions::default();
    let (c1, c2) = (compare(&a, &b, &o), compare(&a, &b, &o));
    assert_eq!(c1, c2);
    let back: Comparison = serde_json::from_str(&serde_json::to_string(&c1).unwrap()).unwrap();
    assert_eq!(back, c1);
}
