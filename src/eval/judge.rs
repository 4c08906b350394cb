//! A judge model scores answers 1–5 against the prompt's facets and reference answer, through
//! any OpenAI-compatible chat endpoint (hearth's own server for a local judge).
//!
//! What makes its scores usable as data: one fixed rubric prompt with a version
//! ([`RUBRIC_VERSION`]) stored beside every score, temperature 0 and a fixed seed, a strict
//! reader of the judge's JSON that never guesses a score from prose, one retry that tells the
//! judge what was wrong, and the raw output of every attempt kept. Judging happens after the
//! timed part of a run, so it never disturbs a latency figure. Identical answers to the same
//! prompt are judged once.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use super::rubric::{Rubric, RubricPrompt};
use crate::openai::{self, ErrorBody, RequestMessage};
use crate::store::record::{RequestRecord, RequestStatus, RunData, ScoreRecord, ScoreSource};

/// The rubric prompt's version. Change it whenever [`SYSTEM_PROMPT`] or the user message
/// changes, so scores from different prompts are never averaged together unknowingly.
pub const RUBRIC_VERSION: &str = "hearth-judge/1";

/// The rubric the judge scores against.
const SYSTEM_PROMPT: &str = "You are a strict grader of answers written by an AI assistant. \
Score the answer to the task from 1 to 5:\n\
5 = correct and complete: covers every key point, follows every instruction (format, length), \
invents nothing.\n\
4 = correct with a minor omission or a small slip in format or length.\n\
3 = partly useful: misses several key points or bends an instruction.\n\
2 = mostly unhelpful: misses most key points, repeats itself, or invents facts.\n\
1 = wrong, empty, off-topic or unreadable.\n\
Reply with only a JSON object and nothing else: {\"score\": <integer 1 to 5>, \"reason\": \
\"<one short sentence>\"}";

/// What the judge is told after an answer it could not be read from.
const RETRY_PROMPT: &str = "That reply was not a JSON object with an integer \"score\" from 1 \
to 5. Reply again with only the JSON object, for example {\"score\": 3, \"reason\": \"misses \
two key points\"}.";

/// Tokens the judge may use for its verdict.
const VERDICT_MAX_TOKENS: u32 = 200;

/// Judge requests in flight at once (a local judge batches them).
const JUDGE_CONCURRENCY: usize = 4;

/// Where the judge runs and how to ask it.
#[derive(Clone, Debug)]
pub struct JudgeEndpoint {
    /// Base URL ending in `/v1`.
    pub base_url: String,
    /// Model name sent in each request.
    pub model: String,
    /// Bearer key, when the server wants one.
    pub api_key: Option<String>,
    /// Ask the server to constrain the verdict to the verdict's JSON schema
    /// (`response_format`). Only for servers known to support it, since others may refuse
    /// the request.
    pub constrain: bool,
    /// Give up on one judge request after this long.
    pub timeout: Duration,
}

impl JudgeEndpoint {
    /// `model @ base_url`: who scored, as stored with every score.
    pub fn scorer(&self) -> String {
        format!("{} @ {}", self.model, self.base_url)
    }
}

/// The judge's verdict on one answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// 1–5, or `None` when no attempt gave a readable score.
    pub score: Option<u8>,
    /// The judge's reason, or why there is no score.
    pub reason: Option<String>,
    /// Every attempt's raw output (or transport error), in order.
    pub raw: Vec<String>,
}

/// The chat messages that ask the judge to score `answer` to `prompt`.
pub fn messages(prompt: &RubricPrompt, answer: &str) -> Vec<RequestMessage> {
    let mut user = format!(
        "The task given to the assistant:\n<task>\n{}\n</task>\n",
        prompt.prompt
    );
    if !prompt.facets.is_empty() {
        user.push_str("\nKey points a good answer covers:\n");
        for facet in &prompt.facets {
            user.push_str(&format!("- {facet}\n"));
        }
    }
    if let Some(reference) = prompt.reference.as_deref().filter(|r| !r.trim().is_empty()) {
        user.push_str(&format!(
            "\nAn example of a good answer:\n<reference>\n{reference}\n</reference>\n"
        ));
    }
    user.push_str(&format!(
        "\nThe answer to grade:\n<answer>\n{answer}\n</answer>\n\nGrade the answer. Reply with \
         the JSON object only."
    ));
    vec![
        RequestMessage::new("system", SYSTEM_PROMPT),
        RequestMessage::new("user", user),
    ]
}

