//! The engine thread: continuous batching over one llama.cpp context.
//!
//! [`run`] owns the context, the batch and every slot (none of them is `Send`) and is steered
//! only by the handle's messages. Each turn of its loop is a list of named steps, each a method
//! over the thread's own state ([`Scheduler`]):
//!
//! 1. [`intake`](Scheduler::intake): take new requests (block only when idle), stop when the
//!    handle is gone;
//! 2. [`leave_cancelled`](Scheduler::leave_cancelled): drop requests whose client went away;
//! 3. [`admit`](Scheduler::admit): give waiting requests free sequences, reusing the KV of a
//!    common prompt prefix;
//! 4. [`build_batch`](Scheduler::build_batch): drafts, then each generating sequence's next
//!    token and prompt chunks of the others, in ascending sequence id;
//! 5. [`decode`](Scheduler::decode): one forward pass, timed for the draft pricing;
//! 6. [`sample`](Scheduler::sample): each sequence with logits samples (and verifies its draft),
//!    emits its text, and then keeps going, drops its rejected draft cells, or finishes.
//!
//! The batch composition, the order of adds and the KV removals are what llama.cpp's output
//! depends on (batch shapes change the floating-point sums); the pure decisions among them
//! (which prompt chunk each slot gets, the batch order, what a sample's outcome means for the
//! KV cache) are plain functions with unit tests below.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::slot::{Samplers, Slot};
use super::{Command, EngineOptions, Job, Shared};
use crate::engine::admission::{admit_count, plan_prefill, release_seq};
use crate::engine::backend::llama_backend;
use crate::engine::kv_disk::{DiskTier, RestoreOrCompute, StateKey, MIN_DISK_TOKENS};
use crate::engine::prompt_cache::{reusable_prefix, PromptCache, Saved, MIN_GAIN_TOKENS};
use crate::engine::speculative::plan::{self, Lane, Payoff, SeqRows, StepCosts};
use crate::engine::speculative::{Acceptance, Candidate, History, Speculative};
use crate::engine::{EngineError, Event, FinishReason};

/// What the engine thread needs to know about the model beyond llama.cpp's own view of it.
pub(super) struct ModelInfo {
    /// Tokens that end an answer besides llama.cpp's end-of-generation set (the chat
    /// template's end-of-turn token).
    pub(super) end_of_turn: Vec<LlamaToken>,
    /// Tokens a sliding-window layer attends to, for models that have such layers: bounds
    /// which cached positions a reused prompt prefix needs.
    pub(super) sliding_window: Option<u64>,
    /// KV bytes one token takes (from the GGUF), which sizes the prompt cache.
    pub(super) kv_bytes_per_token: Option<u64>,
}

