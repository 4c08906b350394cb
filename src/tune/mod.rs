//! `hearth tune`'s search: which serving configuration, on this machine, holds the user's
//! load best. Pure: it ranks what a probe measured and decides what to probe next; the
//! probing itself (a short bench session per configuration) is the caller's.
//!
//! The strategy is successive halving (Jamieson & Talwalkar 2016; Li et al.'s Hyperband,
//! 2018, repeats it): every configuration gets a short probe, the better half a longer one,
//! and so on, so the budget goes to the promising ones. Two rules keep it honest on a noisy
//! machine:
//! - the default configuration (what `hearth serve` does with no flags) is probed at every
//!   stage, so the winner is always measured against doing nothing;
//! - a configuration is only preferred to a simpler one when the difference is beyond noise
//!   (`stats::ratio_test` on the rounds' values); within noise they tie and the simpler wins.

mod probe;
#[cfg(test)]
mod tests;

pub use probe::probe_of;

use serde::Serialize;

pub use crate::stats::geometric_mean;
use crate::stats::{difference_interval, paired_ratio_interval, ratio_test, Design, RatioTest};

/// One configuration a probe can measure.
pub trait Configuration {
    /// How much the configuration asks beyond the default: of two that tie, the lower wins
    /// (the default itself is 0).
    fn complexity(&self) -> u32;
}

/// What one probe of a configuration measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Probe {
    /// The objective in each timed round (higher is better: requests per second meeting the
    /// SLO).
    pub rounds: Vec<f64>,
    /// The stored run that holds the probe's requests.
    pub run_id: Option<String>,
    /// TTFT at the SLO percentile, ms.
    pub ttft_ms: Option<f64>,
    /// Time per output token at the SLO percentile, ms.
    pub tpot_ms: Option<f64>,
    /// Output tokens per second, all streams together.
    pub output_tok_s: Option<f64>,
    /// Peak resident memory of the server.
    pub peak_rss_bytes: Option<u64>,
    /// Automatic checks of the answers that passed, of `checks_total` (none without checks,
    /// e.g. on generated prompts).
    pub checks_passed: u64,
    /// Automatic checks run on the answers.
    pub checks_total: u64,
    /// The judge's mean score (1–5) of the answers, when this probe's answers were judged
    /// (tune judges each model's first probe only: answers at temperature 0 hardly change
    /// with the serving settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge_score: Option<f64>,
    /// Answers the judge scored.
    #[serde(skip_serializing_if = "is_zero")]
    pub judge_scored: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A model's answers over a tune's probes: the automatic checks they passed and the judge's
/// scores. Quality belongs to the model, not to a serving configuration (answers at
/// temperature 0 hardly change with the settings), so the constraint and the reports sum it
/// over all the model's configurations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModelQuality {
    /// Checks passed.
    pub checks_passed: u64,
    /// Checks run.
    pub checks_total: u64,
    judge_sum: f64,
    /// Answers the judge scored.
    pub judged: u64,
}

impl ModelQuality {
    /// Adds one probe's figures.
    pub fn add(&mut self, passed: u64, total: u64, judge_score: Option<f64>, judged: u64) {
        self.checks_passed += passed;
        self.checks_total += total;
        if let Some(score) = judge_score.filter(|_| judged > 0) {
            self.judge_sum += score * judged as f64;
            self.judged += judged;
        }
    }

    /// Share of checks passed (0 when none ran).
    pub fn pass_rate(&self) -> f64 {
        self.checks_passed as f64 / self.checks_total.max(1) as f64
    }

    /// The judge's mean score, when it scored any answer.
    pub fn judge_mean(&self) -> Option<f64> {
        (self.judged > 0).then(|| self.judge_sum / self.judged as f64)
    }

    /// In words: `83 % of 40 checks · judge 3.6`, `—` when nothing was checked or judged.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.checks_total > 0 {
            parts.push(format!(
                "{:.0} % of {} checks",
                100.0 * self.pass_rate(),
                self.checks_total
            ));
        }
        if let Some(score) = self.judge_mean() {
            parts.push(format!("judge {score:.1}"));
        }
        if parts.is_empty() {
            "—".to_string()
        } else {
            parts.join(" · ")
        }
    }
}

/// Why a probe gave no measurement.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeError {
    /// The configuration cannot be measured (it does not load, every request failed): it
    /// drops out with this reason.
    Failed(String),
    /// The person stopped the search (Ctrl-C): the probe is discarded, the configuration
    /// keeps what it had, and the search ends with what was measured.
    Stopped,
}