/// The JSON schema of a verdict, for servers that constrain output to a schema.
pub fn verdict_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
            // Bounded, so a looping judge cannot run past its token budget mid-string.
            "reason": {"type": "string", "maxLength": 120}
        },
        "required": ["score", "reason"],
        "additionalProperties": false
    })
}

/// Reads a verdict from the judge's reply: the first JSON object in it that has a `score`.
/// The score must be a whole number from 1 to 5 (a number, or a string holding one); anything
/// else is an error that says what was found, and no score is guessed from prose.
pub fn parse_verdict(text: &str) -> Result<(u8, Option<String>), String> {
    let mut found_object = false;
    for (i, _) in text.match_indices('{') {
        let mut objects = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        let Some(Ok(Value::Object(object))) = objects.next() else {
            continue;
        };
        found_object = true;
        let Some(score) = object.get("score") else {
            continue;
        };
        let number = match score {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        let score = match number {
            Some(n) if n.fract() == 0.0 && (1.0..=5.0).contains(&n) => n as u8,
            _ => return Err(format!("score {score} is not a whole number from 1 to 5")),
        };
        let reason = object
            .get("reason")
            .and_then(Value::as_str)
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        return Ok((score, reason));
    }
    Err(if found_object {
        "no \"score\" in the judge's JSON".into()
    } else {
        "the judge's reply holds no JSON object".into()
    })
}

/// Asks the judge about one answer: one attempt, and one retry (told what was wrong) when the
/// reply cannot be read. Never fails: what went wrong is in the verdict.
pub async fn judge_answer(
    http: &reqwest::Client,
    judge: &JudgeEndpoint,
    prompt: &RubricPrompt,
    answer: &str,
) -> Verdict {
    let mut messages = messages(prompt, answer);
    let mut raw = Vec::new();
    let mut last_problem = String::new();
    for attempt in 0..2 {
        if attempt == 1 {
            messages.push(RequestMessage::new("user", RETRY_PROMPT));
        }
        match ask(http, judge, &messages).await {
            Ok(content) => {
                raw.push(content.clone());
                match parse_verdict(&content) {
                    Ok((score, reason)) => {
                        return Verdict {
                            score: Some(score),
                            reason,
                            raw,
                        }
                    }
                    Err(problem) => {
                        last_problem = problem;
                        messages.push(RequestMessage::new("assistant", content));
                    }
                }
            }
            Err(error) => {
                raw.push(format!("error: {error}"));
                last_problem = error;
            }
        }
    }
    Verdict {
        score: None,
        reason: Some(format!("unscored: {last_problem}")),
        raw,
    }
}

/// One chat completion; the reply's text, or why there is none.
async fn ask(
    http: &reqwest::Client,
    judge: &JudgeEndpoint,
    messages: &[RequestMessage],
) -> Result<String, String> {
    let body = openai::ChatCompletionRequest {
        model: judge.model.clone(),
        messages: messages.to_vec(),
        params: openai::RequestParams {
            temperature: Some(0.0),
            seed: Some(0),
            max_tokens: Some(VERDICT_MAX_TOKENS.into()),
            stream: false,
            response_format: judge.constrain.then(|| {
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": "verdict", "schema": verdict_schema(), "strict": true},
                })
            }),
            ..openai::RequestParams::default()
        },
    };
    let mut request = http
        .post(format!("{}/chat/completions", judge.base_url))
        .timeout(judge.timeout)
        .json(&body);
    if let Some(key) = &judge.api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let message = ErrorBody::read(&text)
            .and_then(|e| e.message().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(300).collect());
        return Err(format!("HTTP {}: {message}", status.as_u16()));
    }
    let reply: openai::ChatCompletion =
        openai::read(&text).map_err(|e| format!("the judge's response is not JSON: {e}"))?;
    reply
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .ok_or_else(|| "the judge's response has no message content".into())
}

/// The answers of a run that get scores: counted (not warm-up), successful, and from a model
/// with real weights (a shape model's answers are noise: never checked or judged).
pub fn scorable(data: &RunData) -> Vec<&RequestRecord> {
    data.requests
        .iter()
        .filter(|r| r.round > 0 && r.status == RequestStatus::Ok)
        .filter(|r| !crate::catalog::is_shape_alias(&r.model))
        .collect()
}

