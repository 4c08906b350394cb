//! Tests of the automatic checks on hand-made and realistic small-model answers.

use super::*;
use serde_json::json;

const RAG: &str = "Retrieval-augmented generation (RAG) combines a retriever that finds relevant documents with a generator that writes the answer. It grounds the output in retrieved text, which reduces hallucination.";
const PRIVACY_LIST: &str =
    "1. Data stays on the device.\n2. No third party sees it.\n3. Easier compliance with GDPR.";

fn strings(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

fn check(c: Check, answer: &str) -> CheckOutcome {
    run_check(&c, &[], answer)
}

#[test]
fn words_are_tokens_with_a_letter_or_digit() {
    assert_eq!(word_count("Hello, world — 42 !"), 3);
    assert_eq!(word_count(""), 0);
    assert_eq!(word_count("  - \n * "), 0);
    assert_eq!(word_count(RAG), 27);
}

#[test]
fn sentences_in_prose_lists_abbreviations_and_decimals() {
    assert_eq!(sentence_count(RAG), 2);
    assert_eq!(sentence_count(PRIVACY_LIST), 3);
    assert_eq!(sentence_count("Here are three:\n- one\n- two\n- three"), 4);
    assert_eq!(
        sentence_count("* a. b. c.\n* d"),
        2,
        "an item is one, however punctuated"
    );
    assert_eq!(
        sentence_count("Pi is 3.14, e.g. in circles. Dr. Who agrees!"),
        2
    );
    assert_eq!(
        sentence_count("Use tools, i.e. search, vs. memory, etc. and more."),
        1
    );
    assert_eq!(sentence_count("Apples, pears, etc. Then we eat."), 2);
    assert_eq!(
        sentence_count("It ships in the U.S. and Mr. Smith runs it at 9 a.m. daily."),
        1
    );
    assert_eq!(sentence_count("Wait... really?! Yes"), 3);
    assert_eq!(sentence_count("It is \"done.\" (Mostly.) **Really.**"), 3);
    assert_eq!(
        sentence_count("## Summary\n\nRAG retrieves. It then generates."),
        2
    );
    assert_eq!(sentence_count("#1 priority is privacy."), 1);
    assert_eq!(sentence_count("In 2024. Then more."), 2);
    assert_eq!(sentence_count("Version 2.0 was released in 2023."), 1);
    assert_eq!(sentence_count(""), 0);
    assert_eq!(sentence_count("... ?!"), 0);
    assert_eq!(sentence_count("No punctuation at all"), 1);
}

#[test]
fn word_and_sentence_bounds_pass_and_fail_with_reasons() {
    let two = check(Check::MaxSentences { n: 2 }, RAG);
    assert!(two.passed, "{two:?}");
    assert_eq!(two.check, "max 2 sentences");
    assert_eq!(two.reason, "2 sentences, at most 2 allowed");
    let one = check(Check::MaxSentences { n: 1 }, RAG);
    assert!(!one.passed);
    assert_eq!(one.reason, "2 sentences, at most 1 allowed");
    assert!(check(Check::MinSentences { n: 3 }, PRIVACY_LIST).passed);
    let few = check(Check::MinSentences { n: 3 }, "Just one.");
    assert!(!few.passed);
    assert_eq!(few.reason, "1 sentence, at least 3 required");
    assert!(check(Check::MinWords { n: 10 }, RAG).passed);
    assert_eq!(
        check(Check::MinWords { n: 10 }, "Too short.").reason,
        "2 words, at least 10 required"
    );
    assert!(check(Check::MaxWords { n: 30 }, RAG).passed);
    let long = check(Check::MaxWords { n: 10 }, RAG);
    assert!(!long.passed);
    assert_eq!(long.reason, "27 words, at most 10 allowed");
}

#[test]
fn contains_and_not_contains_ignore_case_and_show_where() {
    let found = check(Check::Contains { text: "rag".into() }, RAG);
    assert!(found.passed);
    assert_eq!(found.check, "contains \"rag\"");
    assert!(found.reason.contains("[RAG]"), "{}", found.reason);
    let missing = check(
        Check::Contains {
            text: "vector".into(),
        },
        RAG,
    );
    assert!(!missing.passed);
    assert_eq!(missing.reason, "\"vector\" not found");
    assert!(
        check(
            Check::NotContains {
                text: "I cannot".into()
            },
            RAG
        )
        .passed
    );
    let refusal = check(
        Check::NotContains {
            text: "as an ai".into(),
        },
        "As an AI language model, I cannot browse.",
    );
    assert!(!refusal.passed);
    assert!(
        refusal.reason.starts_with("found: [As an AI]"),
        "{}",
        refusal.reason
    );
    // Offsets stay right when lowercasing changes byte lengths.
    assert!(
        check(
            Check::Contains {
                text: "straße".into()
            },
            "İİ STRASSE Straße"
        )
        .passed
    );
}

#[test]
fn regex_matches_somewhere() {
    let ok = check(
        Check::Regex {
            pattern: r"(?i)hallucinat\w+".into(),
        },
        RAG,
    );
    assert!(ok.passed);
    assert_eq!(ok.reason, "matched \"hallucination\"");
    let no = check(
        Check::Regex {
            pattern: r"^\d+$".into(),
        },
        RAG,
    );
    assert!(!no.passed);
    assert_eq!(no.reason, "no match");
    assert!(
        !check(
            Check::Regex {
                pattern: "RAG is".into()
            },
            RAG
        )
        .passed
    );
    let bad = check(
        Check::Regex {
            pattern: "(".into(),
        },
        RAG,
    );
    assert!(
        !bad.passed && bad.reason.starts_with("invalid pattern"),
        "{bad:?}"
    );
}

#[test]
fn facets_by_word_stems() {
    let f = strings(&[
        "retrieval of documents",
        "generation conditioned on retrieved text",
    ]);
    let (mentioned, missing) = facet_coverage(&f, RAG);
    assert_eq!((mentioned, missing), (f.clone(), vec![]));
    let all = run_check(&Check::Facets { min_share: 1.0 }, &f, RAG);
    assert!(all.passed);
    assert_eq!(all.reason, "mentions 2 of 2 facets");
    assert_eq!(all.check, "mentions every facet");

    let f2 = strings(&[
        "data stays on the device",
        "no third-party access",
        "compliance",
    ]);
    assert_eq!(facet_coverage(&f2, PRIVACY_LIST).0.len(), 3);
    let answer = "1. Your data stays on your devices.\n2. Nobody else sees it.";
    let (mentioned, missing) = facet_coverage(&f2, answer);
    assert_eq!(mentioned, strings(&["data stays on the device"]));
    assert_eq!(missing, strings(&["no third-party access", "compliance"]));
    let outcome = run_check(&Check::Facets { min_share: 1.0 }, &f2, answer);
    assert!(!outcome.passed);
    assert_eq!(
        outcome.reason,
        "mentions 1 of 3 facets; missing: no third-party access, compliance"
    );
    let third = run_check(&Check::Facets { min_share: 0.33 }, &f2, answer);
    assert!(third.passed);
    assert_eq!(third.check, "mentions 33% of facets");
    assert!(!run_check(&Check::Facets { min_share: 0.67 }, &f2, answer).passed);
    assert!(run_check(&Check::Facets { min_share: 1.0 }, &[], answer).passed);
}

#[test]
fn facet_matching_rules() {
    // Half of the content words, rounded up: 2 of 3 here ("latency" alone is not enough).
    let f = strings(&["lower latency for users"]);
    assert!(facet_coverage(&f, "Latency drops.").0.is_empty());
    assert_eq!(facet_coverage(&f, "Latency is lower.").0, f);
    // Short facet words need their whole length; answer words must be that long.
    assert!(facet_coverage(&strings(&["GPU"]), "It uses the gpus.")
        .1
        .is_empty());
    assert_eq!(facet_coverage(&strings(&["GPU"]), "GP only.").1.len(), 1);
    // No content words: the whole text must appear.
    assert_eq!(
        facet_coverage(&strings(&["on it"]), "Get on it now")
            .0
            .len(),
        1
    );
    assert_eq!(facet_coverage(&strings(&["on it"]), "It is on").1.len(), 1);
}

#[test]
fn json_whole_fenced_or_embedded() {
    let any = || Check::Json { schema: None };
    assert!(check(any(), "[1, 2]").passed);
    assert!(check(any(), "  {\"a\": 1}\n").passed);
    let fenced = check(
        any(),
        "Sure! Here it is:\n```json\n{\"name\": \"Ada\"}\n```\nDone.",
    );
    assert!(
        fenced.passed && fenced.reason == "parses as JSON",
        "{fenced:?}"
    );
    assert!(check(any(), "```\n[true]\n```").passed);
    assert!(check(any(), "Here: {\"a\": \"}\"} ok").passed);
    assert!(check(any(), "Use {x} like this: {\"a\": [1, {\"b\": 2}]}").passed);
    let prose = check(any(), "I am not JSON");
    assert!(!prose.passed);
    assert!(prose.reason.contains("line 1 column 1"), "{}", prose.reason);
    let broken = check(any(), "```json\n{\"a\": 1,}\n```");
    assert!(!broken.passed);
    assert!(
        broken.reason.starts_with("the fenced block is not JSON")
            && broken.reason.contains("line 1"),
        "{}",
        broken.reason
    );
    assert_eq!(check(any(), "  ").reason, "empty answer, no JSON");
}

#[test]
fn json_against_a_schema_names_the_violations() {
    let schema = json!({"type": "object", "required": ["name", "age"],
        "properties": {"age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}});
    let c = Check::Json {
        schema: Some(schema),
    };
    assert!(c.validate().is_ok());
    let ok = run_check(&c, &[], "```json\n{\"name\": \"Ada\", \"age\": 36}\n```");
    assert!(ok.passed, "{ok:?}");
    assert_eq!(ok.check, "JSON matching the schema");
    let missing = run_check(&c, &[], "{\"name\": \"Ada\"}");
    assert!(!missing.passed);
    assert_eq!(
        missing.reason,
        "1 schema violation: at (root): \"age\" is a required property"
    );
    let wrong = run_check(
        &c,
        &[],
        "{\"name\": \"Ada\", \"age\": \"old\", \"tags\": [1]}",
    );
    assert!(!wrong.passed);
    assert!(
        wrong.reason.starts_with("2 schema violations"),
        "{}",
        wrong.reason
    );
    assert!(
        wrong.reason.contains("at /age") && wrong.reason.contains("at /tags/0"),
        "{}",
        wrong.reason
    );
}

#[test]
fn bad_checks_are_refused_by_validate() {
    let regex = Check::Regex {
        pattern: "(".into(),
    }
    .validate()
    .unwrap_err();
    assert!(matches!(regex, CheckError::Regex { .. }));
    assert!(
        regex.to_string().contains("invalid pattern \"(\""),
        "{regex}"
    );
    let schema = Check::Json {
        schema: Some(json!({"type": 7})),
    }
    .validate()
    .unwrap_err();
    assert!(matches!(schema, CheckError::Schema(_)), "{schema}");
    assert!(Check::Json { schema: None }.validate().is_ok());
    assert!(Check::Facets { min_share: 1.5 }.validate().is_err());
    assert!(Check::Facets {
        min_share: f64::NAN
    }
    .validate()
    .is_err());
    assert!(Check::Facets { min_share: 0.0 }.validate().is_ok());
    assert!(Check::MaxSentences { n: 0 }.validate().is_err());
    assert!(Check::MinWords { n: 0 }.validate().is_err());
    assert!(Check::MaxSentences { n: 2 }.validate().is_ok());
    let empty = Check::NotContains {
        text: String::new(),
    }
    .validate()
    .unwrap_err();
    assert_eq!(empty.to_string(), "check not_contains: the text is empty");
    assert!(Check::Regex {
        pattern: "(?i)rag".into()
    }
    .validate()
    .is_ok());
}

#[test]
fn checks_round_trip_as_written_in_prompts_json() {
    let text = r#"[{"type":"contains","text":"RAG"},{"type":"max_sentences","n":2},{"type":"facets"},{"type":"json","schema":{"type":"object","required":["a"]}}]"#;
    let checks: Vec<Check> = serde_json::from_str(text).unwrap();
    assert_eq!(
        checks,
        vec![
            Check::Contains { text: "RAG".into() },
            Check::MaxSentences { n: 2 },
            Check::Facets { min_share: 1.0 },
            Check::Json {
                schema: Some(json!({"type": "object", "required": ["a"]}))
            },
        ]
    );
    assert!(checks.iter().all(|c| c.validate().is_ok()));
    let back: Vec<Check> = serde_json::from_str(&serde_json::to_string(&checks).unwrap()).unwrap();
    assert_eq!(back, checks);
    let plain: Check = serde_json::from_str(r#"{"type":"json"}"#).unwrap();
    assert_eq!(serde_json::to_string(&plain).unwrap(), r#"{"type":"json"}"#);
    assert!(serde_json::from_str::<Check>(r#"{"type":"bogus"}"#).is_err());

    let outcomes = run_checks(&checks, &strings(&["retrieval of documents"]), RAG);
    let verdicts: Vec<bool> = outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(verdicts, [true, true, true, false]);
    let round: Vec<CheckOutcome> =
        serde_json::from_value(serde_json::to_value(&outcomes).unwrap()).unwrap();
    assert_eq!(round, outcomes);
}
