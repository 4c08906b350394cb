//! The in-process llama.cpp backend.
//!
//! One engine thread owns the llama.cpp context, batch and samplers (none of them is `Send`)
//! and is steered only by messages. Every step it builds one batch holding the next token of
//! each generating sequence plus prompt chunks of newly admitted ones (continuous batching),
//! decodes it once, and samples each sequence with its own sampler. A finished or cancelled
//! sequence leaves at once and its KV cells are freed, so no request waits for another.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use super::admission::{admit_count, plan_prefill, release_seq};
use super::speculative::{Acceptance, Drafter, History, Speculative, StepCosts};
use super::template::ChatTemplate;
use super::text::{StopMatcher, Utf8Buffer};
use super::tools::{self, ToolRequest};
use super::{
    structured, Backend, Completion, EngineError, EngineStats, Event, EventStream, FinishReason,
    GenerateRequest, ModelFacts, Prompt, SamplingParams, Timings, Usage,
};

/// How the engine is sized.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// CPU threads for decoding and prompt processing.
    pub threads: u32,
    /// Context length per sequence, in tokens.
    pub n_ctx: u32,
    /// Sequences decoded together (slots).
    pub parallel: u32,
    /// Most tokens in one decode step (bounds prefill chunks).
    pub n_batch: u32,
    /// Requests allowed to wait for a slot before new ones are refused.
    pub queue_capacity: usize,
    /// Layers offloaded to a GPU, and which one.
    pub offload: super::devices::Offload,
    /// Whether sequences draft tokens from their own n-grams.
    pub speculative: Speculative,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: num_cpus::get_physical().max(1) as u32,
            n_ctx: 4096,
            parallel: 1,
            n_batch: 512,
            queue_capacity: 64,
            offload: super::devices::Offload::default(),
            speculative: Speculative::default(),
        }
    }
}

/// llama.cpp's backend may be initialised once per process; keep it for the process lifetime.
pub(crate) fn llama_backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load(e.clone()))
}

/// Counters the engine thread publishes for `stats()`.
#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    active: AtomicUsize,
    kv_used: AtomicUsize,
    draft_tokens: AtomicU64,
    draft_accepted: AtomicU64,
}

/// A request handed to the engine thread.
struct Job {
    tokens: Vec<LlamaToken>,
    /// GBNF the answer must match (structured output, forced tool calls).
    grammar: Option<String>,
    sampling: SamplingParams,
    events: UnboundedSender<Event>,
    submitted: Instant,
}

enum Command {
    Generate(Job),
}

