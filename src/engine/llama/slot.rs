//! One admitted request on the engine thread: its sequence id, how far its prompt is
//! prefilled, its samplers (constraint and chain), its n-gram drafter, the stop-string matcher and
//! UTF-8 buffer its text passes through, and the events it sends back.
//!
//! Everything here concerns one sequence only; which sequences share a step, and what happens
//! to their KV cells, is the scheduler's business (`scheduler.rs`).

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use llguidance::Matcher;
use tokio::sync::mpsc::UnboundedSender;

use super::Job;
use crate::engine::json_close;
use crate::engine::speculative::{Acceptance, Drafter};
use crate::engine::text::{StopMatcher, Utf8Buffer};
use crate::engine::{Completion, Event, FinishReason, SamplingParams, Timings, Usage};

/// One admitted request: its sequence id, progress and sampler.
pub(super) struct Slot {
    pub(super) seq: i32,
    pub(super) prompt: Vec<LlamaToken>,
    pub(super) n_prefilled: usize,
    /// Every token sampled so far, end-of-generation tokens included: with the prompt, what
    /// the sequence's KV cells hold (all but the last sampled one, which is decoded next).
    answer: Vec<LlamaToken>,
    /// Prompt tokens whose KV was kept from the sequence's previous request.
    pub(super) reused: usize,
    /// Position of the next token to decode.
    pub(super) n_past: usize,
    pub(super) last_token: LlamaToken,
    sampler: Samplers,
    pub(super) events: UnboundedSender<Event>,
    utf8: Utf8Buffer,
    stop: StopMatcher,
    generated: usize,
    max_tokens: usize,
    ignore_eos: bool,
    submitted: Instant,
    admitted: Instant,
    first_token: Option<Instant>,
    /// Index in the current batch whose logits to sample, if any.
    pub(super) batch_index: Option<i32>,
    /// Drafting state, when speculation is on.
    pub(super) drafter: Option<Drafter>,
    /// Tokens drafted for this step; decoded right after `last_token`.
    pub(super) draft: Vec<LlamaToken>,
    /// For a structured answer: closes it when the budget would cut it.
    closer: Option<Closer>,
    /// Tokens drafted and accepted over the request (llama-server's `draft_n`,
    /// `draft_n_accepted`).
    draft_n: usize,
    draft_n_accepted: usize,
}

/// Keeps a structured (JSON) answer parseable when `max_tokens` or the context would cut it:
/// before each token is taken, the shortest text that completes the answer with that token
/// ([`json_close::AnswerCloser`], which carries its parse from token to token) must still fit
/// in what the budget leaves after it;
/// when it would not, the answer ends with the completion of the text so far instead (which
/// fit a step earlier). The answer then parses and validates, and says `finish_reason: length`
/// as any answer the budget ended.
struct Closer {
    schema: json_close::AnswerCloser,
    /// The schema itself: a closed answer is checked against it before it is sent (the
    /// closer knows a subset of what the constraint enforces; see [`Closer::validates`]).
    source: serde_json::Value,
    /// The answer so far, as the tokens spelled it (bytes: a token may end mid-character).
    text: Vec<u8>,
    /// The completion of `text` and the tokens it takes, when it has one.
    closing: Option<(String, usize)>,
}

impl Closer {
    fn new((source, schema): (serde_json::Value, json_close::AnswerCloser)) -> Self {
        Self {
            schema,
            source,
            text: Vec::new(),
            closing: None,
        }
    }

    /// Whether the answer closed with `tail` is valid against the schema, formats included.
    /// The constraint enforces more of JSON Schema than the closer can finish (`multipleOf`,
    /// formats such as `email`, `patternProperties`): a completion that would break one of
    /// them is not sent, and the answer ends where the budget cuts it, as any answer would.
    fn validates(&self, tail: &str) -> bool {
        let whole = String::from_utf8_lossy(&self.text) + tail;
        let Ok(document) = serde_json::from_str::<serde_json::Value>(&whole) else {
            return false;
        };
        jsonschema::options()
            .should_validate_formats(true)
            .build(&self.source)
            .is_ok_and(|v| v.is_valid(&document))
    }

    /// Takes `piece` into the answer; the completion of the answer so far and its length in
    /// tokens.
    fn push(&mut self, piece: &[u8], model: &LlamaModel) -> Option<(String, usize)> {
        let tail = self.schema.push(piece)?;
        let tokens = if tail.is_empty() {
            0
        } else {
            model.vocab().tokenize(tail.as_bytes(), false, false).len()
        };
        Some((tail, tokens))
    }
}

/// The sequence's samplers: its constraint (structured output, forced tool calls), if any,
/// and the usual chain.
pub(super) struct Samplers {
    chain: LlamaSampler,
    guide: Option<Matcher>,
    /// What ends the answer when its constraint fails.
    end_of_text: LlamaToken,
}