/// The engine thread's body: creates the context (reporting success or failure on `ready`),
/// then runs the step loop until the handle is dropped.
pub(super) fn run(
    model: &LlamaModel,
    info: &ModelInfo,
    options: &EngineOptions,
    commands: &std_mpsc::Receiver<Command>,
    shared: &Shared,
    ready: &std_mpsc::Sender<Result<(), EngineError>>,
) {
    let mut engine = match Scheduler::start(model, info, options, commands, shared) {
        Ok(engine) => {
            let _ = ready.send(Ok(()));
            engine
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while engine.intake() {
        engine.leave_cancelled();
        engine.admit();
        if engine.slots.is_empty() {
            continue;
        }
        let step = engine.build_batch();
        let started = Instant::now();
        if engine.decode(&step) {
            engine.sample(&step, started);
        }
    }
    engine.stop();
}

/// Everything the engine thread owns: the llama.cpp context and batch, the sequences, the
/// queue, and what speculation has learned so far. (Fields drop in order: the slots and their
/// samplers before the batch and the context, as the loop's locals did before this split.)
struct Scheduler<'m> {
    /// Admitted requests, in arrival order (prefill fairness).
    slots: Vec<Slot>,
    /// Requests waiting for a sequence, in arrival order.
    queue: VecDeque<Job>,
    /// Context length per sequence.
    n_ctx: usize,
    /// Most tokens in one decode.
    n_batch: usize,
    /// Whether sequences draft (asked for, and possible with this model's cache).
    speculative: bool,
    /// Tokens that end an answer besides llama.cpp's end-of-generation set.
    end_of_turn: Vec<LlamaToken>,
    /// The model's attention window, for models with sliding-window layers.
    sliding_window: Option<usize>,
    /// Most tokens llama.cpp computes in one forward pass (its micro-batch).
    n_ubatch: usize,
    acceptance: Acceptance,
    costs: StepCosts,
    payoff: Payoff,
    history: History,
    /// Free sequence ids, descending, so `pop()` hands out the lowest (see `admission`).
    free_seqs: Vec<i32>,
    /// Prompt tokens whose KV a free sequence still holds, by sequence id: a new request on
    /// that sequence skips the common prefix (the chat template's preamble, a shared system
    /// prompt, an earlier turn of the same conversation), as llama-server's prompt cache does.
    retained: Vec<Vec<LlamaToken>>,
    /// Prompt and answer states of requests whose sequence went to another prompt.
    prompt_cache: PromptCache<LlamaToken, StateBytes>,
    /// Long prompts' states on disk: what the prompt cache evicts and what it held when the
    /// engine stopped, for the next engine of this model file (after an idle unload or a
    /// restart) to restore instead of prefilling.
    disk: Option<DiskTier>,
    /// What a restore from disk and a prefill cost here, per token.
    restore_or_compute: RestoreOrCompute,
    /// Whether prefixes move between sequences and the prompt cache: not for recurrent state,
    /// which cannot be cut back to a shared prefix.
    cache_across: bool,
    batch: LlamaBatch<'m>,
    ctx: LlamaContext<'m>,
    model: &'m LlamaModel,
    commands: &'m std_mpsc::Receiver<Command>,
    shared: &'m Shared,
}

/// Prompt tokens a step needs for its time to count as a prefill's (the sequences generating
/// beside them are then a small share of it).
const MIN_TIMED_PREFILL: usize = 64;

/// Rows of the longer pass [`Scheduler::calibrate`] times.
const CALIBRATION_ROWS: usize = 8;

/// What [`Scheduler::build_batch`] put into the batch, for timing and error handling.
struct Step {
    /// Sequences adding their next token.
    decoding: usize,
    /// Drafted tokens added after them.
    drafted: usize,
    /// Forward passes llama.cpp makes of the batch, and its rows (see [`plan::ubatches`]).
    passes: usize,
    rows: usize,
    /// Prompt tokens added.
    prefilled: usize,
    /// A token did not fit (the batch is sized so that it should never happen).
    add_failed: bool,
}

impl<'m> Scheduler<'m> {
    /// Creates the context: one KV stream per sequence, `n_ctx` cells each.
    fn start(
        model: &'m LlamaModel,
        info: &ModelInfo,
        options: &EngineOptions,
        commands: &'m std_mpsc::Receiver<Command>,
        shared: &'m Shared,
    ) -> Result<Self, EngineError> {
        let threads = options.threads.max(1) as i32;
        // Rejected drafts are removed from the KV cache by position, which recurrent state
        // cannot do.
        let speculative = options.speculative == Speculative::Ngram
            && !model.is_recurrent()
            && !model.is_hybrid();
        let params = options
            .compute
            .apply(LlamaContextParams::default())
            .with_n_ctx(NonZeroU32::new(options.n_ctx * options.parallel))
            .with_n_seq_max(options.parallel)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            // A full-size cache for sliding-window layers (Gemma 2 and 3), as llama.cpp's own
            // default: every position stays until hearth removes it. A window-sized cache
            // (llama-server's default) overwrites positions that slid out of the window, so a
            // prompt kept for reuse loses its older cells once an answer outgrows the window,
            // and `seq_rm` of a rejected draft still returns true after llama.cpp pruned what
            // the rolled-back position needs. The cost is memory: those layers keep the whole
            // context (which is what the memory estimate counts), e.g. 72 MiB instead of 27 MiB
            // per 4096-token sequence for Gemma 3 270M.
            .with_swa_full(true)
            // One KV stream per sequence: a sequence's attention never sees another's cells,
            // which keeps greedy output identical whether it runs alone or batched.
            .with_kv_unified(false);
        let backend = llama_backend()?;
        let ctx = model
            .new_context(backend, params)
            .map_err(|e| EngineError::Load(format!("cannot create context: {e}")))?;
        let cache_across = !model.is_recurrent() && !model.is_hybrid();
        let disk = options
            .kv_disk
            .as_ref()
            .filter(|_| cache_across)
            .and_then(|d| {
                let key = StateKey {
                    model: d.model.clone(),
                    engine: env!("HEARTH_LLAMA_CPP_SYS_VERSION").to_string(),
                    kv_type: options.compute.kv_type.to_string(),
                    flash_attn: options.compute.flash_attn.to_string(),
                };
                DiskTier::open(&d.root, key, d.limit_bytes)
                    .map_err(|e| tracing::warn!(dir = %d.root.display(), error = %e, "prompt cache on disk unavailable"))
                    .ok()
            });
        let mut engine = Self {
            model,
            commands,
            shared,
            ctx,
            batch: LlamaBatch::new(options.compute.batch as usize, 1),
            n_ctx: options.n_ctx as usize,
            n_batch: options.compute.batch as usize,
            speculative,
            end_of_turn: info.end_of_turn.clone(),
            sliding_window: info.sliding_window.map(|w| w as usize),
            acceptance: Acceptance::default(),
            n_ubatch: options.compute.ubatch as usize,
            costs: StepCosts::default(),
            payoff: Payoff::default(),
            history: History::default(),
            free_seqs: (0..options.parallel as i32).rev().collect(),
            retained: vec![Vec::new(); options.parallel as usize],
            prompt_cache: PromptCache::new(prompt_cache_bytes(info, options)),
            disk,
            restore_or_compute: RestoreOrCompute::default(),
            cache_across,
            queue: VecDeque::new(),
            slots: Vec::new(),
        };
        if engine.speculative {
            engine.calibrate();
        }
        Ok(engine)
    }

    /// Times a forward pass of one row and one of [`CALIBRATION_ROWS`], the fastest of three
    /// each (after an untimed one that warms the weights and the threads up, as llama-server's
    /// warm-up does), so drafts are priced from the first step on. The rows go to sequence 0
    /// and leave its KV cache empty again.
    fn calibrate(&mut self) {
        let token = LlamaToken(self.model.vocab().bos().0.max(0));
        let rows = CALIBRATION_ROWS.min(self.n_ubatch).min(self.n_ctx);
        let mut pass = |n: usize| -> Option<f64> {
            self.batch.clear();
            for pos in 0..n {
                self.batch.add(token, pos as i32, &[0], pos + 1 == n).ok()?;
            }
            let started = Instant::now();
            let decoded = self.ctx.decode(&mut self.batch);
            let seconds = started.elapsed().as_secs_f64();
            let _ = self.ctx.clear_kv_cache_seq(Some(0), None, None);
            decoded.ok().map(|_| seconds)
        };
        // The least of three each: a pass the OS preempted (a neighbour on a loaded machine)
        // would otherwise price every drafted row for the server's life, since draft-free
        // steps of one sequence cannot tell passes from rows again.
        let _warm_up = pass(1);
        let one = [pass(1), pass(1), pass(1)]
            .into_iter()
            .flatten()
            .reduce(f64::min);
        let many = [pass(rows), pass(rows), pass(rows)]
            .into_iter()
            .flatten()
            .reduce(f64::min);
        if let (Some(one), Some(many)) = (one, many) {
            tracing::debug!(
                one_ms = one * 1000.0,
                rows,
                many_ms = many * 1000.0,
                "step costs calibrated"
            );
            self.costs.calibrate(one, rows, many);
        }
    }

    /// Takes every waiting command, blocking only when there is nothing to do. Returns false
    /// when the thread should stop: the handle is gone, and whatever was left has been failed
    /// (nobody will read its results).
    fn intake(&mut self) -> bool {
        if self.slots.is_empty() && self.queue.is_empty() {
            match self.commands.recv() {
                Ok(Command::Generate(job)) => self.queue.push_back(job),
                Err(_) => return false,
            }
        }
        loop {
            match self.commands.try_recv() {
                Ok(Command::Generate(job)) => self.queue.push_back(job),
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    for job in self.queue.drain(..) {
                        let _ = job.events.send(Event::Error(EngineError::Shutdown));
                    }
                    for slot in self.slots.drain(..) {
                        let _ = slot.events.send(Event::Error(EngineError::Shutdown));
                    }
                    return false;
                }
            }
        }
    }

    /// Forgets queued requests whose client went away, and frees the cells of admitted ones.
    fn leave_cancelled(&mut self) {
        self.queue.retain(|job| !job.events.is_closed());
        let (ctx, free_seqs) = (&mut self.ctx, &mut self.free_seqs);
        self.slots.retain(|slot| {
            let keep = !slot.events.is_closed();
            if !keep {
                let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                release_seq(free_seqs, slot.seq);
                tracing::debug!(seq = slot.seq, "request cancelled");
            }
            keep
        });
    }

    /// Moves waiting requests onto free sequences (lowest id first), starting each from the
    /// longest cached prefix of its prompt, then publishes the counters.
    fn admit(&mut self) {
        let now = Instant::now();
        for _ in 0..admit_count(self.free_seqs.len(), self.queue.len()) {
            let (Some(mut job), Some(seq)) = (self.queue.pop_front(), self.free_seqs.pop()) else {
                break;
            };
            let sampler = Samplers::new(&job.sampling, job.guide.take(), self.model.vocab().eos());
            let mut slot = Slot::new(job, seq, self.n_ctx, now, sampler, self.speculative);
            if self.cache_across {
                self.bring_best_prefix(seq, &slot.prompt);
            }
            let kept = std::mem::take(&mut self.retained[seq as usize]);
            let reuse = reusable_prefix(&kept, &slot.prompt);
            let trimmed = self
                .ctx
                .clear_kv_cache_seq(Some(seq as u32), Some(reuse as u32), None)
                .unwrap_or(false);
            // Some caches (recurrent) cannot drop a suffix; a window-sized sliding-window cache
            // drops the oldest positions on its own: either way, start clean rather than
            // attend to cells that are not there.
            let pos_min = self.ctx.kv_cache_seq_pos_min(seq);
            if trimmed && prefix_intact(pos_min, reuse, self.sliding_window) {
                slot.n_prefilled = reuse;
                slot.reused = reuse;
            } else {
                if trimmed {
                    tracing::debug!(seq, reuse, pos_min, "cached prefix incomplete; prefilling");
                }
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            }
            self.slots.push(slot);
        }
        self.shared.queued.store(self.queue.len(), Ordering::SeqCst);
        self.publish();
    }

    /// Before a request starts on free sequence `seq`: if another free sequence or the prompt
    /// cache holds a longer prefix of `prompt` (by [`MIN_GAIN_TOKENS`]) than `seq` itself, its
    /// state is copied onto `seq`. What `seq` held is saved to the prompt cache first when the
    /// request would otherwise overwrite a part of it worth keeping. Sequence ids stay as they
    /// are (the lowest free one), since llama.cpp fuses only consecutive ids into one ubatch:
    /// the prefix moves to the request, not the request to the prefix.
    fn bring_best_prefix(&mut self, seq: i32, prompt: &[LlamaToken]) {
        let own = reusable_prefix(&self.retained[seq as usize], prompt);
        let other_seq = self
            .free_seqs
            .iter()
            .map(|&other| {
                (
                    other,
                    reusable_prefix(&self.retained[other as usize], prompt),
                )
            })
            .max_by_key(|&(other, reuse)| (reuse, std::cmp::Reverse(other)))
            .filter(|&(_, reuse)| reuse >= own + MIN_GAIN_TOKENS);
        // Saved before the lookup: saving may evict entries.
        let held = self.retained[seq as usize].len();
        if held >= own + MIN_GAIN_TOKENS {
            self.save_to_cache(seq);
        }
        let cached = self
            .prompt_cache
            .best_match(prompt)
            .filter(|hit| hit.reuse >= own + MIN_GAIN_TOKENS);
        // The disk tier, when it holds clearly more than memory does (reading a file costs
        // more than copying a state in memory).
        let in_memory = own
            .max(cached.as_ref().map_or(0, |h| h.reuse))
            .max(other_seq.map_or(0, |(_, reuse)| reuse));
        if self.restore_from_disk(seq, prompt, in_memory) {
            return;
        }
        let from_cache = match (&cached, other_seq) {
            (Some(hit), Some((_, reuse))) => hit.reuse > reuse,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let restored = if from_cache {
            let hit = cached.expect("from_cache implies a hit");
            let (tokens, state) = self.prompt_cache.take_hit(&hit);
            let tokens = tokens.to_vec();
            set_state(&mut self.ctx, &state.0, seq).map(|()| tokens)
        } else if let Some((other, _)) = other_seq {
            get_state(&self.ctx, other)
                .and_then(|state| set_state(&mut self.ctx, &state.0, seq))
                .map(|()| self.retained[other as usize].clone())
        } else {
            return;
        };
        match restored {
            Ok(tokens) => {
                tracing::debug!(seq, from_cache, tokens = tokens.len(), "prefix restored");
                self.retained[seq as usize] = tokens;
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "cannot restore a cached prefix; prefilling");
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                self.retained[seq as usize].clear();
            }
        }
    }

    /// Restores onto `seq` the disk tier's longest prefix of `prompt`, when it reuses at least
    /// `MIN_GAIN_TOKENS` more than `in_memory` tokens; whether it did. A file that does not
    /// read back sound, or a state llama.cpp refuses, leaves `seq` empty for a prefill.
    fn restore_from_disk(&mut self, seq: i32, prompt: &[LlamaToken], in_memory: usize) -> bool {
        let Some(disk) = self.disk.as_mut().filter(|d| !d.is_empty()) else {
            return false;
        };
        let ids: Vec<i32> = prompt.iter().map(|t| t.0).collect();
        let Some(hit) = disk
            .best_match(&ids)
            .filter(|hit| hit.reuse >= in_memory + MIN_GAIN_TOKENS)
        else {
            return false;
        };
        if !self
            .restore_or_compute
            .worth_restoring(hit.tokens, hit.reuse - in_memory)
        {
            tracing::debug!(
                seq,
                tokens = hit.tokens,
                reuse = hit.reuse,
                "prefilling: on this machine that is cheaper than restoring from disk"
            );
            return false;
        }
        let began = Instant::now();
        let Some((tokens, state)) = disk.read(&hit) else {
            return false;
        };
        match set_state(&mut self.ctx, &state, seq) {
            Ok(()) => {
                self.restore_or_compute
                    .restored(tokens.len(), began.elapsed().as_secs_f64());
                tracing::info!(
                    seq,
                    tokens = tokens.len(),
                    reuse = hit.reuse,
                    ms = began.elapsed().as_millis() as u64,
                    "prompt prefix restored from disk"
                );
                self.retained[seq as usize] = tokens.into_iter().map(LlamaToken).collect();
                true
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "a prompt state from disk was refused; prefilling");
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                self.retained[seq as usize].clear();
                false
            }
        }
    }

    /// Copies what free sequence `seq` holds into the prompt cache, unless the cache already
    /// has it (or more). What the cache evicts for it goes to disk when long enough.
    fn save_to_cache(&mut self, seq: i32) {
        let tokens = &self.retained[seq as usize];
        if tokens.is_empty() || self.prompt_cache.covers(tokens) {
            return;
        }
        let tokens = tokens.clone();
        // Room first: the copy must not sit beside a full cache (the memory bound).
        let size = self
            .ctx
            .state_seq_get_size_ext(seq, LlamaStateSeqFlags::empty());
        if size > self.prompt_cache.limit_bytes() && self.disk.is_none() {
            return; // it could be kept nowhere
        }
        let evicted = self.prompt_cache.make_room(&tokens, size);
        self.keep_on_disk(evicted);
        // States on their way to disk are still in memory: when they and the copy would
        // overshoot the bound, the copy waits for the writes (a stall of one file's write,
        // only while long prompts churn through a full cache).
        if let Some(disk) = &self.disk {
            let pending = disk.in_flight_bytes();
            let limit = self.prompt_cache.limit_bytes();
            if pending > 0 && self.prompt_cache.used_bytes() + size + pending > limit {
                let began = Instant::now();
                disk.flush();
                tracing::debug!(
                    pending,
                    ms = began.elapsed().as_secs_f64() * 1000.0,
                    "waited for states on their way to disk (memory bound)"
                );
            }
        }
        match get_state(&self.ctx, seq) {
            Ok(state) => {
                let evicted = self.prompt_cache.insert(tokens, state);
                self.keep_on_disk(evicted);
            }
            Err(e) => tracing::warn!(seq, error = %e, "cannot save a prefix to the prompt cache"),
        }
    }

    /// Writes the long ones of `states` to the disk tier, if there is one. (On the engine
    /// thread: a state of a few thousand tokens is tens of MB, written in well under the time
    /// its prefill took.)
    fn keep_on_disk(&mut self, states: Vec<(Vec<LlamaToken>, StateBytes)>) {
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        for (tokens, state) in states {
            if tokens.len() >= MIN_DISK_TOKENS {
                let ids: Vec<i32> = tokens.iter().map(|t| t.0).collect();
                disk.write(&ids, state.0);
            }
        }
    }

    /// Lays out this step's batch. Prefill budgets are planned in arrival order (generating
    /// sequences and their drafts first), then the batch is laid out in ascending sequence id:
    /// with per-sequence KV streams llama.cpp splits a batch into ubatches of consecutive
    /// increasing sequence ids (`split_equal(.., sequential)`), so any other order costs one
    /// full forward pass per out-of-order sequence.
    fn build_batch(&mut self) -> Step {
        self.batch.clear();
        let mut add_failed = false;
        let decoding = self.slots.iter().filter(|s| s.is_decoding()).count();
        let remaining: Vec<Option<usize>> = self
            .slots
            .iter()
            .map(|s| (!s.is_decoding()).then(|| s.prompt.len() - s.n_prefilled))
            .collect();
        // A step that ends a prompt drafts nothing: its length delays that prompt's first
        // token. (The steps of a longer prompt before its last chunk may: they are dominated
        // by the prompt itself, and the other sequences keep their speed.)
        let undrafted = prefill_chunks(self.n_batch, decoding, &remaining);
        let ends_a_prompt = undrafted
            .iter()
            .zip(&remaining)
            .any(|(&chunk, left)| left.is_some_and(|left| chunk == left && chunk > 0));
        if !ends_a_prompt {
            self.draft(decoding, &undrafted);
        }
        let drafted: usize = self.slots.iter().map(|s| s.draft.len()).sum();
        // Drafted rows take their room from the prompts' chunks.
        let chunk_of = if drafted == 0 {
            undrafted
        } else {
            prefill_chunks(self.n_batch, decoding + drafted, &remaining)
        };
        let prefilled: usize = chunk_of.iter().sum();
        let seqs: Vec<i32> = self.slots.iter().map(|s| s.seq).collect();
        let mut layout = Vec::with_capacity(seqs.len());
        for i in batch_order(&seqs) {
            let slot = &mut self.slots[i];
            let rows = if slot.is_decoding() {
                1 + slot.draft.len()
            } else {
                chunk_of[i]
            };
            layout.push(SeqRows {
                seq: slot.seq,
                rows,
            });
            if slot.is_decoding() {
                slot.batch_index = Some(self.batch.n_tokens());
                add_failed |= self
                    .batch
                    .add(slot.last_token, slot.n_past as i32, &[slot.seq], true)
                    .is_err();
                for (i, &guess) in slot.draft.iter().enumerate() {
                    let pos = (slot.n_past + 1 + i) as i32;
                    add_failed |= self.batch.add(guess, pos, &[slot.seq], true).is_err();
                }
                continue;
            }
            let chunk = chunk_of[i];
            for pos in slot.n_prefilled..slot.n_prefilled + chunk {
                let last = pos + 1 == slot.prompt.len();
                add_failed |= self
                    .batch
                    .add(slot.prompt[pos], pos as i32, &[slot.seq], last)
                    .is_err();
                if last {
                    slot.batch_index = Some(self.batch.n_tokens() - 1);
                }
            }
            slot.n_prefilled += chunk;
        }
        let passes = plan::ubatches(&layout, self.n_ubatch);
        Step {
            decoding,
            drafted,
            passes: passes.len(),
            rows: passes.iter().sum(),
            prefilled,
            add_failed,
        }
    }

    /// Drafts for the generating sequences (see `speculative`): each offers a candidate, and
    /// [`plan::choose`] keeps what pays for the rows and passes it adds under the fitted step
    /// costs, the step no longer than its stretch over a draft-free one (so a request arriving
    /// meanwhile never waits much longer). Nothing where drafting did not pay at this batch
    /// size lately ([`Payoff`]). `chunks`: each slot's prompt chunk in a draft-free step.
    fn draft(&mut self, decoding: usize, chunks: &[usize]) {
        if !self.speculative || decoding == 0 || !self.payoff.may_draft(decoding) {
            return;
        }
        let Some(cost) = self.costs.fitted() else {
            return;
        };
        let share = (self.n_batch / decoding).max(1);
        let candidates: Vec<Candidate> = self
            .slots
            .iter_mut()
            .map(|slot| {
                let room = slot.draft_room(self.n_ctx, share);
                let decoding = slot.is_decoding();
                match &mut slot.drafter {
                    Some(d) if decoding => d.candidate(&self.acceptance, &self.history, room),
                    _ => Candidate::default(),
                }
            })
            .collect();
        let lanes: Vec<Lane> = self
            .slots
            .iter()
            .zip(&candidates)
            .zip(chunks)
            .map(|((slot, c), &chunk)| Lane {
                seq: slot.seq,
                rows: if slot.is_decoding() { 1 } else { chunk },
                generating: slot.is_decoding(),
                chances: &c.chances,
            })
            .collect();
        let lengths = plan::choose(&lanes, cost, self.n_ubatch);
        for ((slot, c), n) in self.slots.iter_mut().zip(&candidates).zip(lengths) {
            if n == 0 {
                continue;
            }
            if let Some(d) = &mut slot.drafter {
                d.drafting(&c.chances, n);
            }
            slot.draft = c.tokens[..n].iter().map(|&t| LlamaToken(t)).collect();
        }
    }

    /// Runs the forward pass. On failure every slot fails and frees its sequence. Returns
    /// whether there are logits to sample.
    fn decode(&mut self, step: &Step) -> bool {
        let result = if step.add_failed {
            Err("batch overflow".to_string())
        } else {
            self.ctx.decode(&mut self.batch).map_err(|e| e.to_string())
        };
        let Err(message) = result else {
            return true;
        };
        tracing::error!(%message, "decode failed");
        for slot in self.slots.drain(..) {
            let _ = self
                .ctx
                .clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            release_seq(&mut self.free_seqs, slot.seq);
            let _ = slot
                .events
                .send(Event::Error(EngineError::Decode(message.clone())));
        }
        false
    }

    /// Samples every sequence that has logits in this batch, in arrival order; each one's
    /// outcome is settled before the next is sampled, so a finished request hears `Done`
    /// as early as possible. A step without prompt tokens is then timed, from the forward
    /// pass (`started`) to its last token sampled, less the time finished requests took to
    /// be put away: the step costs and drafting's payoff are fitted to that.
    fn sample(&mut self, step: &Step, started: Instant) {
        let now = Instant::now();
        let mut accepted_in_step = 0;
        let mut putting_away = Duration::ZERO;
        let mut i = 0;
        while i < self.slots.len() {
            let Some(index) = self.slots[i].batch_index.take() else {
                i += 1;
                continue;
            };
            let drafted = self.slots[i].draft.len();
            let (finish, accepted) = self.slots[i].sample_step(
                index,
                &self.ctx,
                self.model,
                &self.end_of_turn,
                now,
                &mut self.acceptance,
            );
            accepted_in_step += accepted;
            if drafted > 0 {
                self.shared
                    .draft_tokens
                    .fetch_add(drafted as u64, Ordering::Relaxed);
                self.shared
                    .draft_accepted
                    .fetch_add(accepted as u64, Ordering::Relaxed);
            }
            let stays = match settle(finish, drafted, accepted) {
                Settle::Continue => true,
                Settle::DropRejectedDraft => self.drop_rejected_draft(i),
                Settle::Finish(reason) => {
                    let began = Instant::now();
                    self.finish(i, reason, now);
                    putting_away += began.elapsed();
                    false
                }
            };
            if stays {
                i += 1;
            }
        }
        let seconds = started.elapsed().saturating_sub(putting_away).as_secs_f64();
        if step.prefilled >= MIN_TIMED_PREFILL {
            self.restore_or_compute.prefilled(step.prefilled, seconds);
        }
        if step.prefilled == 0 {
            self.costs.record(step.passes, step.rows, seconds);
            self.payoff
                .record(step.decoding, step.drafted, accepted_in_step, seconds);
            tracing::trace!(
                decoding = step.decoding,
                drafted = step.drafted,
                accepted = accepted_in_step,
                passes = step.passes,
                ms = seconds * 1000.0,
                "decode step"
            );
        }
        self.publish();
    }

    /// Removes slot `i`'s rejected drafted cells from its KV cache; the next step decodes the
    /// sampled token at the first of their positions. A cache that cannot drop them fails the
    /// request. Returns whether the slot stays.
    fn drop_rejected_draft(&mut self, i: usize) -> bool {
        let seq = self.slots[i].seq;
        let from = self.slots[i].n_past as u32;
        if self
            .ctx
            .clear_kv_cache_seq(Some(seq as u32), Some(from), None)
            .unwrap_or(false)
        {
            return true;
        }
        let slot = self.slots.remove(i);
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        release_seq(&mut self.free_seqs, seq);
        self.publish();
        let _ = slot.events.send(Event::Error(EngineError::Decode(
            "the KV cache could not drop rejected draft tokens".into(),
        )));
        false
    }

    /// Ends slot `i`: its drafter's n-grams are remembered, the KV of its prompt and answer is
    /// kept for the next request on its sequence, and the client hears `Done` after the
    /// counters are published (so stats never show a ghost).
    fn finish(&mut self, i: usize, reason: FinishReason, now: Instant) {
        // `remove`, not `swap_remove`: slots stay in arrival order for prefill fairness.
        let slot = self.slots.remove(i);
        if let Some(drafter) = &slot.drafter {
            self.history.remember(drafter);
        }
        // Keep the KV of the prompt and the answer for the next request on this sequence (or
        // the prompt cache): the next turn of a chat resends both. Drafted cells past the last
        // decoded token go.
        let tokens = slot.decoded_tokens();
        let kept = self
            .ctx
            .clear_kv_cache_seq(Some(slot.seq as u32), Some(tokens.len() as u32), None)
            .unwrap_or(false);
        self.retained[slot.seq as usize] = if kept {
            tokens
        } else {
            let _ = self
                .ctx
                .clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            Vec::new()
        };
        release_seq(&mut self.free_seqs, slot.seq);
        self.publish();
        slot.finish(reason, now);
    }

    /// Makes the slot counters visible to `stats()`. KV use is read from llama.cpp's cache
    /// itself: every cell a sequence holds, less the prompt prefixes free sequences keep on
    /// purpose for reuse, so a cell left behind (a rejected draft, a cancelled request) shows.
    fn publish(&self) {
        let held: usize = (0..self.retained.len() as i32)
            .map(|seq| (self.ctx.kv_cache_seq_pos_max(seq) + 1).max(0) as usize)
            .sum();
        let kept: usize = self.retained.iter().map(Vec::len).sum();
        self.shared
            .kv_used
            .store(held.saturating_sub(kept), Ordering::SeqCst);
        self.shared.active.store(self.slots.len(), Ordering::SeqCst);
    }

    /// Leaves the counters at rest once the thread ends, and the long prompts the engine
    /// holds (the prompt cache's, and what free sequences retain) on disk for the next engine
    /// of this model.
    fn stop(mut self) {
        if self.disk.is_some() {
            let mut states = self.prompt_cache.drain();
            for seq in 0..self.retained.len() {
                let tokens = std::mem::take(&mut self.retained[seq]);
                if tokens.len() >= MIN_DISK_TOKENS && self.free_seqs.contains(&(seq as i32)) {
                    match get_state(&self.ctx, seq as i32) {
                        Ok(state) => states.push((tokens, state)),
                        Err(e) => {
                            tracing::warn!(seq, error = %e, "cannot save a prefix at shutdown")
                        }
                    }
                }
            }
            self.keep_on_disk(states);
        }
        self.shared.active.store(0, Ordering::SeqCst);
        self.shared.kv_used.store(0, Ordering::SeqCst);
        tracing::debug!(acceptance = ?self.acceptance, costs = ?self.costs, "speculation learned");
    }
}