/// Where a configuration ended up in the search.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum Status {
    /// Never probed: the budget ran out (or Ctrl-C came) first.
    NotReached,
    /// Dropped at the end of this stage (1 = after the first probes).
    Eliminated(u32),
    /// Within noise of the winner, and not simpler.
    Tied,
    /// The pick.
    Winner,
    /// The probe failed (the model did not load, every request failed): why.
    Failed(String),
    /// Never probed: it cannot meet a constraint known before running (the memory budget):
    /// why.
    Pruned(String),
    /// Measured, then ruled out by a constraint on what it measured (its answers' quality):
    /// why.
    Excluded(String),
}

/// One configuration's record in the search.
#[derive(Clone, Debug, Serialize)]
pub struct Entry<C> {
    /// The configuration.
    pub config: C,
    /// Where it ended up.
    #[serde(flatten)]
    pub status: Status,
    /// Every probe, first stage first.
    pub probes: Vec<Probe>,
}

impl<C> Entry<C> {
    /// Every round's value over all its probes.
    pub fn rounds(&self) -> Vec<f64> {
        self.probes.iter().flat_map(|p| p.rounds.clone()).collect()
    }

    /// The objective: the mean of its rounds, a round in which no request met the SLO
    /// counting as zero; `None` when nothing met it at all (it cannot win).
    pub fn objective(&self) -> Option<f64> {
        crate::stats::mean(&self.rounds()).filter(|m| *m > 0.0 && m.is_finite())
    }

    /// The most recent probe (the longest).
    pub fn last(&self) -> Option<&Probe> {
        self.probes.last()
    }
}

/// How long each stage probes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Plan {
    /// Timed rounds of the first stage; each later stage doubles them.
    pub first_rounds: u32,
    /// Stages at most (the last probes the finalists, the baseline among them).
    pub stages: u32,
    /// The confidence of the tie test (0.95).
    pub confidence: f64,
}

/// The search: every entry, the trace of its stages, and the decision.
#[derive(Clone, Debug, Serialize)]
pub struct Search<C> {
    /// Every configuration, in the order given; `baseline` is the default.
    pub entries: Vec<Entry<C>>,
    /// The default configuration's index.
    pub baseline: usize,
    /// The winner's index (the baseline when nothing beat it beyond noise); `None` when no
    /// configuration could be measured.
    pub winner: Option<usize>,
    /// One line per stage: who was probed, who went on.
    pub trace: Vec<String>,
    /// The budget ran out before the last stage: the winner is the best so far.
    pub out_of_budget: bool,
}

impl<C> Search<C> {
    /// Records a configuration ruled out before the search (it would not fit the memory
    /// budget), so the output lists it with the reason.
    pub fn push_pruned(&mut self, config: C, reason: String) {
        self.entries.push(Entry {
            config,
            status: Status::Pruned(reason),
            probes: Vec::new(),
        });
    }

    /// Stages this search ran.
    fn stages_run(&self) -> u32 {
        self.trace.len() as u32
    }
}

/// Refines a finished search one axis at a time (Hyperband's budget rule does not care where
/// candidates come from; axes independent on the evidence may be searched one after another):
/// the winner becomes the incumbent, `neighbours` of it (one setting changed each) are searched
/// by successive halving with the incumbent re-probed at every stage, and a neighbour replaces
/// it only beyond noise. The result is one search: the first's entries, then the neighbours';
/// its baseline is still the default, and the incumbent's probes of both phases are one entry.
pub fn refine<C: Configuration + Clone + PartialEq>(
    mut first: Search<C>,
    neighbours: impl FnOnce(&C) -> Vec<C>,
    plan: Plan,
    probe: impl FnMut(&C, u32) -> Result<Probe, ProbeError>,
    budget_left: impl FnMut(u32) -> bool,
) -> Search<C> {
    let Some(incumbent) = first.winner else {
        return first;
    };
    if first.out_of_budget {
        return first;
    }
    let start = first.entries[incumbent].config.clone();
    let mut configs = vec![start.clone()];
    for n in neighbours(&start) {
        if !configs.contains(&n) && !first.entries.iter().any(|e| e.config == n) {
            configs.push(n);
        }
    }
    if configs.len() == 1 {
        return first;
    }
    let second = successive_halving(configs, 0, plan, probe, budget_left);
    let offset = first.stages_run();
    let mut second_entries = second.entries.into_iter();
    let again = second_entries.next().expect("the incumbent is entry 0");
    first.entries[incumbent].probes.extend(again.probes);
    first.entries[incumbent].status = match again.status {
        Status::Eliminated(stage) => Status::Eliminated(stage + offset),
        other => other,
    };
    let base = first.entries.len() - 1;
    for mut e in second_entries {
        if let Status::Eliminated(stage) = e.status {
            e.status = Status::Eliminated(stage + offset);
        }
        first.entries.push(e);
    }
    first.winner = second
        .winner
        .map(|w| if w == 0 { incumbent } else { base + w });
    first.trace.extend(
        second
            .trace
            .into_iter()
            .map(|line| format!("refine around the pick, {line}")),
    );
    first.out_of_budget = second.out_of_budget;
    first
}