impl Samplers {
    pub(super) fn new(
        params: &SamplingParams,
        guide: Option<Matcher>,
        end_of_text: LlamaToken,
    ) -> Self {
        Self {
            chain: sampler_for(params),
            guide,
            end_of_text,
        }
    }

    /// Picks the next token. With a constraint, as llama-server does: sample freely and keep
    /// the token if the constraint allows it (one token checked: a few microseconds); else
    /// sample again among the tokens the constraint's mask allows (only those are handed to
    /// the chain, so a 262k vocabulary costs no more than its allowed few).
    fn sample(&mut self, ctx: &LlamaContext<'_>, index: i32) -> LlamaToken {
        let token = self.chain.sample(ctx, index);
        let Some(guide) = &mut self.guide else {
            return token;
        };
        let id = |t: LlamaToken| t.0.max(0) as u32;
        let token = if guide.validate_tokens(&[id(token)]).is_ok_and(|n| n == 1) {
            token
        } else if let Some(allowed) = resample_within(guide, &mut self.chain, ctx, index) {
            allowed
        } else {
            // The constraint failed (a mask beyond llguidance's per-step fuel, say): the
            // answer ends here rather than go on unconstrained.
            tracing::warn!(
                error = guide.get_error().unwrap_or_default(),
                "the constraint could not say which tokens may follow; the answer ends"
            );
            self.end_of_text
        };
        if !guide.is_stopped() {
            if let Err(e) = guide.consume_token(id(token)) {
                tracing::debug!(error = %e, "the constraint refused a token; it stops here");
            }
        }
        token
    }
}

/// Samples among the tokens `guide` allows at `index` (`None` when its mask cannot be computed
/// or allows nothing: the free pick stands).
fn resample_within(
    guide: &mut Matcher,
    chain: &mut LlamaSampler,
    ctx: &LlamaContext<'_>,
    index: i32,
) -> Option<LlamaToken> {
    let mask = guide.compute_mask_or_eos().ok()?;
    let logits = ctx.get_logits_ith(index);
    let mut allowed = Vec::with_capacity(mask.num_set().min(logits.len()));
    mask.iter_set_entries(|i| {
        if let Some(&logit) = logits.get(i) {
            allowed.push(LlamaTokenData::new(LlamaToken(i as i32), logit, 0.0));
        }
    });
    if allowed.is_empty() {
        return None;
    }
    let mut array = LlamaTokenDataArray::new(allowed, false);
    array.apply_sampler(chain);
    array.selected_token()
}

