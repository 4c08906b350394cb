//! Which drafts a step carries, so that drafting never costs throughput.
//!
//! A drafted token is worth the time the sequence would otherwise spend generating it, times
//! its chance of being accepted; it costs the rows and the forward passes it adds to the step.
//! The passes matter as much as the rows: with a KV stream per sequence llama.cpp splits a
//! batch into micro-batches of consecutive sequence ids that each give the same number of rows
//! ([`ubatches`]), so one sequence drafting four tokens beside seven that draft none adds a
//! second forward pass. Pricing a drafted row as an average over all steps (as the engine did)
//! undercharges the short, lone drafts of distinct prompts at high concurrency and overcharges
//! the long ones of a copy; this module prices every step's layout exactly.
//!
//! Three parts:
//! * [`StepCosts`]: a step's time as `per_pass × passes + per_row × rows`, measured once when
//!   the engine starts (a pass of one row and one of sixteen) and refitted from every
//!   prefill-free step (least squares, older steps fading);
//! * [`choose`]: the draft lengths that gain the most expected time under that model, within
//!   the [`STEP_STRETCH`] a step may take over a draft-free one;
//! * [`Payoff`]: what drafting actually returned at each batch size, step by step, against
//!   draft-free steps of that size; where it did not pay, drafting pauses there (for longer
//!   each time), so mis-estimated chances cost a bounded sliver of throughput.
//!
//! The split is mirrored by hand from llama.cpp's `llama_batch_allocr::split_equal`: no crate
//! exposes it, and the engine needs it before it builds the batch.

/// How much longer than a draft-free step a step with drafts may take. Every request that
/// arrives meanwhile waits for the step in flight before its prompt is even looked at, so a
/// step is its first token's toll: measured on the default model (2 CPU cores), one sequence
/// with 48 drafted rows took 295 ms against 12 ms without, and the first tokens of requests
/// arriving beside it waited 2.6× llama-server's. At 6× a step of one sequence carries about
/// 13 drafted rows on that CPU (a verbatim copy then gets 85-89 % of its tokens from drafts;
/// 4× allowed 8 rows and 76-85 %).
pub const STEP_STRETCH: f64 = 6.0;

/// How much more a draft must be expected to save than it adds: the chances are estimates,
/// and the loss of a wrong one is certain while the saving is not. Measured on distinct
/// prompts (2 cores): drafts taken at break-even (1.0) cost up to 4 % of throughput at 4
/// streams in a single run; at 1.25 drafts on stayed within 0.99-1.02× of drafts off at 2, 4
/// and 8 streams, and at 1.5 a verbatim copy lost a tenth of its accepted tokens.
pub const RISK_MARGIN: f64 = 1.25;

/// A sequence's part of a step's batch: its id and the rows it adds (its next token and its
/// draft, or a chunk of its prompt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRows {
    /// The sequence id (llama.cpp's `seq_id`).
    pub seq: i32,
    /// Rows it adds to the batch.
    pub rows: usize,
}

/// Rows of each forward pass llama.cpp makes for a batch laid out in ascending sequence id
/// with a KV stream per sequence (`split_equal(n_ubatch, sequential = true)`): each pass takes
/// the run of consecutive ids starting at the lowest sequence with rows left, each giving as
/// many rows as the shortest of them has left (and no more than `n_ubatch` in all).
pub fn ubatches(layout: &[SeqRows], n_ubatch: usize) -> Vec<usize> {
    let mut left: Vec<(i32, usize)> = layout
        .iter()
        .filter(|s| s.rows > 0)
        .map(|s| (s.seq, s.rows))
        .collect();
    left.sort_by_key(|&(seq, _)| seq);
    let n_ubatch = n_ubatch.max(1);
    let mut passes = Vec::new();
    while let Some(first) = left.iter().position(|&(_, rows)| rows > 0) {
        let mut end = first + 1;
        while end < left.len()
            && end - first < n_ubatch
            && left[end].1 > 0
            && left[end].0 == left[end - 1].0 + 1
        {
            end += 1;
        }
        let run = &mut left[first..end];
        let n_seqs = run.len();
        let shortest = run.iter().map(|&(_, rows)| rows).min().unwrap_or(1);
        // llama.cpp adds a row per sequence while all have one and the next round still fits.
        let per_seq = shortest.min((n_ubatch / n_seqs).max(1));
        for (_, rows) in run.iter_mut() {
            *rows -= per_seq;
        }
        passes.push(per_seq * n_seqs);
    }
    passes
}