/// A GGUF model served by llama.cpp on its own thread.
pub struct LlamaEngine {
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    facts: ModelFacts,
    options: EngineOptions,
    commands: Option<std_mpsc::Sender<Command>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LlamaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaEngine")
            .field("facts", &self.facts)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl LlamaEngine {
    /// Loads the GGUF at `path` (memory-mapped) and starts the engine thread.
    pub fn load(path: &Path, alias: &str, options: EngineOptions) -> Result<Self, EngineError> {
        let started = Instant::now();
        let info = crate::gguf::read(path).map_err(|e| EngineError::Load(e.to_string()))?;
        let backend = llama_backend()?;
        if let Some(why) =
            super::devices::offload_problem(options.offload.gpu_layers, options.offload.device)
        {
            return Err(EngineError::Load(why));
        }
        let mut params = LlamaModelParams::default()
            .with_n_gpu_layers(options.offload.gpu_layers.n_gpu_layers());
        if let Some(device) = options.offload.device {
            params = params
                .with_devices(&[device])
                .map_err(|e| EngineError::Load(format!("device {device}: {e}")))?;
        }
        let model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| EngineError::Load(format!("{}: {e}", path.display())))?;
        let model = Arc::new(model);
        let vocab = model.vocab();
        let special = |t: LlamaToken| {
            String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
        };
        let template = ChatTemplate::new(
            info.chat_template.as_deref(),
            special(vocab.bos()),
            special(vocab.eos()),
        )?;
        let options = EngineOptions {
            parallel: options.parallel.max(1),
            n_batch: options.n_batch.max(options.parallel.max(1)),
            ..options
        };
        let shared = Arc::new(Shared::default());
        let (commands, rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let thread = {
            let model = Arc::clone(&model);
            let shared = Arc::clone(&shared);
            let options = options.clone();
            std::thread::Builder::new()
                .name(format!("engine-{alias}"))
                .spawn(move || engine_thread(&model, &options, &rx, &shared, &ready_tx))
                .map_err(|e| EngineError::Load(e.to_string()))?
        };
        ready_rx
            .recv()
            .map_err(|_| EngineError::Load("engine thread exited during start-up".into()))??;
        let facts = ModelFacts {
            alias: alias.to_string(),
            n_ctx: options.n_ctx as usize,
            load_ms: started.elapsed().as_secs_f64() * 1000.0,
            file_bytes: info.file_size,
            tool_format: template.tool_format(),
        };
        tracing::info!(alias, load_ms = facts.load_ms, "model loaded");
        Ok(Self {
            model,
            template,
            facts,
            options,
            commands: Some(commands),
            shared,
            thread: Some(thread),
        })
    }

    /// Renders a prompt into the exact tokens the model will see.
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>, EngineError> {
        self.tokens_with_tools(prompt, None)
    }

    /// Renders a prompt with the tools offered (through the model's template when it knows
    /// tools, else hearth's generic tool prompt) into tokens.
    fn tokens_with_tools(
        &self,
        prompt: &Prompt,
        tools: Option<&ToolRequest>,
    ) -> Result<Vec<LlamaToken>, EngineError> {
        let text = match prompt {
            Prompt::Chat(messages) => {
                if messages.is_empty() {
                    return Err(EngineError::InvalidRequest(
                        "messages must not be empty".into(),
                    ));
                }
                if self.template.tool_format().native() {
                    let listed = tools.filter(|t| t.active()).map(|t| {
                        serde_json::Value::Array(t.tools.iter().map(|d| d.to_openai()).collect())
                    });
                    self.template
                        .render_with_tools(messages, listed.as_ref(), true)?
                } else {
                    self.template
                        .render(&tools::generic_messages(messages, tools), true)?
                }
            }
            Prompt::Text(text) => text.clone(),
        };
        let vocab = self.model.vocab();
        let mut tokens = vocab.tokenize(text.as_bytes(), true, true);
        // A template that writes the BOS itself plus the tokenizer adding one would double it.
        if tokens.len() >= 2 && tokens[0] == vocab.bos() && tokens[1] == vocab.bos() {
            tokens.remove(0);
        }
        if tokens.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt is empty".into()));
        }
        Ok(tokens)
    }
}

impl LlamaEngine {
    /// The grammar constraining this request's answer: a forced tool call, else the
    /// `response_format`; checked here (it compiles) so that a bad one is a 400, not a failed
    /// stream.
    fn grammar(
        &self,
        tools: Option<&ToolRequest>,
        sampling: &SamplingParams,
    ) -> Result<Option<String>, EngineError> {
        let forced = match tools.filter(|t| t.active()) {
            Some(t) => tools::call_grammar(t, self.template.tool_format()).map_err(|e| {
                EngineError::InvalidParam {
                    param: "tools",
                    message: e.0,
                }
            })?,
            None => None,
        };
        let grammar = match (forced, &sampling.response_format) {
            (Some(g), _) => Some(g),
            (None, Some(format)) => structured::response_format_grammar(format).map_err(|e| {
                EngineError::InvalidParam {
                    param: "response_format",
                    message: e.0,
                }
            })?,
            (None, None) => None,
        };
        if let Some(g) = &grammar {
            LlamaSampler::grammar(&self.model, g, "root").map_err(|e| {
                EngineError::InvalidParam {
                    param: "response_format",
                    message: format!("the grammar for this request does not compile: {e}"),
                }
            })?;
        }
        Ok(grammar)
    }
}

impl Backend for LlamaEngine {
    fn facts(&self) -> &ModelFacts {
        &self.facts
    }