/// A sequence's KV state as llama.cpp serialises it: plain bytes, so the prompt cache can
/// keep it in memory and its disk tier can write it (llama-cpp-2's `SeqState` keeps its bytes
/// to itself).
pub(super) struct StateBytes(Vec<u8>);

impl Saved for StateBytes {
    fn byte_len(&self) -> usize {
        self.0.len()
    }
}

/// The state of `seq`.
fn get_state(ctx: &LlamaContext, seq: i32) -> Result<StateBytes, String> {
    let flags = LlamaStateSeqFlags::empty();
    let size = ctx.state_seq_get_size_ext(seq, flags);
    let mut bytes = vec![0u8; size];
    // SAFETY: `bytes` holds the `size` bytes llama.cpp just reported for this sequence's state,
    // and nothing else uses the context in between (the engine thread owns it).
    let written = unsafe { ctx.state_seq_get_data_ext(bytes.as_mut_ptr(), seq, flags) };
    if written != size {
        return Err(format!(
            "llama.cpp wrote {written} state bytes of the {size} it announced"
        ));
    }
    Ok(StateBytes(bytes))
}

/// Restores `state` (from [`get_state`]) onto `seq`.
fn set_state(ctx: &mut LlamaContext, state: &[u8], seq: i32) -> Result<(), String> {
    // SAFETY: every state comes from `get_state` on a context of the same model file, llama.cpp
    // build and KV layout: in memory from this context, from disk only when the file's key
    // says so and its checksum holds. llama.cpp checks the sizes it reads against its own.
    let restored = unsafe { ctx.state_seq_set_data_ext(state, seq, LlamaStateSeqFlags::empty()) };
    if restored {
        Ok(())
    } else {
        Err("llama.cpp refused the state".into())
    }
}