/// Seconds of one forward pass, as a fixed part and a part per row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassCost {
    /// Seconds every pass costs (reading the weights, launching the graph).
    pub per_pass: f64,
    /// Seconds each row adds.
    pub per_row: f64,
}

impl PassCost {
    /// Seconds of a step laid out as `layout`.
    pub fn step(&self, layout: &[SeqRows], n_ubatch: usize) -> f64 {
        let passes = ubatches(layout, n_ubatch);
        let rows: usize = passes.iter().sum();
        self.per_pass * passes.len() as f64 + self.per_row * rows as f64
    }
}

/// Weight of a step in the fit, relative to the one before it: older steps fade (a machine's
/// load changes), over a memory of about 200 steps.
const FORGET: f64 = 0.995;
/// Weight of the start-up measurement in the fit, which never fades: it keeps the split
/// between passes and rows known while the steps seen all look alike (say, only draft-free
/// steps of eight sequences, where passes and rows cannot be told apart).
const CALIBRATION_WEIGHT: f64 = 0.5;

/// What decode steps cost: [`PassCost`] fitted by least squares to the prefill-free steps the
/// engine times, anchored by a measurement at start-up.
#[derive(Clone, Debug, Default)]
pub struct StepCosts {
    /// Σ w·x·xᵀ and Σ w·x·y over the steps, x = (passes, rows), y = seconds.
    xx: [[f64; 2]; 2],
    xy: [f64; 2],
    /// The start-up measurement: its cost, and the rows of its longer pass.
    calibration: Option<(PassCost, usize)>,
}

impl StepCosts {
    /// Anchors the fit with a pass of one row and a pass of `rows` rows, timed at start-up.
    pub fn calibrate(&mut self, one_row: f64, rows: usize, many_rows: f64) {
        if !(one_row.is_finite() && many_rows.is_finite()) || one_row <= 0.0 || rows < 2 {
            return;
        }
        let per_row = ((many_rows - one_row) / (rows - 1) as f64).max(0.0);
        // A pass costs something of its own, whatever the rows say (timer noise).
        let per_pass = (one_row - per_row).max(0.1 * one_row);
        self.calibration = Some((PassCost { per_pass, per_row }, rows));
    }

    /// Records a prefill-free step of `passes` forward passes and `rows` rows in all.
    pub fn record(&mut self, passes: usize, rows: usize, seconds: f64) {
        if passes == 0 || !seconds.is_finite() || seconds <= 0.0 {
            return;
        }
        let x = [passes as f64, rows as f64];
        for (i, row) in self.xx.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = FORGET * *v + x[i] * x[j];
            }
        }
        for (i, v) in self.xy.iter_mut().enumerate() {
            *v = FORGET * *v + x[i] * seconds;
        }
    }

    /// The fitted cost; `None` before anything was measured.
    pub fn fitted(&self) -> Option<PassCost> {
        let mut xx = self.xx;
        let mut xy = self.xy;
        if let Some((c, many)) = self.calibration {
            // The calibration as the two passes it timed.
            for rows in [1.0, many as f64] {
                let seconds = c.per_pass + rows * c.per_row;
                let x = [1.0, rows];
                for i in 0..2 {
                    for j in 0..2 {
                        xx[i][j] += CALIBRATION_WEIGHT * x[i] * x[j];
                    }
                    xy[i] += CALIBRATION_WEIGHT * x[i] * seconds;
                }
            }
        }
        let det = xx[0][0] * xx[1][1] - xx[0][1] * xx[1][0];
        let scale = xx[0][0] * xx[1][1];
        if scale <= 0.0 || det.abs() <= 1e-9 * scale {
            // Only one kind of step seen, and no calibration: charge it all to the pass.
            return (xx[0][0] > 0.0).then(|| PassCost {
                per_pass: xy[0] / xx[0][0],
                per_row: 0.0,
            });
        }
        let per_pass = (xx[1][1] * xy[0] - xx[0][1] * xy[1]) / det;
        let per_row = (xx[0][0] * xy[1] - xx[1][0] * xy[0]) / det;
        // Clamped to what a forward pass can cost: neither part below zero, and the pass
        // never free (a drafted lone row is never free).
        let one_row = (per_pass + per_row).max(0.0);
        let per_row = per_row.clamp(0.0, one_row);
        let per_pass = (one_row - per_row).max(0.05 * one_row);
        Some(PassCost { per_pass, per_row })
    }
}

