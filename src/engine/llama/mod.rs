//! The in-process llama.cpp backend.
//!
//! One engine thread owns the llama.cpp context, batch and samplers (none of them is `Send`)
//! and is steered only by messages. Every step it builds one batch holding the next token of
//! each generating sequence plus prompt chunks of newly admitted ones (continuous batching),
//! decodes it once, and samples each sequence with its own sampler. A finished or cancelled
//! sequence leaves at once and its KV cells are freed, so no request waits for another.
//!
//! This file is the cheap handle callers hold ([`LlamaEngine`]: load, render and tokenize,
//! submit); `slot.rs` is one sequence's state on the engine thread and `scheduler.rs` the
//! thread's step loop.

mod scheduler;
mod slot;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use super::compute::Compute;
use super::constraint::Compiler;
use super::devices::{self, Offload};
use super::speculative::Speculative;
use super::template::{ChatTemplate, TemplateChoice, TemplateFamily};
use super::tools::{self, ToolRequest};
use super::{
    structured, Backend, EngineError, EngineStats, Event, EventStream, GenerateRequest, ModelFacts,
    Prompt, SamplingParams,
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
    /// KV cache type, flash attention and batch sizes.
    pub compute: Compute,
    /// Requests allowed to wait for a slot before new ones are refused.
    pub queue_capacity: usize,
    /// Layers offloaded to a GPU, and which one.
    pub offload: Offload,
    /// Whether sequences draft tokens from their own n-grams.
    pub speculative: Speculative,
    /// Most host memory the prompt cache may hold, when the memory budget limits it (it never
    /// takes more than the slots' KV size).
    pub prompt_cache_bytes: Option<u64>,
    /// The prompt cache's disk tier, when long prompts' states are kept across unloads and
    /// restarts.
    pub kv_disk: Option<crate::engine::kv_disk::KvDiskOptions>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: num_cpus::get_physical().max(1) as u32,
            n_ctx: crate::engine::memory::DEFAULT_CTX,
            parallel: 1,
            compute: Compute::default(),
            queue_capacity: 64,
            offload: Offload::default(),
            speculative: Speculative::default(),
            prompt_cache_bytes: None,
            kv_disk: None,
        }
    }
}

use super::backend::llama_backend;

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
    /// The compiled constraint the answer must match (structured output, forced tool calls).
    guide: Option<llguidance::Matcher>,
    /// The JSON schema a structured answer is closed against when the budget runs out, and
    /// its closer (compiled here, on the caller's thread).
    closes_as: Option<(serde_json::Value, crate::engine::json_close::AnswerCloser)>,
    sampling: SamplingParams,
    events: UnboundedSender<Event>,
    submitted: Instant,
}

/// What the handle asks of the engine thread. Dropping the sender is the other message: the
/// thread fails what is left and exits.
enum Command {
    /// Queue this request.
    Generate(Job),
}

