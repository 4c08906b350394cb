//! Admission: which waiting requests join the batch and how much prompt each may prefill in
//! the next decode step. Pure functions, so the policy is tested without a model; the engine
//! thread only applies their decisions.
//!
//! Policy: every generating sequence gets its one token per step first (a new request must
//! never stall the ones already streaming by more than one step's prefill); the remaining batch
//! budget goes to prompts in arrival order, so the oldest request reaches its first token first.
//! Sequence ids are handed out lowest first, so the active ones stay contiguous from 0: with one
//! KV stream per sequence llama.cpp only fuses consecutive, increasing ids into one forward pass
//! (measured: out-of-order ids cost 0.64× llama-server's throughput at 8 concurrent requests).

/// How many queued requests to admit now.
pub fn admit_count(free_slots: usize, queued: usize) -> usize {
    free_slots.min(queued)
}

/// Splits the step's token budget among prompts still being prefilled.
///
/// `n_batch` is the most tokens one decode takes, `decoding` the sequences that each add one
/// token this step, `remaining` the prompt tokens each prefilling sequence still has (in
/// arrival order). Returns the chunk per prefilling sequence (0 = waits this step).
pub fn plan_prefill(n_batch: usize, decoding: usize, remaining: &[usize]) -> Vec<usize> {
    let mut budget = n_batch.saturating_sub(decoding);
    remaining
        .iter()
        .map(|&left| {
            let take = left.min(budget);
            budget -= take;
            take
        })
        .collect()
}

/// Returns a sequence id to the free list, kept in descending order so `pop()` hands out the
/// lowest id: active ids then stay contiguous from 0, which llama.cpp needs to put all of them
/// into one ubatch (see the batch order in `engine_thread`).
pub fn release_seq(free: &mut Vec<i32>, seq: i32) {
    let at = free.partition_point(|&s| s > seq);
    free.insert(at, seq);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_sequences_are_served_before_prefill() {
        assert_eq!(plan_prefill(8, 3, &[10]), vec![5]);
        assert_eq!(plan_prefill(4, 4, &[10, 2]), vec![0, 0]);
    }

    #[test]
    fn prompts_prefill_in_arrival_order_within_budget() {
        assert_eq!(plan_prefill(512, 1, &[300, 300, 5]), vec![300, 211, 0]);
        assert_eq!(plan_prefill(512, 0, &[3, 4]), vec![3, 4]);
        assert_eq!(plan_prefill(512, 0, &[]), Vec::<usize>::new());
    }

    #[test]
    fn freed_sequence_ids_are_reused_lowest_first() {
        let mut free: Vec<i32> = (0..4).rev().collect();
        let taken: Vec<i32> = (0..3).map(|_| free.pop().unwrap()).collect();
        assert_eq!(taken, [0, 1, 2]);
        release_seq(&mut free, 1);
        release_seq(&mut free, 0);
        assert_eq!(free, [3, 1, 0]);
        assert_eq!(free.pop(), Some(0));
    }

    #[test]
    fn admission_never_exceeds_free_slots() {
        assert_eq!(admit_count(2, 5), 2);
        assert_eq!(admit_count(8, 3), 3);
        assert_eq!(admit_count(0, 3), 0);
    }
}
