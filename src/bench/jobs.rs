//! What each round sends: the jobs of a round (prompt, nonce, lengths), shaped to the workload
//! (generated prompts of drawn token lengths, drawn answer lengths, depth context).

use super::client::Job;
use super::options::{requests_per_round, BenchOptions, PromptCache};
use super::{load, workload};
use crate::store::record::LoadShape;

/// The jobs of one round: the prompt set in order, each with its cold-cache nonce.
pub(super) fn jobs_for_round(
    options: &BenchOptions,
    shape: &LoadShape,
    round: u32,
    run_id: &str,
) -> Vec<Job> {
    let n = requests_per_round(options, shape);
    (0..n)
        .map(|i| {
            let spec = &options.prompts[i as usize % options.prompts.len()];
            let seq = round * n + i;
            let nonce = match options.prompt_cache {
                PromptCache::Warm => String::new(),
                PromptCache::Cold => {
                    let run = &run_id[run_id.len().saturating_sub(4)..];
                    format!("(ref {run}-{}-{seq}) ", shape.label())
                }
            };
            Job {
                prompt_id: spec.id.clone(),
                nonce,
                prompt: spec.prompt.clone(),
                max_tokens: spec.max_tokens.unwrap_or(options.max_tokens),
                round,
                seq,
                response_format: spec.response_format.clone(),
            }
        })
        .collect()
}

/// Gives a round's jobs the workload's lengths: generated prompts of the drawn token lengths
/// (each distinct, beginning with the cold-cache nonce when there is one), answers of the
/// drawn lengths, and `depth` tokens of filler context before each prompt (distinct per
/// request when cold, so no prefix cache flatters a depth). Counts in `misses` texts that
/// could not be fitted exactly.
pub(super) async fn shape_jobs(
    options: &BenchOptions,
    ctx: &load::LevelContext,
    tokenizer: bool,
    depth: Option<u32>,
    jobs: &mut [Job],
    misses: &mut u32,
) {
    // Per level, so two levels never send the same text.
    let level_seed = ctx
        .level
        .bytes()
        .fold(options.seed, |h, b| h.rotate_left(5) ^ u64::from(b));
    let per_round = jobs.len().max(1) as u64;
    for job in jobs.iter_mut() {
        // Warm: the same lengths and texts every round, so later rounds hit the prompt cache.
        let seq = match options.prompt_cache {
            PromptCache::Cold => u64::from(job.seq),
            PromptCache::Warm => u64::from(job.seq) % per_round,
        };
        if let Some(output) = options.output_tokens {
            job.max_tokens = output.draw(options.seed ^ 0x6f75_7470, seq);
        }
        // Cold: texts differ per level and request; warm: the same every round and level.
        let text_seed = match options.prompt_cache {
            PromptCache::Cold => level_seed,
            PromptCache::Warm => options.seed,
        };
        if let Some(input) = options.input_tokens {
            let tokens = input.draw(options.seed ^ 0x696e_7075, seq);
            let seed = text_seed ^ seq.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let (prompt, exact) = workload::fitted_prompt(
                &ctx.http,
                &ctx.endpoint,
                tokenizer,
                &job.nonce,
                tokens,
                seed,
            )
            .await;
            if !exact {
                *misses += 1;
            }
            job.prompt_id = format!("generated-{tokens}");
            job.prompt = prompt;
        }
        if let Some(depth) = depth.filter(|d| *d > 0) {
            let seed = text_seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x6465_7074;
            let (context, exact) =
                workload::fitted_prompt(&ctx.http, &ctx.endpoint, tokenizer, "", depth, seed).await;
            if !exact {
                *misses += 1;
            }
            // The nonce stays first (it is sent before the prompt), so even the context's first
            // words differ per request.
            job.prompt = format!("{context}\n\n{}", job.prompt);
        }
    }
}