/// A GGUF model served by llama.cpp on its own thread.
pub struct LlamaEngine {
    model: Arc<LlamaModel>,
    /// Compiles the constraints of structured answers and forced tool calls, on the caller's
    /// thread.
    compiler: Arc<Compiler>,
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
            devices::offload_problem(options.offload.gpu_layers, options.offload.device)
        {
            return Err(EngineError::Load(why));
        }
        let mut params = LlamaModelParams::default()
            .with_n_gpu_layers(options.offload.gpu_layers.n_gpu_layers());
        if options.offload.gpu_layers.is_cpu() {
            // No GPU at all. With every weight in RAM llama.cpp would still send large prompt
            // batches to a GPU ("op offload"), and a `--gpu-layers 0` row would not be the
            // CPU-only figure it is labelled as.
            params = params
                .with_devices(&[])
                .map_err(|e| EngineError::Load(format!("CPU only: {e}")))?;
        } else if let Some(device) = options.offload.device {
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
        let template = ChatTemplate::for_model(
            info.chat_template.as_deref(),
            &info.architecture,
            special(vocab.bos()),
            special(vocab.eos()),
        )?;
        let end_of_turn = end_of_turn_tokens(&model, template.choice());
        options.compute.check().map_err(EngineError::Load)?;
        let options = EngineOptions {
            parallel: options.parallel.max(1),
            compute: Compute {
                batch: options.compute.batch.max(options.parallel.max(1)),
                ..options.compute
            },
            ..options
        };
        let shared = Arc::new(Shared::default());
        let (commands, rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let thread = {
            let model = Arc::clone(&model);
            let shared = Arc::clone(&shared);
            let options = options.clone();
            let model_info = scheduler::ModelInfo {
                end_of_turn,
                sliding_window: info.sliding_window,
                kv_bytes_per_token: info
                    .kv_bytes_per_token()
                    .map(|b| options.compute.kv_type.scale(b)),
            };
            std::thread::Builder::new()
                .name(format!("engine-{alias}"))
                .spawn(move || {
                    super::backend::flush_denormals_to_zero();
                    scheduler::run(&model, &model_info, &options, &rx, &shared, &ready_tx)
                })
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
            template: Some(template.choice().clone()),
        };
        tracing::info!(
            alias,
            load_ms = facts.load_ms,
            template = %template.choice(),
            "model loaded"
        );
        let compiler = Compiler::new(Arc::clone(&model));
        compiler.warm();
        Ok(Self {
            model,
            compiler,
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

/// The tokens that end a turn besides llama.cpp's own end-of-generation set: the built-in
/// template's end-of-turn token (`<end_of_turn>` for Gemma), when the vocabulary has it as one
/// token. llama.cpp already treats the usual ones as end-of-generation by their text; naming
/// it here keeps a chat answer from running into a turn it writes itself even in a vocabulary
/// where that detection misses.
fn end_of_turn_tokens(model: &LlamaModel, choice: &TemplateChoice) -> Vec<LlamaToken> {
    let Some(text) = choice.family().map(TemplateFamily::end_of_turn) else {
        return Vec::new();
    };
    let vocab = model.vocab();
    match vocab.tokenize(text.as_bytes(), false, true)[..] {
        [token] => {
            if !vocab.is_eog(token) {
                tracing::info!(
                    token = text,
                    "llama.cpp does not end generation on the template's end-of-turn token; hearth does"
                );
            }
            vec![token]
        }
        _ => Vec::new(),
    }
}

impl LlamaEngine {
    /// The constraint on this request's answer: a forced tool call, else the
    /// `response_format`; compiled here, on the caller's thread (a bad one is a 400, not a
    /// failed stream, and the engine thread never compiles).
    fn constraint(
        &self,
        tools: Option<&ToolRequest>,
        sampling: &SamplingParams,
    ) -> Result<Option<llguidance::Matcher>, EngineError> {
        let forced = match tools.filter(|t| t.active()) {
            Some(t) => tools::call_grammar(t, self.template.tool_format()).map_err(|e| {
                EngineError::InvalidParam {
                    param: "tools",
                    message: e.0,
                }
            })?,
            None => None,
        };
        let (grammar, param) = match (forced, &sampling.response_format) {
            (Some(g), _) => (g, "tools"),
            (None, Some(format)) => match structured::response_format_constraint(format) {
                Ok(Some(g)) => (g, "response_format"),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(EngineError::InvalidParam {
                        param: "response_format",
                        message: e.0,
                    })
                }
            },
            (None, None) => return Ok(None),
        };
        self.compiler
            .compile(&grammar)
            .map(Some)
            .map_err(|e| EngineError::InvalidParam {
                param,
                message: format!("the constraint cannot be enforced: {e}"),
            })
    }
}

impl LlamaEngine {
    /// The model's constraint compiler (what requests' schemas are compiled with); for
    /// measuring compile costs.
    pub fn constraint_compiler(&self) -> &Arc<Compiler> {
        &self.compiler
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
        let guide = self.constraint(tools, &request.sampling)?;
        // A forced tool call has its own grammar; only `response_format` answers are closed.
        let closes_as = match (&guide, tools.filter(|t| t.active())) {
            (Some(_), None) => request
                .sampling
                .response_format
                .as_ref()
                .and_then(structured::response_format_schema)
                .map(|schema| {
                    let closer = crate::engine::json_close::AnswerCloser::new(&schema);
                    (schema, closer)
                }),
            _ => None,
        };
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
            guide,
            closes_as,
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