/// The sampling chain for the request's parameters: greedy at temperature 0 (what makes answers
/// repeatable and batch-invariant), else top-k, top-p, temperature and a seeded draw.
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
    /// Turns an admitted job into a slot on sequence `seq`: the answer may use at most what the
    /// context leaves after the prompt, and a drafter is built from the prompt when the engine
    /// drafts.
    pub(super) fn new(
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
            answer: Vec::new(),
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
            closer: job.closes_as.map(Closer::new),
            draft_n: 0,
            draft_n_accepted: 0,
            prompt: job.tokens,
        }
    }

    /// Whether the whole prompt is in and the sequence adds one sampled token per step (plus
    /// its draft), rather than prompt chunks: decides its place in the batch.
    pub(super) fn is_decoding(&self) -> bool {
        self.first_token.is_some()
    }

    /// Sends text to the client; an empty piece (held back by the UTF-8 buffer or a possible
    /// stop string) is not an event.
    fn emit(&self, text: String) {
        if !text.is_empty() {
            let _ = self.events.send(Event::Token(text));
        }
    }

    /// Handles a sampled token; returns why the sequence ends, if it does: an
    /// end-of-generation token (llama.cpp's set, plus the template's `end_of_turn` ones), a
    /// stop string, or `max_tokens`.
    fn accept(
        &mut self,
        token: LlamaToken,
        model: &LlamaModel,
        end_of_turn: &[LlamaToken],
        now: Instant,
    ) -> Option<FinishReason> {
        if self.first_token.is_none() {
            self.first_token = Some(now);
            self.n_past = self.prompt.len();
        } else {
            self.n_past += 1;
        }
        self.answer.push(token);
        if let Some(drafter) = &mut self.drafter {
            drafter.push(token.0);
        }
        let vocab = model.vocab();
        if (vocab.is_eog(token) || end_of_turn.contains(&token)) && !self.ignore_eos {
            return Some(FinishReason::Stop);
        }
        let piece = vocab.token_to_piece(token, false, None);
        if let Some(reason) = self.close_before(&piece, model) {
            return Some(reason);
        }
        self.generated += 1;
        self.last_token = token;
        let text = self.utf8.push(&piece);
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

    /// With a [`Closer`]: whether taking `piece` would leave too little budget to close the
    /// answer; if so, the completion of the text so far is sent instead and the answer ends
    /// (`Length`). Without a closer, or when the answer cannot be closed in the budget anyway,
    /// nothing happens.
    fn close_before(&mut self, piece: &[u8], model: &LlamaModel) -> Option<FinishReason> {
        let left = self.max_tokens.saturating_sub(self.generated);
        let closer = self.closer.as_mut()?;
        if closer.text.is_empty() && closer.closing.is_none() {
            // The smallest whole answer, before any token.
            closer.closing = closer.push(&[], model);
        }
        // The closer takes the piece now; if the answer ends here instead, it is dropped.
        let next = closer.push(piece, model);
        let fits_after = next.as_ref().is_some_and(|(_, n)| *n < left);
        let before_fits = closer.closing.as_ref().is_some_and(|(_, n)| *n <= left);
        if fits_after || !before_fits {
            closer.text.extend_from_slice(piece);
            closer.closing = next;
            return None;
        }
        let closer = self.closer.take()?;
        let (tail, tokens) = closer.closing.as_ref()?;
        if !closer.validates(tail) {
            tracing::debug!(
                tail,
                "the closing would not validate against the schema; the answer is cut instead"
            );
            return None;
        }
        let (tail, tokens) = (tail.clone(), *tokens);
        self.generated += tokens;
        let text = self.utf8.push(tail.as_bytes());
        let scan = self.stop.push(&text);
        self.emit(scan.emit);
        Some(FinishReason::Length)
    }

    /// The tokens whose KV the sequence holds once it is trimmed to `n_past` cells: the
    /// prompt and the answer but its last token (sampled, never decoded). Kept after the
    /// request ends, so the next turn of a chat, which resends this answer, reuses it too.
    pub(super) fn decoded_tokens(&self) -> Vec<LlamaToken> {
        let mut tokens = Vec::with_capacity(self.n_past);
        tokens.extend_from_slice(&self.prompt);
        tokens.extend_from_slice(&self.answer);
        tokens.truncate(self.n_past);
        tokens
    }

    /// Most tokens this sequence may draft now: what `max_tokens` leaves after the token the
    /// step samples anyway, what the context leaves, and its share of the batch.
    pub(super) fn draft_room(&self, n_ctx: usize, share: usize) -> usize {
        draft_room(self.max_tokens, self.generated, self.n_past, n_ctx, share)
    }

    /// Samples this step's token at `index`, then walks the draft decoded after it: each
    /// drafted token that equals what the sequence's own sampler picks at that position is
    /// kept, up to the first that differs. Sampling stays exactly as without drafts (greedy
    /// gives the same text; a seeded sampler draws the same numbers). Returns why the sequence
    /// ends, if it does, and how many drafted tokens were accepted.
    pub(super) fn sample_step(
        &mut self,
        index: i32,
        ctx: &LlamaContext<'_>,
        model: &LlamaModel,
        end_of_turn: &[LlamaToken],
        now: Instant,
        acceptance: &mut Acceptance,
    ) -> (Option<FinishReason>, usize) {
        let draft = std::mem::take(&mut self.draft);
        let mut accepted = 0;
        let mut rejected = false;
        let finish = loop {
            let token = self.sampler.sample(ctx, index + accepted as i32);
            if let Some(reason) = self.accept(token, model, end_of_turn, now) {
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

    /// Ends the request: flushes what the UTF-8 buffer and stop matcher still hold, then sends
    /// `Done` with the usage and timings the API reports. Consumes the slot, so nothing can be
    /// sent after `Done`.
    pub(super) fn finish(mut self, reason: FinishReason, now: Instant) {
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

/// [`Slot::draft_room`] on plain numbers, so the limits are tested without a model.
fn draft_room(
    max_tokens: usize,
    generated: usize,
    n_past: usize,
    n_ctx: usize,
    share: usize,
) -> usize {
    let tokens_left = max_tokens.saturating_sub(generated + 1);
    let cells_left = n_ctx.saturating_sub(n_past + 1);
    tokens_left.min(cells_left).min(share.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_never_outgrows_max_tokens_the_context_or_its_share_of_the_batch() {
        // Plenty of everything: the share of the batch (less the sampled token) bounds it.
        assert_eq!(draft_room(1000, 0, 100, 4096, 64), 63);
        // Two tokens left to generate: the step samples one, so one may be drafted.
        assert_eq!(draft_room(10, 8, 100, 4096, 64), 1);
        assert_eq!(draft_room(10, 9, 100, 4096, 64), 0);
        assert_eq!(draft_room(10, 10, 100, 4096, 64), 0);
        // The context is nearly full.
        assert_eq!(draft_room(1000, 0, 4090, 4096, 64), 5);
        assert_eq!(draft_room(1000, 0, 4095, 4096, 64), 0);
        // No share of the batch left.
        assert_eq!(draft_room(1000, 0, 100, 4096, 0), 0);
    }
}