/// Host memory for the prompt cache: what the slots' KV cache takes (so it holds as many tokens
/// as all slots together: 16 five-turn chats take turns on 8 slots without losing their
/// histories), or 256 MiB when the model's KV size is unknown; less when the memory budget
/// leaves less beside the model.
fn prompt_cache_bytes(info: &ModelInfo, options: &EngineOptions) -> usize {
    const UNKNOWN: u64 = 256 << 20;
    let kv = info.kv_bytes_per_token.map_or(UNKNOWN, |per_token| {
        per_token * u64::from(options.n_ctx) * u64::from(options.parallel)
    });
    let bytes = kv.min(options.prompt_cache_bytes.unwrap_or(u64::MAX));
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Whether a sequence's cache still holds every position the token after a reused prefix of
/// `reuse` tokens attends to, given the cache's lowest position (`pos_min`, -1 when empty): all
/// of them for full attention, the last `window` for sliding-window layers (llama.cpp masks a
/// cell when `query_pos - cell_pos >= window`). Full-attention layers of a mixed model never
/// lose their prefix; `pos_min` is the sliding-window cache's then.
fn prefix_intact(pos_min: i32, reuse: usize, window: Option<usize>) -> bool {
    if reuse == 0 {
        return true;
    }
    let needed = window.map_or(0, |w| (reuse + 1).saturating_sub(w));
    usize::try_from(pos_min).is_ok_and(|min| min <= needed)
}

/// Each slot's prompt chunk this step, in slot (arrival) order: `remaining` is `None` for a
/// generating slot (it gets 0) and the prompt tokens still to prefill otherwise; `reserved`
/// rows (generated tokens and drafts) are served first (see [`plan_prefill`]).
fn prefill_chunks(n_batch: usize, reserved: usize, remaining: &[Option<usize>]) -> Vec<usize> {
    let prefilling: Vec<usize> = remaining.iter().flatten().copied().collect();
    let mut chunks = plan_prefill(n_batch, reserved, &prefilling).into_iter();
    remaining
        .iter()
        .map(|r| match r {
            Some(_) => chunks.next().unwrap_or(0),
            None => 0,
        })
        .collect()
}

/// Slot indices in ascending sequence id: the order llama.cpp fuses into one ubatch.
fn batch_order(seqs: &[i32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| seqs[i]);
    order
}

/// What a sampled sequence does next.
#[derive(Debug, PartialEq)]
enum Settle {
    /// Keeps generating; every drafted cell it decoded is now its own.
    Continue,
    /// Keeps generating, but some drafted cells were wrong and must leave its KV cache.
    DropRejectedDraft,
    /// The answer is over.
    Finish(FinishReason),
}

/// The decision after sampling a sequence that drafted `drafted` tokens of which `accepted`
/// were kept. A finished sequence frees its cells anyway, rejected draft or not.
fn settle(finish: Option<FinishReason>, drafted: usize, accepted: usize) -> Settle {
    match finish {
        Some(reason) => Settle::Finish(reason),
        None if drafted > accepted => Settle::DropRejectedDraft,
        None => Settle::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generating_slots_get_no_chunk_and_prompts_share_the_rest_in_arrival_order() {
        // Slots: prefilling 300, generating, prefilling 300, prefilling 5; 1 generated row and
        // 3 drafted rows come first.
        let remaining = [Some(300), None, Some(300), Some(5)];
        assert_eq!(prefill_chunks(512, 4, &remaining), vec![300, 0, 208, 0]);
        assert_eq!(prefill_chunks(512, 0, &[None, None]), vec![0, 0]);
        assert_eq!(prefill_chunks(8, 8, &[Some(3)]), vec![0]);
        assert_eq!(prefill_chunks(512, 0, &[]), Vec::<usize>::new());
    }

    #[test]
    fn the_batch_is_laid_out_in_ascending_sequence_id() {
        assert_eq!(batch_order(&[2, 0, 3, 1]), vec![1, 3, 0, 2]);
        assert_eq!(batch_order(&[0, 1]), vec![0, 1]);
        assert_eq!(batch_order(&[]), Vec::<usize>::new());
    }

    #[test]
    fn a_reused_prefix_needs_every_cell_its_next_token_attends_to() {
        // Nothing reused: nothing needed.
        assert!(prefix_intact(-1, 0, None));
        // Full attention: the prefix from position 0.
        assert!(prefix_intact(0, 100, None));
        assert!(!prefix_intact(1, 100, None));
        assert!(!prefix_intact(-1, 100, None));
        // A 512-token window: the token at position 1000 sees positions 489..=1000.
        assert!(prefix_intact(489, 1000, Some(512)));
        assert!(!prefix_intact(490, 1000, Some(512)));
        // A prefix shorter than the window needs it all.
        assert!(prefix_intact(0, 100, Some(512)));
        assert!(!prefix_intact(1, 100, Some(512)));
        // The window's cells were all pruned.
        assert!(!prefix_intact(-1, 1000, Some(512)));
    }

    #[test]
    fn a_finished_sequence_frees_its_cells_whatever_its_draft_did() {
        assert_eq!(settle(None, 0, 0), Settle::Continue);
        assert_eq!(settle(None, 4, 4), Settle::Continue);
        assert_eq!(settle(None, 4, 1), Settle::DropRejectedDraft);
        assert_eq!(
            settle(Some(FinishReason::Stop), 4, 1),
            Settle::Finish(FinishReason::Stop)
        );
        assert_eq!(
            settle(Some(FinishReason::Length), 0, 0),
            Settle::Finish(FinishReason::Length)
        );
    }
}