/// Runs successive halving over `configs` (`baseline` is the default configuration), asking
/// `probe` for each measurement with the stage's rounds, while `budget_left` allows another
/// probe of that many rounds. Never panics on failed probes: a failed configuration drops out with its reason; a
/// stopped probe ends the search as a spent budget does.
pub fn successive_halving<C: Configuration + Clone>(
    configs: Vec<C>,
    baseline: usize,
    plan: Plan,
    probe: impl FnMut(&C, u32) -> Result<Probe, ProbeError>,
    budget_left: impl FnMut(u32) -> bool,
) -> Search<C> {
    successive_halving_gated(configs, baseline, plan, probe, budget_left, |_| Vec::new())
}

/// [`successive_halving`] with a constraint on what was measured: after each stage's probes,
/// `exclude` sees every entry and names the ones to rule out, with why (e.g. a model whose
/// answers pass clearly fewer checks than the best model's). They stop being probed and can
/// never win.
pub fn successive_halving_gated<C: Configuration + Clone>(
    configs: Vec<C>,
    baseline: usize,
    plan: Plan,
    mut probe: impl FnMut(&C, u32) -> Result<Probe, ProbeError>,
    mut budget_left: impl FnMut(u32) -> bool,
    mut exclude: impl FnMut(&[Entry<C>]) -> Vec<(usize, String)>,
) -> Search<C> {
    let mut entries: Vec<Entry<C>> = configs
        .into_iter()
        .map(|config| Entry {
            config,
            status: Status::NotReached,
            probes: Vec::new(),
        })
        .collect();
    let mut alive: Vec<usize> = (0..entries.len()).collect();
    let (mut trace, mut out_of_budget) = (Vec::new(), false);
    let mut rounds = plan.first_rounds.max(2);
    let mut last_stage = 1;
    for stage in 1..=plan.stages.max(1) {
        last_stage = stage;
        let mut probed = 0;
        for &i in &alive {
            if !budget_left(rounds) {
                out_of_budget = true;
                break;
            }
            match probe(&entries[i].config, rounds) {
                Ok(p) if p.rounds.iter().any(|v| *v > 0.0) => entries[i].probes.push(p),
                // Measured, but nothing within the SLO: kept, so the output can show how close
                // it came. The default stays in the search (it is what the others are measured
                // against) but cannot win: it has no objective.
                Ok(p) => {
                    entries[i].probes.push(p);
                    if i != baseline {
                        entries[i].status = Status::Failed("no request met the SLO".into());
                    }
                }
                Err(ProbeError::Failed(e)) => entries[i].status = Status::Failed(e),
                Err(ProbeError::Stopped) => {
                    out_of_budget = true;
                    break;
                }
            }
            probed += 1;
        }
        for (i, why) in exclude(&entries) {
            if let Some(e) = entries.get_mut(i) {
                e.status = Status::Excluded(why);
            }
        }
        alive.retain(|&i| !matches!(entries[i].status, Status::Failed(_) | Status::Excluded(_)));
        if out_of_budget || stage == plan.stages || alive.len() <= 1 {
            trace.push(format!(
                "stage {stage}: {probed} probed at {rounds} rounds each; {} left",
                alive.len()
            ));
            break;
        }
        // The better half goes on, the baseline always.
        let mut ranked = alive.clone();
        ranked.sort_by(|&a, &b| {
            let (x, y) = (entries[a].objective(), entries[b].objective());
            y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal)
        });
        // Half, but never fewer than two: a pair is decided by the tie test, not one probe.
        let keep = alive.len().div_ceil(2).max(2).min(alive.len());
        let mut next: Vec<usize> = ranked[..keep].to_vec();
        if alive.contains(&baseline) && !next.contains(&baseline) {
            next.push(baseline);
        }
        for &i in &alive {
            if !next.contains(&i) {
                entries[i].status = Status::Eliminated(stage);
            }
        }
        trace.push(format!(
            "stage {stage}: {probed} probed at {rounds} rounds each; {} go on",
            next.len()
        ));
        next.sort_unstable();
        alive = next;
        rounds *= 2;
    }
    let winner = decide(&mut entries, &alive, baseline, plan.confidence, last_stage);
    Search {
        entries,
        baseline,
        winner,
        trace,
        out_of_budget,
    }
}