/// A sequence of the step as [`choose`] sees it.
#[derive(Clone, Debug)]
pub struct Lane<'a> {
    /// Its id, which decides how llama.cpp splits the batch.
    pub seq: i32,
    /// Rows it adds besides a draft: 1 for a generating sequence, its chunk for a prompt.
    pub rows: usize,
    /// Whether it is generating (a prompt's lane only shapes the passes).
    pub generating: bool,
    /// For a generating sequence, the chance that the first 1, 2, … tokens of its candidate
    /// draft are all accepted (non-increasing); empty when it has nothing to draft.
    pub chances: &'a [f64],
}

/// How many tokens of its candidate draft each lane carries (in the lanes' order): the lengths
/// whose expected saving most exceeds the rows and passes they add, under `cost`, with the
/// step no longer than [`STEP_STRETCH`] times a draft-free one.
///
/// An accepted token saves what a token costs in a draft-free step of the generating
/// sequences (their step's time over their number); what a draft adds counts
/// [`RISK_MARGIN`] times. Greedy: from no drafts, repeatedly take
/// the single change (one lane's length, or every lane cut to one common length, which lines
/// the lanes up into fewer passes) that gains the most, while one gains anything.
pub fn choose(lanes: &[Lane<'_>], cost: PassCost, n_ubatch: usize) -> Vec<usize> {
    let mut lengths = vec![0usize; lanes.len()];
    let generating: Vec<SeqRows> = lanes
        .iter()
        .filter(|l| l.generating)
        .map(|l| SeqRows {
            seq: l.seq,
            rows: 1,
        })
        .collect();
    if generating.is_empty() || lanes.iter().all(|l| l.chances.is_empty()) {
        return lengths;
    }
    let token = cost.step(&generating, n_ubatch) / generating.len() as f64;
    let layout = |lengths: &[usize]| with_drafts(lanes, lengths);
    let plain = cost.step(&layout(&lengths), n_ubatch);
    let limit = STEP_STRETCH * plain;
    let expected = |lengths: &[usize]| -> f64 {
        lanes
            .iter()
            .zip(lengths)
            .map(|(l, &d)| l.chances[..d].iter().sum::<f64>())
            .sum()
    };
    // Net seconds saved, or None over the stretch.
    let gain = |lengths: &[usize]| -> Option<f64> {
        let seconds = cost.step(&layout(lengths), n_ubatch);
        (seconds <= limit * (1.0 + 1e-9))
            .then(|| token * expected(lengths) - RISK_MARGIN * (seconds - plain))
    };
    // Lengths worth trying per lane: short ones one by one, longer ones in coarser steps.
    const STEPS: [usize; 14] = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48];
    let mut best = 0.0;
    loop {
        let mut pick: Option<(f64, Vec<usize>)> = None;
        let mut consider = |candidate: Vec<usize>| {
            if let Some(g) = gain(&candidate) {
                if g > best + 1e-12 && pick.as_ref().is_none_or(|(p, _)| g > *p) {
                    pick = Some((g, candidate));
                }
            }
        };
        for (i, lane) in lanes.iter().enumerate() {
            let most = lane.chances.len();
            for d in STEPS.iter().copied().filter(|&d| d <= most).chain([most]) {
                if d != lengths[i] {
                    let mut c = lengths.clone();
                    c[i] = d;
                    consider(c);
                }
            }
        }
        for common in STEPS {
            let c: Vec<usize> = lanes.iter().map(|l| common.min(l.chances.len())).collect();
            if c != lengths {
                consider(c);
            }
        }
        match pick {
            Some((g, c)) => {
                best = g;
                lengths = c;
            }
            None => return lengths,
        }
    }
}