    fn generate(&self, request: GenerateRequest) -> Result<EventStream, EngineError> {
        let tools = match &request.prompt {
            Prompt::Chat(_) => request.tools.as_ref(),
            Prompt::Text(_) => None,
        };
        let tokens = self.tokens_with_tools(&request.prompt, tools)?;
        let grammar = self.grammar(tools, &request.sampling)?;
        let n_ctx = self.options.n_ctx as usize;
        if tokens.len() >= n_ctx {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: tokens.len(),
                n_ctx,
            });
        }
        if request.sampling.max_tokens == Some(0) {
            return Err(EngineError::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        let capacity = self.options.queue_capacity;
        if self.shared.queued.load(Ordering::SeqCst) >= capacity {
            return Err(EngineError::QueueFull(capacity));
        }
        let (events, stream) = EventStream::channel();
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            tokens,
            grammar,
            sampling: request.sampling,
            events,
            submitted: Instant::now(),
        };
        let sent = self
            .commands
            .as_ref()
            .is_some_and(|c| c.send(Command::Generate(job)).is_ok());
        if !sent {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::Shutdown);
        }
        Ok(stream)
    }

    fn tokenize(&self, text: &str) -> Result<Vec<i32>, EngineError> {
        Ok(self
            .model
            .vocab()
            .tokenize(text.as_bytes(), false, true)
            .into_iter()
            .map(|t| t.0)
            .collect())
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            active: self.shared.active.load(Ordering::SeqCst),
            queued: self.shared.queued.load(Ordering::SeqCst),
            slots: self.options.parallel as usize,
            kv_used: self.shared.kv_used.load(Ordering::SeqCst),
            kv_capacity: (self.options.n_ctx * self.options.parallel) as usize,
            draft_tokens: self.shared.draft_tokens.load(Ordering::Relaxed),
            draft_accepted: self.shared.draft_accepted.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LlamaEngine {
    fn drop(&mut self) {
        // Closing the channel tells the thread to fail what is left and exit.
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One admitted request: its sequence id, progress and sampler.
struct Slot {
    seq: i32,
    prompt: Vec<LlamaToken>,
    n_prefilled: usize,
    /// Prompt tokens whose KV was kept from the sequence's previous request.
    reused: usize,
    /// Position of the next token to decode.
    n_past: usize,
    last_token: LlamaToken,
    sampler: Samplers,
    events: UnboundedSender<Event>,
    utf8: Utf8Buffer,
    stop: StopMatcher,
    generated: usize,
    max_tokens: usize,
    ignore_eos: bool,
    submitted: Instant,
    admitted: Instant,
    first_token: Option<Instant>,
    /// Index in the current batch whose logits to sample, if any.
    batch_index: Option<i32>,
    /// Drafting state, when speculation is on.
    drafter: Option<Drafter>,
    /// Tokens drafted for this step; decoded right after `last_token`.
    draft: Vec<LlamaToken>,
    /// Tokens drafted and accepted over the request (llama-server's `draft_n`,
    /// `draft_n_accepted`).
    draft_n: usize,
    draft_n_accepted: usize,
}

/// The sequence's samplers: its grammar (structured output, forced tool calls), if any, and the
/// usual chain.
struct Samplers {
    chain: LlamaSampler,
    grammar: Option<LlamaSampler>,
}

impl Samplers {
    fn new(
        params: &SamplingParams,
        grammar: Option<&str>,
        model: &LlamaModel,
    ) -> Result<Self, EngineError> {
        let grammar = grammar
            .map(|g| {
                LlamaSampler::grammar(model, g, "root")
                    .map_err(|e| EngineError::InvalidRequest(format!("grammar: {e}")))
            })
            .transpose()?;
        Ok(Self {
            chain: sampler_for(params),
            grammar,
        })
    }

    /// Picks the next token. With a grammar, as llama-server does: sample freely, keep the token
    /// if the grammar allows it, else mask the whole vocabulary with the grammar and sample
    /// again. Masking every step costs a pass over the vocabulary per token (an order of
    /// magnitude slower on a small model); most free picks already fit.
    fn sample(&mut self, ctx: &LlamaContext<'_>, index: i32) -> LlamaToken {
        let token = self.chain.sample(ctx, index);
        let Some(grammar) = &mut self.grammar else {
            return token;
        };
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        single.apply_sampler(grammar);
        let token = if single.data[0].logit().is_finite() {
            token
        } else {
            let mut all = ctx.token_data_array_ith(index);
            all.apply_sampler(grammar);
            all.apply_sampler(&mut self.chain);
            all.selected_token().unwrap_or(token)
        };
        grammar.accept(token);
        token
    }
}

fn sampler_for(params: &SamplingParams) -> LlamaSampler {
    if params.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let mut chain = Vec::new();
    if params.top_k > 0 {
        chain.push(LlamaSampler::top_k(params.top_k));
    }
    if params.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(params.top_p, 1));
    }
    chain.push(LlamaSampler::temp(params.temperature));
    let seed = params.seed.unwrap_or_else(rand_seed);
    chain.push(LlamaSampler::dist(seed));
    LlamaSampler::chain_simple(chain)
}

/// A seed for requests that gave none (not cryptographic; only needs to differ per request).
fn rand_seed() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}