/// Among the configurations still in the running: the best by objective, unless a simpler
/// one (the baseline first) is within noise of it. Marks the winner, the ties, and the
/// finalists the winner beat beyond noise (eliminated at the last stage).
fn decide<C: Configuration>(
    entries: &mut [Entry<C>],
    alive: &[usize],
    baseline: usize,
    confidence: f64,
    last_stage: u32,
) -> Option<usize> {
    let measured: Vec<usize> = alive
        .iter()
        .copied()
        .filter(|&i| entries[i].objective().is_some())
        .collect();
    let best = *measured.iter().max_by(|&&a, &&b| {
        let (x, y) = (entries[a].objective(), entries[b].objective());
        x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
    })?;
    let leader = entries[best].rounds();
    let tied: Vec<usize> = measured
        .iter()
        .copied()
        .filter(|&i| i == best || !beyond_noise(&entries[i].rounds(), &leader, confidence))
        .collect();
    // The simplest of the tied: the baseline when it is among them.
    let winner = *tied.iter().min_by_key(|&&i| {
        (
            i != baseline,
            entries[i].config.complexity(),
            // Same complexity: the better objective.
            std::cmp::Reverse(entries[i].objective().map(|o| (o * 1e6) as u64)),
        )
    })?;
    for &i in &measured {
        entries[i].status = if i == winner {
            Status::Winner
        } else if tied.contains(&i) {
            Status::Tied
        } else {
            Status::Eliminated(last_stage)
        };
    }
    Some(winner)
}

/// Whether B's rounds are better than A's beyond noise (a one-sided reading of the
/// interval: a tie when it reaches zero). On the ratio of logs when every round met the SLO
/// with some request; with zero rounds (no log exists) on the difference of the means.
fn beyond_noise(a: &[f64], b: &[f64], confidence: f64) -> bool {
    if a.iter().chain(b).any(|v| *v <= 0.0) {
        return match difference_interval(a, b, confidence) {
            Some([low, _]) => low > 0.0,
            None => false,
        };
    }
    match ratio_test(a, b, Design::Independent { run_drift: 0.0 }, confidence) {
        Some(t) => t.ci_low_pct > 0.0,
        // Too few rounds to tell: only a clear gap counts.
        None => match (geometric_mean(a), geometric_mean(b)) {
            (Some(x), Some(y)) => y > 1.5 * x,
            _ => false,
        },
    }
}

