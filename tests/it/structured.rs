//! Answers programs can use: JSON-schema structured output, tool calls, and a 413 that every
//! client can read, over real HTTP on 127.0.0.1 with the real default model.

use crate::common;

use common::openapi::assert_matches;
use common::server::{Setup, TestServer, MODEL};
use serde_json::{json, Value};

/// The server these tests use: longer contexts, a deeper queue, `body_limit`, and the model
/// loaded on first use.
async fn start(body_limit: usize) -> TestServer {
    Setup {
        ctx: 2048,
        queue: 64,
        body_limit,
        preload: false,
        ..Setup::default()
    }
    .start()
    .await
}

impl TestServer {
    /// A streamed chat: every chunk, parsed (the `[DONE]` marker checked and dropped).
    async fn stream(&self, body: &Value) -> Vec<Value> {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let text = self
            .send_json("/v1/chat/completions", &body)
            .await
            .text()
            .await
            .unwrap();
        let frames: Vec<&str> = text
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| f.strip_prefix("data: ").expect("SSE data frame"))
            .collect();
        assert_eq!(frames.last(), Some(&"[DONE]"), "{text}");
        frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect()
    }
}

fn schema_format(name: &str, schema: &Value) -> Value {
    json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": true}})
}

/// Schemas of the shapes programs ask for, each with a prompt that invites it.
fn cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "person",
            json!({"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 40},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "email": {"type": "string", "maxLength": 60}},
              "required": ["name", "age"], "additionalProperties": false}),
            "Give me a JSON record for a person named Ana who is 31.",
        ),
        (
            "shopping",
            json!({"type": "array", "minItems": 1, "maxItems": 4,
                   "items": {"type": "object", "properties": {
                       "item": {"type": "string", "maxLength": 30},
                       "quantity": {"type": "integer", "minimum": 1, "maximum": 20}},
                     "required": ["item", "quantity"]}}),
            "List three things to buy for a picnic as JSON, with quantities.",
        ),
        (
            "sentiment",
            json!({"type": "object", "properties": {
                "sentiment": {"enum": ["positive", "negative", "neutral"]},
                "confidence": {"type": "number"}},
              "required": ["sentiment", "confidence"]}),
            "What is the sentiment of: 'I loved this film'? Answer in JSON.",
        ),
        (
            "meeting",
            json!({"type": "object", "properties": {
                "title": {"type": "string", "maxLength": 50},
                "attendees": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
                "when": {"type": "object", "properties": {
                    "day": {"type": "string", "enum": ["mon", "tue", "wed", "thu", "fri"]},
                    "hour": {"type": "integer", "minimum": 0, "maximum": 23}},
                  "required": ["day", "hour"]},
                "online": {"type": "boolean"}},
              "required": ["title", "attendees", "when", "online"]}),
            "Summarise as JSON: Team sync on Tuesday at 10 with Bo and Cy, on video.",
        ),
        (
            "answer",
            json!({"anyOf": [
                {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 60}}, "required": ["answer"]},
                {"type": "object", "properties": {"error": {"type": "string", "maxLength": 60}}, "required": ["error"]}]}),
            "What is the capital of France? Reply in JSON.",
        ),
    ]
}

fn chat(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

/// `Ok` when `text` is JSON valid against `schema`, formats checked too (`email`…), else why
/// not.
fn validate(schema: &Value, text: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{errors:?}: {text}"))
    }
}

/// The text inside a Markdown code fence, if the answer has one.
fn unfence(text: &str) -> &str {
    let text = text.trim();
    match text.find("```") {
        Some(start) => {
            let body = &text[start + 3..];
            let body = body.strip_prefix("json").unwrap_or(body);
            body.find("```").map_or(body, |end| &body[..end]).trim()
        }
        None => text,
    }
}