impl Slot {
    fn new(
        job: Job,
        seq: i32,
        n_ctx: usize,
        now: Instant,
        sampler: Samplers,
        speculative: bool,
    ) -> Self {
        let room = n_ctx - job.tokens.len();
        let max_tokens = job
            .sampling
            .max_tokens
            .map_or(room, |m| (m as usize).min(room));
        Self {
            seq,
            n_prefilled: 0,
            reused: 0,
            n_past: 0,
            last_token: job.tokens[job.tokens.len() - 1],
            sampler,
            stop: StopMatcher::new(&job.sampling.stop),
            utf8: Utf8Buffer::default(),
            events: job.events,
            generated: 0,
            max_tokens,
            ignore_eos: job.sampling.ignore_eos,
            submitted: job.submitted,
            admitted: now,
            first_token: None,
            batch_index: None,
            drafter: speculative
                .then(|| Drafter::new(&job.tokens.iter().map(|t| t.0).collect::<Vec<_>>())),
            draft: Vec::new(),
            draft_n: 0,
            draft_n_accepted: 0,
            prompt: job.tokens,
        }
    }

    fn is_decoding(&self) -> bool {
        self.first_token.is_some()
    }

    fn emit(&self, text: String) {
        if !text.is_empty() {
            let _ = self.events.send(Event::Token(text));
        }
    }

    /// Handles a sampled token; returns why the sequence ends, if it does.
    fn accept(
        &mut self,
        token: LlamaToken,
        model: &LlamaModel,
        now: Instant,
    ) -> Option<FinishReason> {
        if self.first_token.is_none() {
            self.first_token = Some(now);
            self.n_past = self.prompt.len();
        } else {
            self.n_past += 1;
        }
        if let Some(drafter) = &mut self.drafter {
            drafter.push(token.0);
        }
        let vocab = model.vocab();
        if vocab.is_eog(token) && !self.ignore_eos {
            return Some(FinishReason::Stop);
        }
        self.generated += 1;
        self.last_token = token;
        let text = self.utf8.push(&vocab.token_to_piece(token, false, None));
        let scan = self.stop.push(&text);
        self.emit(scan.emit);
        if scan.stopped {
            return Some(FinishReason::Stop);
        }
        if self.generated >= self.max_tokens {
            return Some(FinishReason::Length);
        }
        None
    }

    /// Most tokens this sequence may draft now: what `max_tokens` leaves after the token the
    /// step samples anyway, what the context leaves, and its share of the batch.
    fn draft_room(&self, n_ctx: usize, share: usize) -> usize {
        let tokens_left = self.max_tokens.saturating_sub(self.generated + 1);
        let cells_left = n_ctx.saturating_sub(self.n_past + 1);
        tokens_left.min(cells_left).min(share.saturating_sub(1))
    }

    /// Samples this step's token at `index`, then walks the draft decoded after it: each
    /// drafted token that equals what the sequence's own sampler picks at that position is
    /// kept, up to the first that differs. Sampling stays exactly as without drafts (greedy
    /// gives the same text; a seeded sampler draws the same numbers). Returns why the sequence
    /// ends, if it does, and how many drafted tokens were accepted.
    fn sample_step(
        &mut self,
        index: i32,
        ctx: &LlamaContext<'_>,
        model: &LlamaModel,
        now: Instant,
        acceptance: &mut Acceptance,
    ) -> (Option<FinishReason>, usize) {
        let draft = std::mem::take(&mut self.draft);
        let mut accepted = 0;
        let mut rejected = false;
        let finish = loop {
            let token = self.sampler.sample(ctx, index + accepted as i32);
            if let Some(reason) = self.accept(token, model, now) {
                break Some(reason);
            }
            match draft.get(accepted) {
                Some(&guess) if guess == token => accepted += 1,
                Some(_) => {
                    rejected = true;
                    break None;
                }
                None => break None,
            }
        };
        if !draft.is_empty() {
            self.draft_n += draft.len();
            self.draft_n_accepted += accepted;
            if let Some(drafter) = &mut self.drafter {
                // A draft cut short by the end of the answer was not wrong.
                let tested = if rejected { draft.len() } else { accepted };
                drafter.verified(acceptance, tested, accepted);
            }
        }
        (finish, accepted)
    }