/// The confirm run's result: the winner's goodput over the default's at the same load.
#[derive(Clone, Debug, Serialize)]
pub struct Confirmation {
    /// Winner ÷ default, from paired rounds; `None` when the default met the SLO with no
    /// request (no ratio exists: see `note`).
    pub ratio: Option<f64>,
    /// The ratio's interval at the run's confidence.
    pub interval: Option<[f64; 2]>,
    /// Paired rounds it rests on.
    pub rounds: usize,
    /// The smallest change these rounds could detect, percent.
    pub detectable_pct: Option<f64>,
    /// The default's goodput over the confirm run's rounds (arithmetic mean), requests/s.
    pub default_goodput_rps: f64,
    /// The winner's.
    pub winner_goodput_rps: f64,
    /// Why there is no ratio, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The most blocks (A B B A) a confirm run extends to while its interval is unbounded.
pub const MAX_CONFIRM_BLOCKS: u32 = 4;

/// The confirm run: probes the default and the winner alternating (A B, then B A) with
/// `rounds` rounds each, pairs their rounds in the order they ran (drift between the halves
/// divides out) and tests the ratio. When the interval is still unbounded (the default met the
/// SLO in too few rounds for its mean to be told from zero) and `another_block` allows it, it
/// runs another A B B A block, up to `MAX_CONFIRM_BLOCKS`. The rule looks only at whether the
/// default's mean is measured, never at whether the ratio is significant, so extending does
/// not bias the verdict towards the winner. `None` when fewer than two pairs were measured or
/// the person stopped it.
pub fn confirm_run<C>(
    default: &C,
    winner: &C,
    rounds: u32,
    confidence: f64,
    mut probe: impl FnMut(&C, u32) -> Result<Probe, ProbeError>,
    mut another_block: impl FnMut() -> bool,
) -> Option<Confirmation> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut blocks = 0;
    loop {
        for winner_first in [false, true] {
            // This pair's rounds: [default's, winner's].
            let mut pair = [Vec::new(), Vec::new()];
            for is_winner in [winner_first, !winner_first] {
                let config = if is_winner { winner } else { default };
                pair[usize::from(is_winner)] = match probe(config, rounds) {
                    Ok(p) => p.rounds,
                    Err(ProbeError::Stopped) => return None,
                    Err(ProbeError::Failed(_)) => Vec::new(),
                };
            }
            let n = pair[0].len().min(pair[1].len());
            a.extend(&pair[0][..n]);
            b.extend(&pair[1][..n]);
        }
        blocks += 1;
        let verdict = confirm_verdict(&a, &b, confidence);
        // A ratio without an interval. (A default that met the SLO in no round has no
        // ratio: the winner's goodput against none is already the verdict.)
        let unbounded = matches!(&verdict, Some(v) if v.ratio.is_some() && v.interval.is_none());
        if !unbounded || blocks >= MAX_CONFIRM_BLOCKS || !another_block() {
            return verdict.map(|mut v| {
                if blocks > 1 {
                    let extended = format!(
                        "extended to {blocks} blocks of A B B A while the interval was unbounded"
                    );
                    v.note = Some(match v.note {
                        Some(n) => format!("{n}; {extended}"),
                        None => extended,
                    });
                }
                v
            });
        }
    }
}

/// The verdict on the confirm run's paired rounds so far.
fn confirm_verdict(a: &[f64], b: &[f64], confidence: f64) -> Option<Confirmation> {
    if a.len() < 2 {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (default_goodput_rps, winner_goodput_rps) = (mean(a), mean(b));
    // The default met the SLO with no request in any round: anything that met it beats it,
    // and a ratio to zero does not exist.
    if a.iter().all(|v| *v <= 0.0) {
        return (winner_goodput_rps > 0.0).then(|| Confirmation {
            ratio: None,
            interval: None,
            rounds: a.len(),
            detectable_pct: None,
            default_goodput_rps,
            winner_goodput_rps,
            note: Some(format!(
                "the default met the SLO with no request in {} rounds",
                a.len()
            )),
        });
    }
    // A round with no request within the SLO (on either side) has no log: the ratio of the
    // means with Fieller's interval instead of the paired log ratio, which would drop it.
    if a.iter().chain(b).any(|v| *v <= 0.0) {
        let fieller = paired_ratio_interval(a, b, confidence);
        return Some(Confirmation {
            ratio: Some(winner_goodput_rps / default_goodput_rps),
            interval: fieller.map(|(_, interval)| interval),
            rounds: a.len(),
            detectable_pct: None,
            default_goodput_rps,
            winner_goodput_rps,
            note: Some(match fieller {
                Some(_) => "some rounds met the SLO with no request: the ratio of the means, Fieller's interval".into(),
                None => "some rounds met the SLO with no request: the ratio of the means; too few rounds met it for an interval".into(),
            }),
        });
    }
    let t = confirm(a, b, confidence)?;
    Some(Confirmation {
        ratio: Some(1.0 + t.change_pct / 100.0),
        interval: Some([1.0 + t.ci_low_pct / 100.0, 1.0 + t.ci_high_pct / 100.0]),
        rounds: a.len(),
        detectable_pct: Some(t.detectable_pct),
        default_goodput_rps,
        winner_goodput_rps,
        note: None,
    })
}

/// The confirm run's verdict: the winner against the default at the same load, rounds paired
/// in the order they ran.
pub fn confirm(default: &[f64], winner: &[f64], confidence: f64) -> Option<RatioTest> {
    ratio_test(default, winner, Design::Paired, confidence)
}
