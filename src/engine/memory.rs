//! Will a model fit? An estimate made before loading (weights + KV cache + working buffers)
//! checked against the memory available, so an oversized model is refused with a clear
//! message instead of being killed by the OS halfway through a load.

use serde::Serialize;

use crate::text::human_bytes;

/// Working buffers llama.cpp allocates besides weights and KV cache (compute graph, logits).
/// Measured on the default model at n_batch 512: ~60 MiB; rounded up for larger vocabularies.
const OVERHEAD_BYTES: u64 = 96 * 1024 * 1024;

/// The parts of a model's memory need.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Model weights (mapped from the file).
    pub weights_bytes: u64,
    /// Weights the CPU backend copies into its interleaved ("repacked") layout for faster
    /// kernels; the mapped originals stay resident too, so these count twice.
    pub repacked_bytes: u64,
    /// KV cache for the whole context (all sequences).
    pub kv_cache_bytes: u64,
    /// Compute buffers and the rest.
    pub overhead_bytes: u64,
}

// What the CPU backend repacks is a fact of the file's tensors on this CPU, read with the
// file (`gguf`); the estimate only adds it.
pub use crate::gguf::{repacked_bytes, TensorBytes};

/// Working memory a loaded model touches besides weights and KV cache: llama.cpp reserves
/// compute buffers for a 512-token batch of about 512 × 4 × (vocabulary + 5 × width) bytes
/// (the logits of every batch position dominate), of which a prefill touches about 37 %, plus
/// ~8 MiB of the process's own. Fitted to peak RSS measured on six models from 135M to 2.6B
/// (`perf/shape-models.sh`), within 2 % of the total for every model of 1B or more.
pub fn working_bytes(n_vocab: u64, n_embd: u64) -> u64 {
    let reserved = 512 * 4 * (n_vocab + 5 * n_embd);
    reserved * 37 / 100 + 8 * 1024 * 1024
}

impl MemoryEstimate {
    /// Estimate for `weights_bytes` of weights and `n_ctx_total` context tokens, with the
    /// fixed allowance for buffers (when the vocabulary and width are not known).
    pub fn new(weights_bytes: u64, kv_bytes_per_token: u64, n_ctx_total: u64) -> Self {
        Self {
            weights_bytes,
            repacked_bytes: 0,
            kv_cache_bytes: kv_bytes_per_token * n_ctx_total,
            overhead_bytes: OVERHEAD_BYTES,
        }
    }

    /// Estimate with repacked weights and working buffers from the model's own facts.
    pub fn measured_model(
        weights_bytes: u64,
        repacked_bytes: u64,
        kv_bytes_per_token: u64,
        n_ctx_total: u64,
        working_bytes: u64,
    ) -> Self {
        Self {
            weights_bytes,
            repacked_bytes,
            kv_cache_bytes: kv_bytes_per_token * n_ctx_total,
            overhead_bytes: working_bytes,
        }
    }

    /// The sum.
    pub fn total_bytes(&self) -> u64 {
        self.weights_bytes + self.repacked_bytes + self.kv_cache_bytes + self.overhead_bytes
    }

    /// Whether the estimate fits in `budget_bytes`.
    pub fn fits(&self, budget_bytes: u64) -> bool {
        self.total_bytes() <= budget_bytes
    }

    /// Host memory the engine's prompt cache may grow to beside this: as much as the KV cache
    /// (so every slot's history survives a turn away from its slot), but no more than half of
    /// what `budget_bytes` leaves beside the model and its slots. A long-running server reaches
    /// it; the estimate itself leaves it out, since the cache only fills what is left.
    pub fn prompt_cache_bytes(&self, budget_bytes: u64) -> u64 {
        self.kv_cache_bytes
            .min(budget_bytes.saturating_sub(self.total_bytes()) / 2)
    }
}

/// Context per slot the automatic sizing starts from when the user sets none (shortened to fit
/// the memory budget, capped at the model's trained context).
pub const DEFAULT_CTX: u32 = 4096;

/// Slots `hearth serve` starts from when the user sets none (fewer when their KV cache does not
/// fit the memory budget).
pub const DEFAULT_SLOTS: u32 = 8;

/// Smallest per-slot context the automatic sizing offers: below it a chat with a system prompt
/// does not fit, and refusing is clearer.
pub const MIN_AUTO_CTX: u32 = 512;

/// The slots a model is loaded with: how many sequences, each with how much context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotPlan {
    /// Sequences decoded together.
    pub parallel: u32,
    /// Context per sequence, in tokens.
    pub n_ctx: u32,
    /// Why these numbers, for `ps` and `model info`.
    pub why: String,
}

impl SlotPlan {
    /// KV cells over all slots: the context the memory estimate is asked for.
    pub fn kv_cells(&self) -> u64 {
        u64::from(self.n_ctx) * u64::from(self.parallel)
    }
}