    fn finish(mut self, reason: FinishReason, now: Instant) {
        let tail = self.utf8.finish();
        let mut rest = self.stop.push(&tail).emit;
        rest.push_str(&self.stop.finish());
        self.emit(rest);
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
        let first = self.first_token.unwrap_or(now);
        let usage = Usage {
            prompt_tokens: self.prompt.len(),
            completion_tokens: self.generated,
            cached_prompt_tokens: self.reused,
        };
        let timings = Timings {
            queued_ms: ms(self.submitted, self.admitted),
            prompt_ms: ms(self.admitted, first),
            ttft_ms: ms(self.submitted, first),
            decode_ms: ms(first, now),
            draft_n: self.draft_n,
            draft_n_accepted: self.draft_n_accepted,
            ..Timings::default()
        }
        .with_rates(usage);
        let _ = self.events.send(Event::Done(Completion {
            usage,
            timings,
            finish_reason: reason,
        }));
    }
}

/// Length of the longest common prefix of two token sequences.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Makes the slot counters visible to `stats()`. KV use is read from llama.cpp's cache itself:
/// every cell a sequence holds, less the prompt prefixes free sequences keep on purpose for
/// reuse, so a cell left behind (a rejected draft, a cancelled request) shows.
fn publish(shared: &Shared, ctx: &LlamaContext<'_>, slots: &[Slot], retained: &[Vec<LlamaToken>]) {
    let held: usize = (0..retained.len() as i32)
        .map(|seq| (ctx.kv_cache_seq_pos_max(seq) + 1).max(0) as usize)
        .sum();
    let kept: usize = retained.iter().map(Vec::len).sum();
    shared
        .kv_used
        .store(held.saturating_sub(kept), Ordering::SeqCst);
    shared.active.store(slots.len(), Ordering::SeqCst);
}