/// What a drafted step must save on average, as a share of a draft-free step of its size,
/// for drafting to go on there: a break-even measured on noisy steps can hide a loss (single
/// runs at 2 distinct streams read 0.97x of drafts off while every verdict was "pays").
const PAYOFF_MARGIN: f64 = 0.05;

/// The batch layout of `lanes` carrying drafts of `lengths` (in the lanes' order).
fn with_drafts(lanes: &[Lane<'_>], lengths: &[usize]) -> Vec<SeqRows> {
    lanes
        .iter()
        .zip(lengths)
        .map(|(l, &d)| SeqRows {
            seq: l.seq,
            rows: l.rows + d,
        })
        .collect()
}

/// Drafted steps a batch size is judged on before drafting may pause there.
const PAYOFF_EVIDENCE: u32 = 8;
/// Steps of a batch size drafting first pauses for when it did not pay there; each pause in
/// a row doubles it, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: u32 = 32;
const LONGEST_PAUSE: u32 = 1024;
/// Weight of the newest step in the running figures.
const SMOOTHING: f64 = 0.125;

/// What drafting returned at one batch size.
#[derive(Clone, Debug, Default)]
struct SizePayoff {
    /// Seconds of a draft-free, prefill-free step of this size (running mean).
    plain: Option<f64>,
    /// Seconds a drafted step saved against a draft-free one (running mean; below zero when
    /// drafting cost time).
    saved: f64,
    /// Drafted steps since the last verdict.
    drafted: u32,
    /// Steps of this size left to pause, and the length of the next pause.
    pause_left: u32,
    next_pause: u32,
}

/// Drafting's measured return per batch size (the number of generating sequences): a drafted
/// step saved `accepted × (plain ÷ size) − (its time − plain)` seconds, where `plain` is the
/// running time of draft-free steps of that size. After [`PAYOFF_EVIDENCE`] drafted steps with
/// a mean below [`PAYOFF_MARGIN`] of `plain` drafting pauses at that size, for longer each
/// time it resumes into a loss; a gain shortens the next pause again.
#[derive(Clone, Debug, Default)]
pub struct Payoff {
    sizes: Vec<SizePayoff>,
}

impl Payoff {
    fn size(&mut self, size: usize) -> &mut SizePayoff {
        if self.sizes.len() < size {
            self.sizes.resize(size, SizePayoff::default());
        }
        &mut self.sizes[size - 1]
    }

    /// Whether a step of `size` generating sequences may draft; counts the step down when
    /// drafting is paused there.
    pub fn may_draft(&mut self, size: usize) -> bool {
        if size == 0 {
            return false;
        }
        let s = self.size(size);
        if s.pause_left > 0 {
            s.pause_left -= 1;
            return false;
        }
        true
    }

    /// Records a prefill-free step of `size` generating sequences that drafted `drafted` rows
    /// (of which `accepted` were kept) and took `seconds`.
    pub fn record(&mut self, size: usize, drafted: usize, accepted: usize, seconds: f64) {
        if size == 0 || !seconds.is_finite() {
            return;
        }
        let s = self.size(size);
        if drafted == 0 {
            s.plain = Some(s.plain.map_or(seconds, |p| p + SMOOTHING * (seconds - p)));
            return;
        }
        let Some(plain) = s.plain else {
            return;
        };
        let saved = accepted as f64 * plain / size as f64 - (seconds - plain);
        s.saved = if s.drafted == 0 {
            saved
        } else {
            s.saved + SMOOTHING * (saved - s.saved)
        };
        s.drafted += 1;
        if s.drafted >= PAYOFF_EVIDENCE {
            s.drafted = 0;
            if s.saved < PAYOFF_MARGIN * plain {
                s.next_pause = (s.next_pause * 2).clamp(FIRST_PAUSE, LONGEST_PAUSE);
                s.pause_left = s.next_pause;
                tracing::debug!(
                    size,
                    saved_ms = s.saved * 1000.0,
                    pause = s.pause_left,
                    "drafting does not pay here; paused"
                );
            } else {
                s.next_pause /= 2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generating sequence with candidate chances.
    fn lane(seq: i32, chances: &[f64]) -> Lane<'_> {
        Lane {
            seq,
            rows: 1,
            generating: true,
            chances,
        }
    }

    fn layout(rows: &[(i32, usize)]) -> Vec<SeqRows> {
        rows.iter()
            .map(|&(seq, rows)| SeqRows { seq, rows })
            .collect()
    }

    #[test]
    fn uneven_drafts_and_gaps_in_the_ids_cost_passes() {
        // Eight sequences, one token each: one pass.
        let plain: Vec<(i32, usize)> = (0..8).map(|s| (s, 1)).collect();
        assert_eq!(ubatches(&layout(&plain), 512), vec![8]);
        // Sequence 3 drafts four: a second pass of its four rows.
        let mut one = plain.clone();
        one[3].1 = 5;
        assert_eq!(ubatches(&layout(&one), 512), vec![8, 4]);
        // Sequences 1 and 5 draft: not neighbours, a pass each.
        let mut two = plain.clone();
        two[1].1 = 4;
        two[5].1 = 4;
        assert_eq!(ubatches(&layout(&two), 512), vec![8, 3, 3]);
        // Neighbours with drafts of 2 and 4 share a pass of two rows each, then 2 more.
        let mut pair = plain.clone();
        pair[1].1 = 3;
        pair[2].1 = 5;
        assert_eq!(ubatches(&layout(&pair), 512), vec![8, 4, 2]);
        // A gap in the ids splits even a draft-free step.
        assert_eq!(
            ubatches(&layout(&[(0, 1), (1, 1), (3, 1)]), 512),
            vec![2, 1]
        );
        // The micro-batch bounds a pass.
        assert_eq!(ubatches(&layout(&[(0, 10)]), 4), vec![4, 4, 2]);
    }

    const CPU: PassCost = PassCost {
        per_pass: 0.006,
        per_row: 0.006,
    };
    const GPU: PassCost = PassCost {
        per_pass: 0.010,
        per_row: 0.0001,
    };

    #[test]
    fn a_lone_uncertain_draft_beside_seven_sequences_is_not_worth_its_pass() {
        let seqs: Vec<i32> = (0..8).collect();
        let likely = [0.8, 0.5];
        let lanes: Vec<Lane> = seqs
            .iter()
            .map(|&seq| lane(seq, if seq == 3 { &likely } else { &[] }))
            .collect();
        // On a CPU: a token is worth 6.75 ms, a drafted row costs 6 ms plus a pass.
        assert_eq!(choose(&lanes, CPU, 512), vec![0; 8]);
        // On a GPU rows are nearly free but the pass is not: 1.3 tokens × 1.35 ms < 10 ms.
        assert_eq!(choose(&lanes, GPU, 512), vec![0; 8]);
        // Alone, the same draft is worth a row on the GPU (it shares the only pass).
        let alone = [lane(0, &likely)];
        assert_eq!(choose(&alone, GPU, 512), vec![2]);
        // On the CPU the first token (0.8 × 12 ms > 1.25 × 6 ms) pays; the second does not.
        assert_eq!(choose(&alone, CPU, 512), vec![1]);
    }

    #[test]
    fn a_copy_drafts_long_within_the_stretch_and_neighbours_line_up() {
        let sure = [0.99; 48];
        let alone = [lane(0, &sure)];
        // CPU: a step of 1 + d rows may take 6 × 12 ms: 11 rows, so 10 drafted.
        assert_eq!(choose(&alone, CPU, 512), vec![10]);
        // GPU: rows are cheap, the step's stretch allows all 48.
        assert_eq!(choose(&alone, GPU, 512), vec![48]);
        // Eight sequences all copying on a GPU draft alike, so the drafts share one pass.
        let lanes: Vec<Lane> = (0..8).map(|seq| lane(seq, &sure)).collect();
        let lengths = choose(&lanes, GPU, 512);
        assert!(
            lengths.iter().all(|&d| d == lengths[0] && d > 0),
            "{lengths:?}"
        );
        assert!(ubatches(&with_drafts(&lanes, &lengths), 512).len() <= 2);
        // A step never exceeds its stretch over a draft-free one.
        for cost in [CPU, GPU] {
            let lengths = choose(&lanes, cost, 512);
            let (with, without) = (with_drafts(&lanes, &lengths), with_drafts(&lanes, &[0; 8]));
            assert!(
                cost.step(&with, 512) <= STEP_STRETCH * cost.step(&without, 512) * (1.0 + 1e-6)
            );
        }
    }

    #[test]
    fn the_fit_recovers_pass_and_row_costs_and_starts_from_the_calibration() {
        let mut costs = StepCosts::default();
        assert_eq!(costs.fitted(), None);
        // Calibrated at start-up: 12 ms for one row, 54 ms for eight.
        costs.calibrate(0.012, 8, 0.054);
        let c = costs.fitted().unwrap();
        assert!(
            (c.per_row - 0.006).abs() < 1e-9 && (c.per_pass - 0.006).abs() < 1e-9,
            "{c:?}"
        );
        // Steps of another machine (8 ms a pass, 1 ms a row) take over.
        for i in 0..400 {
            let (passes, rows) = (1 + i % 3, 1 + i % 11);
            costs.record(passes, rows, 0.008 * passes as f64 + 0.001 * rows as f64);
        }
        let c = costs.fitted().unwrap();
        assert!(
            (c.per_pass - 0.008).abs() < 0.001 && (c.per_row - 0.001).abs() < 0.0005,
            "{c:?}"
        );
        // Draft-free steps of eight sequences only, uncalibrated: all charged to the pass.
        let mut alike = StepCosts::default();
        alike.record(1, 8, 0.05);
        let c = alike.fitted().unwrap();
        assert_eq!(c.per_row, 0.0);
        assert!((c.per_pass - 0.05).abs() < 1e-9);
    }

    #[test]
    fn drafting_pauses_where_it_loses_time_and_comes_back() {
        let mut p = Payoff::default();
        for _ in 0..4 {
            p.record(8, 0, 0, 0.050);
        }
        // Drafted steps that accept nothing and take 10 ms longer: paused after 8.
        for _ in 0..PAYOFF_EVIDENCE {
            assert!(p.may_draft(8));
            p.record(8, 4, 0, 0.060);
        }
        let paused = (0..10_000).take_while(|_| !p.may_draft(8)).count();
        assert_eq!(paused, FIRST_PAUSE as usize);
        // Another loss: twice as long.
        for _ in 0..PAYOFF_EVIDENCE {
            p.record(8, 4, 0, 0.060);
        }
        let paused = (0..10_000).take_while(|_| !p.may_draft(8)).count();
        assert_eq!(paused, 2 * FIRST_PAUSE as usize);
        // Drafts that pay (4 tokens × 6.25 ms > 10 ms) never pause it.
        for _ in 0..3 * PAYOFF_EVIDENCE {
            assert!(p.may_draft(8));
            p.record(8, 4, 4, 0.060);
        }
        // A gain under a twentieth of a step (2 ms of 50) is within noise of a loss: paused too.
        for _ in 0..PAYOFF_EVIDENCE {
            p.record(8, 4, 2, 0.0605);
        }
        assert!(!p.may_draft(8));
        // Other sizes are judged on their own.
        assert!(p.may_draft(1));
    }
}