/// Judges every scorable answer of a run whose prompt is in its rubric, each distinct
/// (prompt, answer) once, and returns one score per answer. `progress(done, total)` is called
/// as distinct answers are judged.
pub async fn judge_run(
    data: &RunData,
    judge: &JudgeEndpoint,
    progress: impl Fn(usize, usize),
) -> Vec<ScoreRecord> {
    let rubric = Rubric::of(data);
    let answers: Vec<&RequestRecord> = scorable(data)
        .into_iter()
        .filter(|r| rubric.prompt(&r.prompt_id).is_some())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<(&str, &str)> = answers
        .iter()
        .map(|r| (r.prompt_id.as_str(), r.output.as_str()))
        .filter(|key| seen.insert(*key))
        .collect();
    let total = distinct.len();
    progress(0, total);
    let http = reqwest::Client::new();
    let mut verdicts: HashMap<(&str, &str), Verdict> = HashMap::new();
    let mut pending = futures::stream::iter(distinct.iter().map(|&(prompt_id, output)| {
        let http = &http;
        let prompt = rubric.prompt(prompt_id).expect("filtered above");
        async move {
            let verdict = judge_answer(http, judge, prompt, output).await;
            ((prompt_id, output), verdict)
        }
    }))
    .buffer_unordered(JUDGE_CONCURRENCY);
    while let Some((key, verdict)) = pending.next().await {
        verdicts.insert(key, verdict);
        progress(verdicts.len(), total);
    }
    let scorer = judge.scorer();
    let now = crate::store::unix_ms();
    answers
        .iter()
        .map(|r| {
            let verdict = &verdicts[&(r.prompt_id.as_str(), r.output.as_str())];
            ScoreRecord {
                model: r.model.clone(),
                level: r.level.clone(),
                round: r.round,
                seq: r.seq,
                source: ScoreSource::Judge,
                scorer: scorer.clone(),
                rubric_version: Some(RUBRIC_VERSION.to_string()),
                score: verdict.score,
                reason: verdict.reason.clone(),
                raw: Some(serde_json::to_string(&verdict.raw).unwrap_or_default()),
                scored_unix_ms: now,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_strictly() {
        assert_eq!(
            parse_verdict(r#"{"score": 4, "reason": "misses one point"}"#),
            Ok((4, Some("misses one point".into())))
        );
        // Prose around the object, a fenced block, a score as "5" or 3.0.
        assert_eq!(
            parse_verdict("Sure!\n```json\n{\"score\": \"5\", \"reason\": \"ok\"}\n```")
                .map(|v| v.0),
            Ok(5)
        );
        assert_eq!(parse_verdict(r#"{"score": 3.0}"#), Ok((3, None)));
        // An object without a score before the verdict is skipped.
        assert_eq!(
            parse_verdict(r#"{"note": 1} then {"score": 2, "reason": "thin"}"#).map(|v| v.0),
            Ok(2)
        );
        // Never guessed.
        assert!(parse_verdict("I would give it a 4.").is_err());
        assert!(parse_verdict(r#"{"score": 4.5}"#).is_err());
        assert!(parse_verdict(r#"{"score": 0}"#).is_err());
        assert!(parse_verdict(r#"{"score": 6, "reason": "great"}"#).is_err());
        assert!(parse_verdict(r#"{"score": "four"}"#).is_err());
        assert!(parse_verdict(r#"{"reason": "no score"}"#)
            .unwrap_err()
            .contains("no \"score\""));
        assert!(parse_verdict(r#"{"score": 4"#).is_err());
    }

    #[test]
    fn the_judge_sees_task_facets_reference_and_answer() {
        let prompt = RubricPrompt {
            id: "p".into(),
            prompt: "Summarize the notes.".into(),
            facets: vec!["budget approved".into()],
            reference: Some("The budget was approved.".into()),
            ..Default::default()
        };
        let m = messages(&prompt, "Budget ok.");
        assert_eq!(m.len(), 2);
        let user = &m[1].content;
        for part in [
            "Summarize the notes.",
            "- budget approved",
            "The budget was approved.",
            "<answer>\nBudget ok.\n</answer>",
        ] {
            assert!(user.contains(part), "{part} missing from {user}");
        }
        assert!(m[0].content.contains("\"score\""));
    }
}