/// What the user asked for: a number they set is kept, a `None` is chosen here, starting from
/// the default.
#[derive(Clone, Copy, Debug)]
pub struct SlotWish {
    /// `--parallel`, when given.
    pub parallel: Option<u32>,
    /// `--ctx` (or the `ctx` setting), when given, capped at the trained context.
    pub n_ctx: Option<u32>,
    /// Slots when not given.
    pub default_parallel: u32,
    /// Context when not given (already capped at the trained context).
    pub default_ctx: u32,
}

/// Sizes the slots from the memory budget. A model sized automatically keeps its KV cache
/// within half the budget less its own fixed part (weights, repacked copies, buffers), which
/// leaves room for a second small model, the prompt cache and the OS — unless the model alone is
/// that large, when it may use what the whole budget leaves. Slots go first (down to one), then
/// context (halving, down to [`MIN_AUTO_CTX`]), since one long conversation is more useful than
/// many that cannot hold a document. What the user set is never changed; whether it fits is
/// then checked as before. Err when even one slot of the smallest context does not fit.
pub fn plan_slots(
    fixed_bytes: u64,
    kv_bytes_per_token: u64,
    budget_bytes: u64,
    wish: SlotWish,
) -> Result<SlotPlan, String> {
    let per_token = kv_bytes_per_token.max(1);
    let parallel = wish.parallel.unwrap_or(wish.default_parallel).max(1);
    let n_ctx = wish.n_ctx.unwrap_or(wish.default_ctx).max(1);
    let kv = |p: u32, c: u32| u64::from(p) * u64::from(c) * per_token;
    if wish.parallel.is_some() && wish.n_ctx.is_some() {
        return Ok(SlotPlan {
            parallel,
            n_ctx,
            why: "as asked".into(),
        });
    }
    let alone = budget_bytes.saturating_sub(fixed_bytes);
    let half = (budget_bytes / 2).saturating_sub(fixed_bytes);
    let room = if half >= kv(1, MIN_AUTO_CTX.min(n_ctx)) {
        half
    } else {
        alone
    };
    let room_text = if room == half {
        format!(
            "half the memory budget ({}) less the model ({}) leaves {} for KV",
            human_bytes(budget_bytes / 2),
            human_bytes(fixed_bytes),
            human_bytes(room)
        )
    } else {
        format!(
            "the memory budget ({}) less the model ({}) leaves {} for KV",
            human_bytes(budget_bytes),
            human_bytes(fixed_bytes),
            human_bytes(room)
        )
    };
    let fits_slots = u32::try_from(room / kv(1, n_ctx)).unwrap_or(u32::MAX);
    // Slots first, at the wished context.
    if wish.parallel.is_none() && fits_slots >= 1 {
        let chosen = parallel.min(fits_slots);
        let why = if chosen == parallel {
            format!(
                "{chosen} × {n_ctx} tokens need {} of KV; {room_text}",
                human_bytes(kv(chosen, n_ctx))
            )
        } else {
            format!(
                "{chosen} slots, not {parallel}: {parallel} × {n_ctx} tokens would need {} of KV; {room_text}",
                human_bytes(kv(parallel, n_ctx))
            )
        };
        return Ok(SlotPlan {
            parallel: chosen,
            n_ctx,
            why,
        });
    }
    if wish.n_ctx.is_some() {
        // Slots are automatic but not even one fits in the share: one slot, if the whole
        // budget holds it (checked again when loading).
        return Ok(SlotPlan {
            parallel: 1,
            n_ctx,
            why: format!(
                "1 slot: one slot of {n_ctx} tokens needs {} of KV; {room_text}",
                human_bytes(kv(1, n_ctx))
            ),
        });
    }
    // Then context, in steps of 256 tokens, for the slots asked for (or one).
    let slots = if wish.parallel.is_some() { parallel } else { 1 };
    let fitting = (room / kv(slots, 1)).min(u64::from(n_ctx)) as u32;
    if fitting == n_ctx {
        return Ok(SlotPlan {
            parallel: slots,
            n_ctx,
            why: format!(
                "{slots} × {n_ctx} tokens need {} of KV; {room_text}",
                human_bytes(kv(slots, n_ctx))
            ),
        });
    }
    let fitting = fitting / 256 * 256;
    if fitting >= MIN_AUTO_CTX.min(n_ctx) {
        return Ok(SlotPlan {
            parallel: slots,
            n_ctx: fitting,
            why: format!(
                "{fitting} tokens per slot, not {n_ctx}: {slots} × {n_ctx} would need {} of KV; {room_text}",
                human_bytes(kv(slots, n_ctx))
            ),
        });
    }
    Err(format!(
        "even {slots} slot(s) of {} tokens need {} of KV cache, but {room_text}",
        MIN_AUTO_CTX.min(n_ctx),
        human_bytes(kv(slots, MIN_AUTO_CTX.min(n_ctx)))
    ))
}

/// Resident memory of this process, bytes (0 where it cannot be read): what the server's
/// models, slots and caches hold together, for `/api/status` and the web UI.
pub fn own_resident_bytes() -> u64 {
    crate::process::Snapshot::of(std::process::id(), true).map_or(0, |p| p.process().memory())
}