fn engine_thread(
    model: &LlamaModel,
    options: &EngineOptions,
    commands: &std_mpsc::Receiver<Command>,
    shared: &Shared,
    ready: &std_mpsc::Sender<Result<(), EngineError>>,
) {
    let n_ctx = options.n_ctx as usize;
    let threads = options.threads.max(1) as i32;
    // Rejected drafts are removed from the KV cache by position, which recurrent state cannot do.
    let speculative =
        options.speculative == Speculative::Ngram && !model.is_recurrent() && !model.is_hybrid();
    let mut acceptance = Acceptance::default();
    let mut costs = StepCosts::default();
    let mut history = History::default();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(options.n_ctx * options.parallel))
        .with_n_batch(options.n_batch)
        .with_n_ubatch(options.n_batch)
        .with_n_seq_max(options.parallel)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        // One KV stream per sequence: a sequence's attention never sees another's cells, which
        // keeps greedy output identical whether it runs alone or batched.
        .with_kv_unified(false);
    let backend = match llama_backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => {
            let _ = ready.send(Ok(()));
            ctx
        }
        Err(e) => {
            let _ = ready.send(Err(EngineError::Load(format!(
                "cannot create context: {e}"
            ))));
            return;
        }
    };
    let mut batch = LlamaBatch::new(options.n_batch as usize, 1);
    let mut free_seqs: Vec<i32> = (0..options.parallel as i32).rev().collect();
    // Prompt tokens whose KV a free sequence still holds, by sequence id: a new request on that
    // sequence skips the common prefix (the chat template's preamble, a shared system prompt,
    // an earlier turn of the same conversation), as llama-server's prompt cache does.
    let mut retained: Vec<Vec<LlamaToken>> = vec![Vec::new(); options.parallel as usize];
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut open = true;

    while open || !queue.is_empty() || !slots.is_empty() {
        // Intake: block only when there is nothing to do.
        if slots.is_empty() && queue.is_empty() {
            match commands.recv() {
                Ok(Command::Generate(job)) => queue.push_back(job),
                Err(_) => break,
            }
        }
        loop {
            match commands.try_recv() {
                Ok(Command::Generate(job)) => queue.push_back(job),
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !open {
            // The handle is gone: nobody will read results; fail what is left and stop.
            for job in queue.drain(..) {
                let _ = job.events.send(Event::Error(EngineError::Shutdown));
            }
            for slot in slots.drain(..) {
                let _ = slot.events.send(Event::Error(EngineError::Shutdown));
            }
            break;
        }
        // Clients that went away before being admitted.
        queue.retain(|job| !job.events.is_closed());
        // Sequences whose client went away leave now and free their cells.
        slots.retain(|slot| {
            let keep = !slot.events.is_closed();
            if !keep {
                let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                release_seq(&mut free_seqs, slot.seq);
                tracing::debug!(seq = slot.seq, "request cancelled");
            }
            keep
        });
        let now = Instant::now();
        for _ in 0..admit_count(free_seqs.len(), queue.len()) {
            let (Some(job), Some(seq)) = (queue.pop_front(), free_seqs.pop()) else {
                break;
            };
            let sampler = match Samplers::new(&job.sampling, job.grammar.as_deref(), model) {
                Ok(s) => s,
                Err(e) => {
                    release_seq(&mut free_seqs, seq);
                    let _ = job.events.send(Event::Error(e));
                    continue;
                }
            };
            let mut slot = Slot::new(job, seq, n_ctx, now, sampler, speculative);
            let kept = std::mem::take(&mut retained[seq as usize]);
            // At least the last prompt token is decoded again: its logits pick the first token.
            let reuse = common_prefix(&kept, &slot.prompt).min(slot.prompt.len() - 1);
            let trimmed = ctx
                .clear_kv_cache_seq(Some(seq as u32), Some(reuse as u32), None)
                .unwrap_or(false);
            if trimmed {
                slot.n_prefilled = reuse;
                slot.reused = reuse;
            } else {
                // Some caches (sliding-window, recurrent) cannot drop a suffix: start clean.
                let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            }
            slots.push(slot);
        }
        shared.queued.store(queue.len(), Ordering::SeqCst);
        publish(shared, &ctx, &slots, &retained);
        if slots.is_empty() {
            continue;
        }

        // Plan prefill budgets in arrival order (decoding sequences first), then lay the batch
        // out in ascending sequence id: with per-sequence KV streams llama.cpp splits a batch
        // into ubatches of consecutive increasing sequence ids (`split_equal(.., sequential)`),
        // so any other order costs one full forward pass per out-of-order sequence.
        batch.clear();
        let mut add_failed = false;
        let decoding = slots.iter().filter(|s| s.is_decoding()).count();
        // Drafts for the generating sequences (see `speculative`), priced by what a drafted row
        // costs at this batch size; none until a draft-free step of this size was timed.
        if let Some(price) = costs.draft_price(decoding).filter(|_| speculative) {
            let share = options.n_batch as usize / decoding;
            for slot in slots.iter_mut().filter(|s| s.is_decoding()) {
                let room = slot.draft_room(n_ctx, share);
                if let Some(drafter) = &mut slot.drafter {
                    slot.draft = drafter
                        .draft(&acceptance, &history, price, room)
                        .into_iter()
                        .map(LlamaToken)
                        .collect();
                }
            }
        }
        let drafted: usize = slots.iter().map(|s| s.draft.len()).sum();
        let remaining: Vec<usize> = slots
            .iter()
            .filter(|s| !s.is_decoding())
            .map(|s| s.prompt.len() - s.n_prefilled)
            .collect();
        let mut chunks =
            plan_prefill(options.n_batch as usize, decoding + drafted, &remaining).into_iter();
        let chunk_of: Vec<usize> = slots
            .iter()
            .map(|s| {
                if s.is_decoding() {
                    0
                } else {
                    chunks.next().unwrap_or(0)
                }
            })
            .collect();
        let prefilled: usize = chunk_of.iter().sum();
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| slots[i].seq);
        for i in order {
            let slot = &mut slots[i];
            if slot.is_decoding() {
                slot.batch_index = Some(batch.n_tokens());
                add_failed |= batch
                    .add(slot.last_token, slot.n_past as i32, &[slot.seq], true)
                    .is_err();
                for (i, &guess) in slot.draft.iter().enumerate() {
                    let pos = (slot.n_past + 1 + i) as i32;
                    add_failed |= batch.add(guess, pos, &[slot.seq], true).is_err();
                }
                continue;
            }
            let chunk = chunk_of[i];
            for pos in slot.n_prefilled..slot.n_prefilled + chunk {
                let last = pos + 1 == slot.prompt.len();
                add_failed |= batch
                    .add(slot.prompt[pos], pos as i32, &[slot.seq], last)
                    .is_err();
                if last {
                    slot.batch_index = Some(batch.n_tokens() - 1);
                }
            }
            slot.n_prefilled += chunk;
        }
        let started = Instant::now();
        let result = if add_failed {
            Err("batch overflow".to_string())
        } else {
            ctx.decode(&mut batch).map_err(|e| e.to_string())
        };
        if result.is_ok() && prefilled == 0 {
            let seconds = started.elapsed().as_secs_f64();
            costs.record(decoding, drafted, seconds);
            tracing::trace!(decoding, drafted, ms = seconds * 1000.0, "decode step");
        }
        if let Err(message) = result {
            tracing::error!(%message, "decode failed");
            for slot in slots.drain(..) {
                let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                release_seq(&mut free_seqs, slot.seq);
                let _ = slot
                    .events
                    .send(Event::Error(EngineError::Decode(message.clone())));
            }
            continue;
        }

        // Sample every sequence that has logits in this batch.
        let now = Instant::now();
        let mut i = 0;
        while i < slots.len() {
            let Some(index) = slots[i].batch_index.take() else {
                i += 1;
                continue;
            };
            let drafted = slots[i].draft.len();
            let (finish, accepted) = slots[i].sample_step(index, &ctx, model, now, &mut acceptance);
            if drafted > 0 {
                shared
                    .draft_tokens
                    .fetch_add(drafted as u64, Ordering::Relaxed);
                shared
                    .draft_accepted
                    .fetch_add(accepted as u64, Ordering::Relaxed);
            }
            match finish {
                None if drafted > accepted => {
                    // Rejected drafted cells leave this sequence's KV cache; the next step
                    // decodes the sampled token at the first of their positions.
                    let seq = slots[i].seq;
                    let from = slots[i].n_past as u32;
                    if ctx
                        .clear_kv_cache_seq(Some(seq as u32), Some(from), None)
                        .unwrap_or(false)
                    {
                        i += 1;
                    } else {
                        let slot = slots.remove(i);
                        let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                        release_seq(&mut free_seqs, seq);
                        publish(shared, &ctx, &slots, &retained);
                        let _ = slot.events.send(Event::Error(EngineError::Decode(
                            "the KV cache could not drop rejected draft tokens".into(),
                        )));
                    }
                }
                None => i += 1,
                Some(reason) => {
                    // `remove`, not `swap_remove`: slots stay in arrival order for prefill fairness.
                    let slot = slots.remove(i);
                    if let Some(drafter) = &slot.drafter {
                        history.remember(drafter);
                    }
                    // Keep the prompt's KV for the next request on this sequence; generated
                    // tokens are not kept (a next turn re-renders them through the template).
                    let kept = ctx
                        .clear_kv_cache_seq(
                            Some(slot.seq as u32),
                            Some(slot.prompt.len() as u32),
                            None,
                        )
                        .unwrap_or(false);
                    retained[slot.seq as usize] = if kept {
                        slot.prompt.clone()
                    } else {
                        let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                        Vec::new()
                    };
                    release_seq(&mut free_seqs, slot.seq);
                    // Publish before the client hears Done, so stats never show a ghost.
                    publish(shared, &ctx, &slots, &retained);
                    slot.finish(reason, now);
                }
            }
        }
        publish(shared, &ctx, &slots, &retained);
    }
    shared.active.store(0, Ordering::SeqCst);
    shared.kv_used.store(0, Ordering::SeqCst);
    tracing::debug!(?acceptance, ?costs, "speculation learned");
}
