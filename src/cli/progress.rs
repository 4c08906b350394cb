//! What a person sees while long work runs: `hearth bench`'s bar per model on a terminal (a
//! line per model in logs), the quantizer's bar, the judge's bar, and notes on stderr.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use hearth::bench;
use hearth::bench::session::SessionObserver;
use hearth::cache::MakeObserver;
use hearth::store::record::ModelStatus;

/// One progress bar per model on stderr (hidden when stderr is not a terminal, where a line
/// per model is printed instead).
#[derive(Clone)]
pub struct BarsProgress {
    multi: MultiProgress,
    bars: Arc<Mutex<HashMap<String, ProgressBar>>>,
    terminal: bool,
    quantizer: QuantizeBar,
    judge: Arc<Mutex<Option<ProgressBar>>>,
}

impl BarsProgress {
    pub fn new() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self {
            multi,
            bars: Arc::new(Mutex::new(HashMap::new())),
            terminal,
            quantizer: QuantizeBar::default(),
            judge: Arc::new(Mutex::new(None)),
        }
    }

    fn bar(&self, model: &str) -> Option<ProgressBar> {
        self.bars.lock().expect("bars").get(model).cloned()
    }

    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl bench::Progress for BarsProgress {
    fn model_started(&self, model: &str, planned: u64) {
        let bar = self.multi.add(ProgressBar::new(planned));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>18.bold} [{bar:30.cyan/blue}] {pos}/{len} requests {msg} ({elapsed})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(model.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bars.lock().expect("bars").insert(model.into(), bar);
        if !self.terminal {
            eprintln!("{model}: {planned} requests planned");
        }
    }

    fn stage(&self, model: &str, stage: &str) {
        if let Some(bar) = self.bar(model) {
            bar.set_message(stage.to_string());
        }
    }

    fn request_done(&self, model: &str, ok: bool) {
        if let Some(bar) = self.bar(model) {
            bar.inc(1);
            if !ok {
                bar.set_message("some requests failed".to_string());
            }
        }
    }

    fn model_finished(&self, model: &str, status: ModelStatus, error: Option<&str>) {
        let line = match (status, error) {
            (ModelStatus::Ok, None) => format!("{model}: done"),
            (_, Some(e)) => format!("{model}: {}: {e}", status.as_str()),
            (_, None) => format!("{model}: {}", status.as_str()),
        };
        if let Some(bar) = self.bar(model) {
            bar.finish_with_message(line.clone());
        }
        if !self.terminal {
            eprintln!("{line}");
        }
    }
}

impl MakeObserver for BarsProgress {
    fn notice(&self, line: &str) {
        eprintln!("{line}");
    }

    fn writing(&self, variant: &str, written: u64, expected: u64) {
        self.quantizer.writing(variant, written, expected);
    }

    fn written(&self) {
        self.quantizer.written();
    }
}

impl SessionObserver for BarsProgress {
    fn measured(&self) {
        self.clear();
    }

    fn judging(&self, judge: &str, done: usize, total: usize) {
        let mut slot = self.judge.lock().expect("judge bar");
        let bar = slot.get_or_insert_with(|| {
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "judging with {msg} {bar:30} {pos}/{len} distinct answers ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(judge.to_string());
            bar
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }

    fn judged(&self) {
        if let Some(bar) = self.judge.lock().expect("judge bar").take() {
            bar.finish_and_clear();
        }
    }
}

/// The quantizer's bar: the file it writes against the size expected at the type's bits per
/// weight.
#[derive(Clone, Default)]
pub struct QuantizeBar {
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl MakeObserver for QuantizeBar {
    fn notice(&self, line: &str) {
        eprintln!("{line}");
    }

    fn writing(&self, variant: &str, written: u64, expected: u64) {
        let mut slot = self.bar.lock().expect("quantize bar");
        let bar = slot.get_or_insert_with(|| {
            let bar = ProgressBar::new(expected).with_style(
                ProgressStyle::with_template(
                    "quantizing {msg} {bar:30} {bytes}/~{total_bytes} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(variant.to_string());
            bar
        });
        bar.set_position(written);
    }

    fn written(&self) {
        if let Some(bar) = self.bar.lock().expect("quantize bar").take() {
            bar.finish_and_clear();
        }
    }
}

/// What a session reports progress to: JSON lines with `--progress-json`, else bars.
pub fn session_observer(json_lines: bool) -> Arc<dyn SessionObserver> {
    if json_lines {
        Arc::new(JsonProgress::default())
    } else {
        Arc::new(BarsProgress::new())
    }
}

/// `hearth bench --progress-json`: progress as one JSON object per line on stderr, for the
/// server's benchmark jobs (the web UI's Bench page) and scripts: `model_started` (with
/// `planned` requests), `stage`, `request` (with `done` of `planned`), `model_finished`,
/// `notice`, `judging`, and from the command itself `stored` (the run's id) at the end.
#[derive(Default)]
pub struct JsonProgress {
    /// Requests done and planned, per model.
    counts: Mutex<HashMap<String, (u64, u64)>>,
}

impl JsonProgress {
    /// Writes one event line (stderr is line-buffered by hand: one write per line).
    pub fn emit(event: serde_json::Value) {
        use std::io::Write;
        let line = format!("{event}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

impl bench::Progress for JsonProgress {
    fn model_started(&self, model: &str, planned: u64) {
        self.counts
            .lock()
            .expect("counts")
            .insert(model.to_string(), (0, planned));
        Self::emit(
            serde_json::json!({"event": "model_started", "model": model, "planned": planned}),
        );
    }

    fn stage(&self, model: &str, stage: &str) {
        Self::emit(serde_json::json!({"event": "stage", "model": model, "stage": stage}));
    }

    fn request_done(&self, model: &str, ok: bool) {
        let (done, planned) = {
            let mut counts = self.counts.lock().expect("counts");
            let entry = counts.entry(model.to_string()).or_default();
            entry.0 += 1;
            *entry
        };
        Self::emit(serde_json::json!({
            "event": "request", "model": model, "ok": ok, "done": done, "planned": planned,
        }));
    }

    fn model_finished(&self, model: &str, status: ModelStatus, error: Option<&str>) {
        Self::emit(serde_json::json!({
            "event": "model_finished", "model": model, "status": status.as_str(), "error": error,
        }));
    }
}

impl MakeObserver for JsonProgress {
    fn notice(&self, line: &str) {
        Self::emit(serde_json::json!({"event": "notice", "line": line}));
    }

    fn writing(&self, model: &str, written: u64, expected: u64) {
        Self::emit(serde_json::json!({
            "event": "writing", "model": model, "written": written, "expected": expected,
        }));
    }

    fn written(&self) {}
}

impl SessionObserver for JsonProgress {
    fn measured(&self) {
        Self::emit(serde_json::json!({"event": "measured"}));
    }

    fn judging(&self, judge: &str, done: usize, total: usize) {
        Self::emit(serde_json::json!({
            "event": "judging", "judge": judge, "done": done, "total": total,
        }));
    }

    fn judged(&self) {}
}
