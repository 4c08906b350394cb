//! The prompt cache beside the slots: KV states of earlier requests (prompt and answer), kept in
//! host memory after their sequence was handed to another request, so a prompt that repeats or
//! extends one of them (a resent system prompt, the next turn of a chat) starts from the cached
//! prefix instead of prefilling it again. llama-server keeps the same kind of cache (its
//! `--cache-ram`); without one, a prompt only finds its prefix if it happens to land on the
//! sequence that last held it.
//!
//! Generic over the saved state so the policy (which entry matches, what is evicted) is tested
//! without a model; the engine thread stores llama.cpp's sequence states in it. Written by hand:
//! the lookup is by longest common token prefix, which no LRU crate offers.

/// Tokens shared with a cached entry that make restoring it worth its copy (below this, the
/// prefill of the difference costs about what the copy does).
pub const MIN_GAIN_TOKENS: usize = 16;

/// A saved state and what it is worth.
pub trait Saved {
    /// Host memory the state occupies.
    fn byte_len(&self) -> usize;
}

/// KV states by the tokens they hold, least recently used evicted first once `limit_bytes`
/// is exceeded.
pub struct PromptCache<T, S> {
    entries: Vec<Entry<T, S>>,
    limit_bytes: usize,
    used_bytes: usize,
    clock: u64,
}

struct Entry<T, S> {
    tokens: Vec<T>,
    state: S,
    last_used: u64,
}

/// The best cached entry for a prompt.
#[derive(Debug, PartialEq, Eq)]
pub struct Hit {
    /// Which entry (valid until the cache changes).
    pub index: usize,
    /// Prompt tokens its state lets the request skip.
    pub reuse: usize,
}

impl<T: PartialEq, S: Saved> PromptCache<T, S> {
    /// An empty cache that holds at most `limit_bytes` of states (0: keeps nothing).
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            entries: Vec::new(),
            limit_bytes,
            used_bytes: 0,
            clock: 0,
        }
    }

    /// Bytes of states it may hold.
    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// Bytes of states held now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry sharing the longest reusable prefix with `prompt` (see [`reusable_prefix`]),
    /// if any shares at least one token.
    pub fn best_match(&self, prompt: &[T]) -> Option<Hit> {
        self.entries
            .iter()
            .enumerate()
            .map(|(index, e)| Hit {
                index,
                reuse: reusable_prefix(&e.tokens, prompt),
            })
            .filter(|hit| hit.reuse > 0)
            .max_by_key(|hit| (hit.reuse, self.entries[hit.index].last_used))
    }

    /// The entry `hit` found, marked as just used: its tokens and state.
    pub fn take_hit(&mut self, hit: &Hit) -> (&[T], &S) {
        self.clock += 1;
        let entry = &mut self.entries[hit.index];
        entry.last_used = self.clock;
        (&entry.tokens, &entry.state)
    }

    /// Whether `tokens` are already covered: an entry holds them or a longer run starting with
    /// them (saving them again would add nothing).
    pub fn covers(&self, tokens: &[T]) -> bool {
        self.entries.iter().any(|e| e.tokens.starts_with(tokens))
    }

    /// Keeps `state` (the KV of `tokens`). Entries that are a prefix of `tokens` go (the new one
    /// reuses everything they could), then the least recently used ones until the cache fits:
    /// those are returned, for a slower tier to keep. A state larger than the whole cache is
    /// not kept (and is returned).
    pub fn insert(&mut self, tokens: Vec<T>, state: S) -> Vec<(Vec<T>, S)> {
        let bytes = state.byte_len();
        if tokens.is_empty() || self.covers(&tokens) {
            return Vec::new();
        }
        if bytes > self.limit_bytes {
            return vec![(tokens, state)];
        }
        let evicted = self.make_room(&tokens, bytes);
        self.clock += 1;
        self.used_bytes += bytes;
        self.entries.push(Entry {
            tokens,
            state,
            last_used: self.clock,
        });
        evicted
    }

    /// Makes room for a state of `bytes` for `tokens` before it is copied out of the KV cache,
    /// so the copy never sits beside a full cache (the host memory bound holds at every
    /// moment, not only between inserts): what [`PromptCache::insert`] would drop and evict,
    /// it drops and evicts now. Returns the evicted entries.
    pub fn make_room(&mut self, tokens: &[T], bytes: usize) -> Vec<(Vec<T>, S)> {
        if bytes > self.limit_bytes {
            return Vec::new();
        }
        let mut freed = 0;
        self.entries.retain(|e| {
            let keep = !tokens.starts_with(&e.tokens);
            if !keep {
                freed += e.state.byte_len();
            }
            keep
        });
        self.used_bytes -= freed;
        let mut evicted = Vec::new();
        while self.used_bytes + bytes > self.limit_bytes {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_used)
            else {
                break;
            };
            let gone = self.entries.swap_remove(oldest);
            self.used_bytes -= gone.state.byte_len();
            evicted.push((gone.tokens, gone.state));
        }
        evicted
    }

    /// Every entry, the cache left empty (when the engine stops, for a slower tier to keep).
    pub fn drain(&mut self) -> Vec<(Vec<T>, S)> {
        self.used_bytes = 0;
        self.entries
            .drain(..)
            .map(|e| (e.tokens, e.state))
            .collect()
    }
}

