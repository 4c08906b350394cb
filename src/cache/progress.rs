//! Progress reporting for downloads, kept behind a small trait so the download code does not
//! care whether a person is watching (a bar on the terminal), a test is (nothing), or a server is
//! (a future log or metrics sink).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives download progress.
///
/// It exists so that [`download`](super::download()) can report bytes without depending on a UI;
/// implementations must be `Sync` because a download runs as a future that may move between
/// threads while holding a reference.
pub trait DownloadProgress: Sync {
    /// A transfer starts: `total` is the full size when the server announced it, `already` the
    /// bytes kept from an earlier partial download.
    fn start(&self, alias: &str, total: Option<u64>, already: u64);
    /// `bytes` more bytes were written to disk.
    fn advance(&self, bytes: u64);
    /// The transfer is over (successfully or not).
    fn finish(&self);
}

/// Reports nothing; for tests, scripts and callers that print their own summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl DownloadProgress for NoProgress {
    fn start(&self, _alias: &str, _total: Option<u64>, _already: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// A terminal progress bar (bytes, rate, ETA) on stderr.
///
/// It exists for `hearth model pull` and friends; when stderr is not a terminal (CI logs, pipes)
/// the bar stays hidden so logs are not flooded with redraws.
#[derive(Debug, Default)]
pub struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    /// A bar that appears on the first [`DownloadProgress::start`].
    pub fn new() -> Self {
        Self::default()
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        // A poisoned lock only means another thread panicked mid-update; the bar is still usable.
        let guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = guard.as_ref() {
            f(bar);
        }
    }
}

impl DownloadProgress for BarProgress {
    fn start(&self, alias: &str, total: Option<u64>, already: u64) {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::with_draw_target(Some(total), target),
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ),
            None => (
                ProgressBar::with_draw_target(None, target),
                "{msg} {spinner} {bytes} {bytes_per_sec}",
            ),
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(alias.to_string());
        bar.set_position(already);
        // The resumed prefix arrived instantly; do not let it inflate the rate and ETA.
        bar.reset_eta();
        let mut guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = guard.replace(bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, bytes: u64) {
        self.with_bar(|bar| bar.inc(bytes));
    }

    fn finish(&self) {
        let mut guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = guard.take() {
            bar.finish_and_clear();
        }
    }
}

/// What a person watching hearth make a model file (a quantized variant, a shape model) sees:
/// notes, and the file growing.
pub trait MakeObserver {
    /// A line worth saying (a download first, a source already quantized, the result).
    fn notice(&self, line: &str);
    /// `written` of about `expected` bytes of `model` are on disk.
    fn writing(&self, model: &str, written: u64, expected: u64);
    /// Writing stopped (the bar can go).
    fn written(&self);
}