fn streamed_content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_constrained_answers_parse_and_validate_streamed_and_not() {
    let s = start(1024 * 1024).await;
    let (mut not_json, mut invalid) = (0, 0);
    let cases = cases();
    for (name, schema, prompt) in &cases {
        let mut body = chat(prompt, 300);
        let free = s.post("/v1/chat/completions", &body).await;
        body["response_format"] = schema_format(name, schema);
        let (status, full) = s.post("/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{full}");
        assert_matches("CreateChatCompletionResponse", &full);
        let text = full["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(
            full["choices"][0]["finish_reason"], "stop",
            "{name}: {text}"
        );
        validate(schema, text).unwrap_or_else(|e| panic!("{name}: {e}"));

        let chunks = s.stream(&body).await;
        for chunk in &chunks {
            assert_matches("CreateChatCompletionStreamResponse", chunk);
        }
        // Greedy decoding: the streamed answer is the same answer.
        assert_eq!(streamed_content(&chunks), text, "{name}");

        // Judged generously: a Markdown code fence around the JSON is forgiven.
        let (_, free) = free;
        let free_text = free["choices"][0]["message"]["content"].as_str().unwrap();
        match validate(schema, unfence(free_text)) {
            Ok(()) => {}
            Err(e) if e.starts_with("not JSON") => not_json += 1,
            Err(_) => invalid += 1,
        }
    }
    eprintln!(
        "structured output, default model: without response_format {} of {n} answers fail their \
         schema ({not_json} not JSON, {invalid} JSON that does not validate); with it 0 of {n}, \
         streamed and not",
        not_json + invalid,
        n = cases.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_mode_completions_endpoint_and_truncation() {
    let s = start(1024 * 1024).await;
    let mut body = chat("Describe a cat.", 200);
    body["response_format"] = json!({"type": "json_object"});
    let (status, full) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{full}");
    let text = full["choices"][0]["message"]["content"].as_str().unwrap();
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(value.is_object(), "{text}");

    // `text` is the ordinary free-form answer.
    let mut plain = chat("Describe a cat.", 16);
    let (_, free) = s.post("/v1/chat/completions", &plain).await;
    plain["response_format"] = json!({"type": "text"});
    let (status, text_mode) = s.post("/v1/chat/completions", &plain).await;
    assert_eq!(status, 200);
    assert_eq!(
        text_mode["choices"][0]["message"],
        free["choices"][0]["message"]
    );

    // The legacy completions endpoint honours it too.
    let schema = json!({"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"]});
    let (status, done) = s
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": "The sky's colour as JSON:", "max_tokens": 40,
                    "temperature": 0, "response_format": schema_format("c", &schema)}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    validate(&schema, done["choices"][0]["text"].as_str().unwrap()).unwrap();

    // max_tokens still rules: a JSON cut short is finish_reason "length".
    let mut short = chat("Describe a cat.", 3);
    let long = json!({"type": "object", "properties": {"description": {"type": "string", "minLength": 30}},
                      "required": ["description"]});
    short["response_format"] = schema_format("long", &long);
    let (status, cut) = s.post("/v1/chat/completions", &short).await;
    assert_eq!(status, 200);
    assert_eq!(cut["choices"][0]["finish_reason"], "length", "{cut}");
    assert_eq!(cut["usage"]["completion_tokens"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_that_max_tokens_would_cut_is_closed_and_still_validates() {
    let s = start(1024 * 1024).await;
    let tags = json!({"type": "object", "properties": {
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue", "yellow"]}}},
        "required": ["tags"]});
    let story = json!({"type": "object", "properties": {
        "title": {"type": "string"},
        "story": {"type": "string"},
        "chapters": {"type": "array", "items": {"type": "object",
            "properties": {"name": {"type": "string"}, "pages": {"type": "integer", "minimum": 1}},
            "required": ["name", "pages"]}},
        "words": {"type": "integer"}},
        "required": ["title", "story", "chapters", "words"]});
    let cases = [
        (
            schema_format("tags", &tags),
            tags,
            "List colours as JSON tags, as many as you can, repeating them.",
        ),
        (
            schema_format("story", &story),
            story,
            "Write a long story about a dragon as JSON.",
        ),
        (
            json!({"type": "json_object"}),
            json!({"type": "object"}),
            "Describe a cat in great detail as JSON.",
        ),
    ];
    let mut closed = 0;
    for (format, schema, prompt) in &cases {
        // A warm-up, so that the streamed and the whole answers compared below both reuse the
        // prompt from the prompt cache (a cold prefill is another batch shape, whose greedy
        // text may differ).
        let mut warm = chat(prompt, 1);
        warm["response_format"] = format.clone();
        assert_eq!(s.post("/v1/chat/completions", &warm).await.0, 200);
        // The story's smallest instance takes ~20 tokens: every budget here can close it.
        for max_tokens in [25, 40, 60] {
            for temperature in [0.0, 1.0] {
                let mut body = chat(prompt, max_tokens);
                body["response_format"] = format.clone();
                body["temperature"] = json!(temperature);
                body["seed"] = json!(7);
                let (status, full) = s.post("/v1/chat/completions", &body).await;
                assert_eq!(status, 200, "{full}");
                let text = full["choices"][0]["message"]["content"].as_str().unwrap();
                let label = format!("{prompt} max_tokens {max_tokens} t {temperature}");
                validate(schema, text).unwrap_or_else(|e| panic!("{label}: {e}"));
                let used = full["usage"]["completion_tokens"].as_u64().unwrap();
                assert!(used <= u64::from(max_tokens), "{label}: {used} tokens");
                if full["choices"][0]["finish_reason"] == "length" {
                    closed += 1;
                }
                // Streamed, the same answer arrives in pieces and parses whole.
                let chunks = s.stream(&body).await;
                let streamed = streamed_content(&chunks);
                validate(schema, &streamed).unwrap_or_else(|e| panic!("{label}, streamed: {e}"));
                if temperature == 0.0 {
                    assert_eq!(streamed, text, "{label}");
                }
            }
        }
    }
    // Most of these budgets are too small for the whole answer: the budget closed them.
    assert!(
        closed >= 8,
        "only {closed} answers were closed by the budget"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_the_grammar_path_refused_are_now_enforced() {
    let s = start(1024 * 1024).await;
    // Each refused by name before llguidance (llama.cpp's converter would have dropped it).
    let cases = [
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5, "minimum": 7, "maximum": 1000}}, "required": ["n"]}),
            "Pick a number as JSON.",
        ),
        (
            json!({"type": "object", "properties": {"contact": {"type": "string", "format": "email", "maxLength": 40}}, "required": ["contact"]}),
            "Give Ana's contact as JSON.",
        ),
        (
            json!({"type": "object", "properties": {"x": {"type": "number", "minimum": 0.25, "maximum": 1.5}}, "required": ["x"]}),
            "A ratio as JSON.",
        ),
        (
            json!({"type": "object", "properties": {"code": {"type": "string", "pattern": "[A-Z]{3}-[0-9]{2}", "maxLength": 12}}, "required": ["code"]}),
            "A ticket code as JSON.",
        ),
        (
            json!({"type": "object", "patternProperties": {"^k[0-9]$": {"type": "boolean"}}, "additionalProperties": false, "minProperties": 1, "maxProperties": 2}),
            "Flags as JSON.",
        ),
    ];
    for (schema, prompt) in cases {
        let mut body = chat(prompt, 96);
        body["response_format"] = schema_format("s", &schema);
        let (status, answer) = s.post("/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{schema}: {answer}");
        assert_matches("CreateChatCompletionResponse", &answer);
        let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
        validate(&schema, text).unwrap_or_else(|e| panic!("{schema}: {e}"));
        let streamed = streamed_content(&s.stream(&body).await);
        validate(&schema, &streamed).unwrap_or_else(|e| panic!("{schema}, streamed: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn regex_grammar_and_vllm_structured_outputs_shape_the_answer() {
    let s = start(1024 * 1024).await;
    let date = regex::Regex::new(r"^20[0-9]{2}-(0[1-9]|1[0-2])-[0-3][0-9]$").unwrap();
    let answer_of = |v: &Value| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // hearth's response_format extensions.
    let mut body = chat("When did you last go to the sea?", 32);
    body["response_format"] =
        json!({"type": "regex", "regex": r"20[0-9]{2}-(0[1-9]|1[0-2])-[0-3][0-9]"});
    let (status, answer) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(date.is_match(&answer_of(&answer)), "{answer}");
    let mut body = chat("Is Paris in France?", 32);
    body["response_format"] = json!({"type": "grammar", "grammar": "start: answer \".\"\nanswer: \"yes\" | \"no\" | \"maybe\""});
    let (status, answer) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        ["yes.", "no.", "maybe."].contains(&answer_of(&answer).as_str()),
        "{answer}"
    );
    // vLLM's spellings, as scripts written for vLLM send them.
    let choices = ["positive", "negative", "neutral (mixed)"];
    for (field, value) in [
        ("guided_choice", json!(choices)),
        ("structured_outputs", json!({"choice": choices})),
    ] {
        let mut body = chat("Sentiment of 'I loved this film'?", 16);
        body[field] = value;
        let (status, answer) = s.post("/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{field}: {answer}");
        assert!(
            choices.contains(&answer_of(&answer).as_str()),
            "{field}: {answer}"
        );
    }
    let mut body = chat("When did you last go to the sea?", 32);
    body["guided_regex"] = json!(r"20[0-9]{2}-(0[1-9]|1[0-2])-[0-3][0-9]");
    let (status, answer) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(date.is_match(&answer_of(&answer)), "{answer}");
    let schema = json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]});
    let mut body = chat("Capital of France, as JSON.", 48);
    body["structured_outputs"] = json!({"json": schema});
    let (status, answer) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    validate(&schema, &answer_of(&answer)).unwrap();
    // Two constraints at once are one too many.
    body["response_format"] = json!({"type": "json_object"});
    let (status, err) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not both"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_schemas_are_a_400_that_names_them() {
    let s = start(1024 * 1024).await;
    let cases = [
        (
            json!({"type": "array", "items": {"type": "integer"}, "uniqueItems": true}),
            "uniqueItems",
        ),
        (
            json!({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}),
            "not",
        ),
        (
            json!({"type": "string", "pattern": "^(a$"}),
            "regex parse error",
        ),
        (
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}),
            "missing",
        ),
    ];
    for (schema, needle) in cases {
        let mut body = chat("hi", 8);
        body["response_format"] = schema_format("bad", &schema);
        for stream in [false, true] {
            body["stream"] = json!(stream);
            let (status, err) = s.post("/v1/chat/completions", &body).await;
            assert_eq!(status, 400, "{schema}: {err}");
            assert_matches("ErrorResponse", &err);
            assert_eq!(err["error"]["type"], "invalid_request_error");
            assert_eq!(err["error"]["param"], "response_format");
            assert!(err["error"]["code"].is_null(), "{err}");
            let message = err["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{needle} not in {message}");
        }
    }
    for format in [
        json!({"type": "xml"}),
        json!({"type": "regex", "regex": "(unclosed"}),
        json!({"type": "grammar", "grammar": "start: undefined_rule"}),
    ] {
        let mut body = chat("hi", 8);
        body["response_format"] = format.clone();
        let (status, err) = s.post("/v1/chat/completions", &body).await;
        assert_eq!(status, 400, "{format}: {err}");
        assert_eq!(err["error"]["param"], "response_format", "{format}: {err}");
    }
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"enum": ["celsius", "fahrenheit"]}},
          "required": ["city", "unit"]}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_required_tool_call_has_openai_shape_streamed_and_not() {
    let s = start(1024 * 1024).await;
    let mut body = chat("What is the weather in Paris?", 120);
    body["tools"] = json!([weather_tool()]);
    body["tool_choice"] = json!("required");
    let params = &weather_tool()["function"]["parameters"];
    // Parallel calls (OpenAI's default): one or more, each valid.
    let (status, full) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{full}");
    let calls = full["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert!(!calls.is_empty());
    for call in calls {
        validate(params, call["function"]["arguments"].as_str().unwrap()).unwrap();
    }
    body["parallel_tool_calls"] = json!(false);
    let (status, full) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{full}");
    assert_matches("CreateChatCompletionResponse", &full);
    let choice = &full["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{full}");
    assert!(choice["message"]["content"].is_null(), "{full}");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "parallel_tool_calls is off: {full}");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    validate(params, calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();

    let chunks = s.stream(&body).await;
    let mut name = String::new();
    let mut arguments = String::new();
    for chunk in &chunks {
        assert_matches("CreateChatCompletionStreamResponse", chunk);
        for call in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(call["index"], 0);
            name.push_str(call["function"]["name"].as_str().unwrap_or_default());
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    assert_eq!(name, "get_weather");
    assert_eq!(
        arguments,
        calls[0]["function"]["arguments"].as_str().unwrap()
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(streamed_content(&chunks), "");

    // A named function is forced the same way; `none` answers in text.
    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    let (_, named) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(
        named["choices"][0]["finish_reason"], "tool_calls",
        "{named}"
    );
    body["tool_choice"] = json!("none");
    let (_, none) = s.post("/v1/chat/completions", &body).await;
    assert!(
        none["choices"][0]["message"]["tool_calls"].is_null(),
        "{none}"
    );
    assert!(none["choices"][0]["message"]["content"].is_string());

    body["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
    let (status, err) = s.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "tool_choice");
}

/// The official `openai` package: a forced call, then the tool's result sent back.
#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_through_the_official_openai_python_client() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        common::skip("the `openai` Python package is not installed (pip install openai)");
        return;
    }
    let s = start(1024 * 1024).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_tools.py");
    python_passes(&[script, &format!("{}/v1", s.base), MODEL]).await;
}

/// Runs `python3 ARGS` and fails the test, with its output, unless it exits 0.
async fn python_passes(args: &[&str]) {
    let out = tokio::process::Command::new("python3")
        .args(args)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Python's `http.client` writes the whole body before reading: it must read the 413, not a
/// broken pipe (regression: the connection used to close mid-upload).
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_sent_whole_by_python_reads_back_a_413() {
    let s = start(64 * 1024).await;
    let script = r#"
import http.client, json, sys
host, port = sys.argv[1], int(sys.argv[2])
for chunked in (False, True):
    body = b'{"model": "m", "prompt": "' + b"x" * (40 * 1000 * 1000) + b'"}'
    conn = http.client.HTTPConnection(host, port, timeout=60)
    if chunked:
        pieces = (body[i:i + (1 << 20)] for i in range(0, len(body), 1 << 20))
        conn.request("POST", "/v1/chat/completions", body=pieces,
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
    else:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read())
    assert r.status == 413, (r.status, data)
    err = data["error"]
    assert err["type"] == "invalid_request_error" and "limit" in err["message"], data
    print("413 read back", "chunked" if chunked else "content-length", err["message"])
"#;
    let addr = s.base.strip_prefix("http://").unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    python_passes(&["-c", script, host, port]).await;
    // The server keeps serving.
    let (status, _) = s.post("/v1/chat/completions", &chat("Hi", 4)).await;
    assert_eq!(status, 200);
}