/// Memory the OS reports available right now, in bytes.
pub fn available_bytes() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.available_memory()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn the_prompt_cache_gets_the_kv_size_or_half_of_what_is_left() {
        let est = MemoryEstimate::new(GIB, MIB, 256);
        let total = est.total_bytes();
        assert_eq!(est.prompt_cache_bytes(total + 8 * GIB), 256 * MIB);
        assert_eq!(est.prompt_cache_bytes(total + 200 * MIB), 100 * MIB);
        assert_eq!(est.prompt_cache_bytes(total - 1), 0, "over budget: none");
    }

    fn wish(parallel: Option<u32>, n_ctx: Option<u32>) -> SlotWish {
        SlotWish {
            parallel,
            n_ctx,
            default_parallel: 8,
            default_ctx: 4096,
        }
    }

    #[test]
    fn defaults_stand_when_the_kv_cache_fits_in_half_the_budget() {
        // The default model: 23 KiB per token, 8 × 4096 = 720 MiB of KV.
        let plan = plan_slots(200 * MIB, 23_040, 20 * GIB, wish(None, None)).unwrap();
        assert_eq!((plan.parallel, plan.n_ctx), (8, 4096));
        assert!(plan.why.contains("half the memory budget"), "{}", plan.why);
    }

    #[test]
    fn a_7b_model_gets_fewer_slots_and_leaves_room_for_a_second_model() {
        // A 7B model with grouped-query attention (128 KiB per token) at Q4 (~4.4 GiB with its
        // buffers) on a 24 GiB machine: 8 × 4096 would need 4 GiB of KV.
        let fixed = 4_400 * MIB;
        for (budget, slots) in [(20 * GIB, 8), (14 * GIB, 5)] {
            let plan = plan_slots(fixed, 128 * 1024, budget, wish(None, None)).unwrap();
            assert_eq!((plan.parallel, plan.n_ctx), (slots, 4096), "{plan:?}");
            let total = fixed + u64::from(plan.parallel) * 4096 * 128 * 1024;
            assert!(total <= budget / 2, "{plan:?}: {total}");
        }
        let plan = plan_slots(fixed, 128 * 1024, 14 * GIB, wish(None, None)).unwrap();
        assert!(plan.why.contains("not 8"), "{}", plan.why);
        // Without grouped-query attention (512 KiB per token): one slot, shorter context.
        let plan = plan_slots(fixed, 512 * 1024, 12 * GIB, wish(None, None)).unwrap();
        assert_eq!(plan.parallel, 1);
        assert!(plan.n_ctx < 4096 && plan.n_ctx >= MIN_AUTO_CTX, "{plan:?}");
        assert_eq!(plan.n_ctx % 256, 0);
    }

    #[test]
    fn what_the_user_set_is_kept() {
        let plan = plan_slots(GIB, GIB, 2 * GIB, wish(Some(8), Some(4096))).unwrap();
        assert_eq!(
            (plan.parallel, plan.n_ctx, plan.why.as_str()),
            (8, 4096, "as asked")
        );
        // --parallel 4 set: the context shrinks to fit 4 slots.
        let plan = plan_slots(200 * MIB, MIB / 4, 4 * GIB, wish(Some(4), None)).unwrap();
        assert_eq!((plan.parallel, plan.n_ctx), (4, 1792), "{plan:?}");
        assert!(plan.why.contains("not 4096"), "{}", plan.why);
        let plan = plan_slots(200 * MIB, 1024, 4 * GIB, wish(Some(4), None)).unwrap();
        assert_eq!((plan.parallel, plan.n_ctx), (4, 4096), "{plan:?}");
        // --ctx set: the slots shrink.
        let plan = plan_slots(200 * MIB, MIB, 4 * GIB, wish(None, Some(1024))).unwrap();
        assert_eq!((plan.parallel, plan.n_ctx), (1, 1024));
    }

    #[test]
    fn a_model_that_cannot_hold_one_small_slot_is_refused() {
        let err = plan_slots(3 * GIB, MIB, 3 * GIB + 100 * MIB, wish(None, None)).unwrap_err();
        assert!(err.contains("512 tokens"), "{err}");
        // The model alone is over half the budget: it may use what the whole budget leaves.
        let plan = plan_slots(3 * GIB, MIB, 4 * GIB, wish(None, None)).unwrap();
        assert_eq!((plan.parallel, plan.n_ctx), (1, 1024));
        assert!(plan.why.contains("the memory budget"), "{}", plan.why);
    }

    #[test]
    fn estimate_sums_weights_kv_and_overhead() {
        let e = MemoryEstimate::new(1000, 10, 4096);
        assert_eq!(e.kv_cache_bytes, 40960);
        assert_eq!(e.total_bytes(), 1000 + 40960 + OVERHEAD_BYTES);
        assert!(e.fits(e.total_bytes()));
        assert!(!e.fits(e.total_bytes() - 1));
    }
}
