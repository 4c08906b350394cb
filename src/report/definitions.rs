//! What every metric means, printed in each report: benchmark tools disagree on names (vLLM's
//! ITL is AIPerf's inter-chunk latency, AIPerf's ITL is vLLM's TPOT, llmperf's ITL includes
//! TTFT), so a number without its definition is a trap. docs/report.md says the same at length.

/// `(key, definition)` pairs, in the order reports print them. Keys are the JSON field stems.
pub const DEFINITIONS: &[(&str, &str)] = &[
    ("counted requests", "Only timed rounds count (round ≥ 1; round 0 is the warm-up). Latency statistics use successful requests; failures (errors and timeouts) are counted per level. All instants are milliseconds on one monotonic clock per level."),
    ("ttft", "Time to first token = first_token_ms − scheduled_ms: from when the load shape meant the request to start to the first chunk that carried generated content (a role-only first chunk does not count)."),
    ("ttfb", "Time to first byte = first_byte_ms − scheduled_ms (response headers)."),
    ("e2el", "End-to-end latency = end_ms − scheduled_ms (last byte of the response)."),
    ("wait", "Client wait = sent_ms − scheduled_ms: time a request waited for a free client slot, or the client's own lag. Latencies are measured from the schedule so this time is never hidden; it is also shown on its own."),
    ("itl", "Inter-token (inter-chunk) latency = every gap between consecutive content chunks, pooled over all requests (vLLM's ITL; AIPerf calls it ICL). Chunks may hold several tokens."),
    ("tpot", "Time per output token = (E2E − TTFT) / (completion_tokens − 1), for requests with at least 2 completion tokens (AIPerf calls this ITL)."),
    ("per_request_output_throughput", "Per-request output tokens/s = completion_tokens / (E2E in seconds)."),
    ("per_request_decode_throughput", "Per-request decode tokens/s = (completion_tokens − 1) / ((end_ms − first_token_ms) in seconds)."),
    ("drafts accepted", "Speculative decoding: drafted tokens the model accepted, as a share of all drafted tokens (the server's timings.draft_n_accepted / timings.draft_n, summed over counted successful requests); — when the server reports no drafts."),
    ("duration", "Level duration = max(end_ms) − min(scheduled_ms) over counted requests, seconds."),
    ("output_throughput", "Aggregate output tokens/s = Σ completion_tokens of successful counted requests / duration."),
    ("total_token_throughput", "Aggregate (prompt + completion) tokens/s of successful counted requests / duration."),
    ("request_throughput", "Successful counted requests / duration."),
    ("request_goodput", "Requests/s that met every SLO given in options.slo (ttft_ms, e2e_ms, tpot_ms, itl_ms: a request meets the ITL limit when its largest chunk gap is within it). goodput_share = those requests / all counted requests. A failed request, or one with no TTFT under a TTFT limit, does not meet the SLO; an undefined TPOT or ITL (fewer than 2 tokens or chunks) does."),
    ("ttft_cold / ttft_warm", "TTFT split by prompt cache: warm when cached_tokens ≥ ¾ × prompt_tokens (a template's fixed preamble alone is cached for every request), cold when cached_tokens is known and smaller, unknown when the server does not report it."),
    ("cv", "Coefficient of variation across rounds = population std / mean of the per-round mean E2E latency, and of the per-round aggregate output throughput: the run's own noise."),
    ("statistics", "mean; median and pNN by linear interpolation between closest ranks (numpy's default, as vLLM); std is the population standard deviation (divides by n, numpy's default)."),
    ("token_counts", "Where token counts came from: usage (the server's usage object), tokenizer (hearth tokenized the text), chunks (one token per content chunk, last resort). usage_disagreements = requests whose independent count differs from usage."),
    ("resources", "peak_rss_bytes: peak resident memory of the serving process during the level; server_cpu_ms / client_cpu_ms: CPU time used; client_bottleneck: the client, not the server, limited the measurement, so the figures understate the server."),
    ("energy", "energy_j from the level record (method rapl = measured, estimate = formula). Per 1k output tokens: J = energy_j / total_output_tokens × 1000, Wh = J / 3600, cost = kWh × options.energy_price_per_kwh (default 0.30 per kWh). Approximate."),
    ("quality", "Automatic checks of each successful counted answer against its prompt's checks in the stored prompt set (contains / not contains, regex, JSON and JSON Schema, min/max words or sentences, facet coverage): checks_passed / checks_total, pass_rate, facet_coverage = mean share of the prompt's facets an answer mentions (a facet counts when half of its content words appear, matched on their first five letters), and every failed check with the reason for its first failing answer. Words, sentences and facets are heuristics (see eval/checks.rs)."),
    ("score", "Quality score 1–5 per counted answer: a person's score (hearth annotate import) where there is one, else the judge model's (hearth bench --judge, rubric prompt version stored with each score, temperature 0, verdict read strictly as JSON {score, reason}, one retry, then unscored). score = mean over scored answers; judge_score and human_score are the means of each source alone; judge_unscored counts answers whose verdict could not be read. Identical answers to the same prompt are judged once."),
    ("recommendation", "The fastest model (lowest p95 end-to-end latency at the run's first level) whose mean score is at least min_score (default 3.5) and whose peak RSS fits the memory budget (--memory-budget, default the memory_limit_mb setting, else the machine's memory). When no answer in the run is scored the quality bar cannot apply and the pick says so. Every other model is listed with the reason it was not picked."),
    ("model", "status (failed models are listed with their error, never dropped), licence, disk size, quantisation, cold load time (load_ms: from asking for the model to its first token), backend and endpoint."),
];