/// Prompt tokens of `kept` (what a KV state holds) that a new `prompt` can reuse: the common
/// prefix, but at least the last prompt token is decoded again, since its logits pick the first
/// token.
pub fn reusable_prefix<T: PartialEq>(kept: &[T], prompt: &[T]) -> usize {
    let common = kept.iter().zip(prompt).take_while(|(x, y)| x == y).count();
    common.min(prompt.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(usize);
    impl Saved for Bytes {
        fn byte_len(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn at_least_the_last_prompt_token_is_decoded_again() {
        assert_eq!(reusable_prefix::<i32>(&[], &[1, 2, 3]), 0);
        assert_eq!(reusable_prefix(&[1, 2, 9, 9], &[1, 2, 3]), 2);
        assert_eq!(reusable_prefix(&[1, 2, 3], &[1, 2, 3]), 2);
        assert_eq!(reusable_prefix(&[1, 2, 3, 4], &[1, 2]), 1);
        assert_eq!(reusable_prefix(&[5], &[1]), 0);
        assert_eq!(reusable_prefix::<i32>(&[5], &[]), 0);
    }

    #[test]
    fn the_longest_shared_prefix_wins() {
        let mut cache = PromptCache::new(1000);
        cache.insert(vec![1, 2, 3, 4], Bytes(10));
        cache.insert(vec![1, 2, 7, 8, 9], Bytes(10));
        cache.insert(vec![5, 6], Bytes(10));
        assert_eq!(
            cache.best_match(&[1, 2, 7, 8, 0]),
            Some(Hit { index: 1, reuse: 4 })
        );
        assert_eq!(
            cache.best_match(&[1, 2, 3, 4, 5, 6]),
            Some(Hit { index: 0, reuse: 4 })
        );
        assert_eq!(cache.best_match(&[9, 9]), None);
        let hit = cache.best_match(&[5, 6, 1]).unwrap();
        assert_eq!(cache.take_hit(&hit).0, &[5, 6]);
    }

    #[test]
    fn least_recently_used_entries_leave_first_and_the_limit_holds() {
        let mut cache = PromptCache::new(30);
        cache.insert(vec![1], Bytes(10));
        cache.insert(vec![2], Bytes(10));
        cache.insert(vec![3], Bytes(10));
        // Using [1] makes [2] the oldest.
        let hit = cache.best_match(&[1, 0]).unwrap();
        cache.take_hit(&hit);
        let evicted = cache.insert(vec![4], Bytes(10));
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].0, vec![2]);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.used_bytes(), 30);
        assert!(cache.covers(&[1]) && cache.covers(&[3]) && cache.covers(&[4]));
        assert!(!cache.covers(&[2]));
        // A state larger than the whole cache is not kept, and evicts nothing.
        assert_eq!(cache.insert(vec![5], Bytes(31)).len(), 1);
        assert_eq!(cache.len(), 3);
        // One that needs two evictions.
        assert_eq!(cache.insert(vec![6], Bytes(25)).len(), 3);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.used_bytes(), 25);
        assert_eq!(cache.drain().len(), 1);
        assert!(cache.is_empty() && cache.used_bytes() == 0);
        // A zero-sized cache keeps nothing.
        let mut none = PromptCache::<i32, Bytes>::new(0);
        let _ = none.insert(vec![1], Bytes(1));
        assert!(none.is_empty());
    }

    #[test]
    fn room_is_made_before_the_copy_so_cache_and_copy_never_exceed_the_limit() {
        let mut cache = PromptCache::new(30);
        cache.insert(vec![1], Bytes(10));
        cache.insert(vec![2], Bytes(10));
        cache.insert(vec![3, 4], Bytes(10));
        // A 15-byte state for [3, 4, 5]: [3, 4] is superseded, then [1] (the oldest) goes.
        let evicted = cache.make_room(&[3, 4, 5], 15);
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].0, vec![1]);
        assert!(cache.used_bytes() + 15 <= 30, "{}", cache.used_bytes());
        // The insert that follows evicts nothing more.
        assert!(cache.insert(vec![3, 4, 5], Bytes(15)).is_empty());
        assert_eq!(cache.used_bytes(), 25);
        // A state larger than the cache makes no room (it will not be kept).
        assert!(cache.make_room(&[9], 31).is_empty());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn an_entry_extended_by_a_later_one_is_replaced_and_a_covered_one_is_not_added() {
        let mut cache = PromptCache::new(1000);
        cache.insert(vec![1, 2], Bytes(10));
        cache.insert(vec![1, 2, 3, 4], Bytes(20));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.used_bytes(), 20);
        cache.insert(vec![1, 2, 3], Bytes(15));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.used_bytes(), 20);
        assert!(cache.covers(&[1, 2, 3]));
    }
}
