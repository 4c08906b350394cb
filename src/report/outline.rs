//! The report page's outline, written once: which sections a run's report has, in what order,
//! with what heading and what is in each. The HTML page, the Markdown page and the terminal
//! render this list; none of them decides order, headings or prose (they had drifted apart when
//! each wrote its own).

use super::run_summary::RunSummary;
use super::sections;
use super::table::Table;

/// One part of a section, in the order it is shown.
pub(crate) enum Block {
    /// A paragraph of hearth's own prose; `code` spans in backticks.
    Note(&'static str),
    /// Items of run data (escaped by the renderer).
    List(Vec<String>),
    /// A table, with its intro and notes.
    Table(Table),
    /// Pretty-printed JSON, for whoever needs the exact options.
    Json(String),
    /// The metric definitions (`definitions::DEFINITIONS`).
    Definitions,
    /// The sentence a reader came for (the recommendation's pick).
    Pick(String),
    /// A part only a page with charts can draw.
    Drawn(Drawing),
}

/// What only the HTML page draws; the Markdown page and the terminal leave these out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drawing {
    /// The chart grid: latency distributions, speed against load, per-model bars.
    Charts,
    /// The servers' own Prometheus figures per level, folded away.
    ServerMetrics,
    /// Per level: requests in flight, the server's queue, memory and KV-cache use over time.
    TimeSeries,
}

/// One section of the page.
pub(crate) struct Section {
    /// The anchor (`#summary`).
    pub id: &'static str,
    /// The heading, the same words in every format.
    pub heading: &'static str,
    /// The word in the page's navigation bar; `None` for a subsection of the one before.
    pub nav: Option<&'static str>,
    /// Printed by the terminal after `hearth bench` and in `hearth runs show`.
    pub terminal: bool,
    /// What the section holds.
    pub blocks: Vec<Block>,
}

impl Section {
    /// Whether a renderer that cannot draw [`Drawing`]s has anything to show here.
    pub(crate) fn has_text(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| !matches!(b, Block::Note(_) | Block::Drawn(_)))
    }

    fn new(id: &'static str, heading: &'static str, nav: &'static str) -> Section {
        Section {
            id,
            heading,
            nav: Some(nav),
            terminal: false,
            blocks: Vec::new(),
        }
    }

    fn sub(id: &'static str, heading: &'static str) -> Section {
        Section {
            nav: None,
            ..Section::new(id, heading, "")
        }
    }

    fn with(mut self, block: Block) -> Section {
        self.blocks.push(block);
        self
    }

    fn in_terminal(mut self) -> Section {
        self.terminal = true;
        self
    }
}

/// How to read the time series.
const TIMESERIES_NOTE: &str = "Per level, on the requests' clock: requests in flight (from the \
stored request records) beside the server's own queue and active requests, and memory beside \
KV-cache use.";

/// Every section of one run's report, in page order; sections with nothing to show are left
/// out. A renderer leaves out a section whose only content, notes aside, is what it cannot draw.
pub(crate) fn outline(s: &RunSummary) -> Vec<Section> {
    let mut page = vec![Section::new("summary", "Summary", "Summary")
        .with(Block::Table(sections::summary(s)))
        .in_terminal()];
    if let Some(sweep) = sections::sweep(s) {
        page.push(
            Section::new("sweep", "Sweep: how much load each model takes", "Sweep")
                .with(Block::Note(sections::SWEEP_NOTE))
                .with(Block::Table(sweep))
                .in_terminal(),
        );
    }
    if let Some(depth) = sections::depth(s) {
        page.push(
            Section::new("depth", "Speed against context depth", "Depth")
                .with(Block::Note(sections::DEPTH_NOTE))
                .with(Block::Table(depth))
                .in_terminal(),
        );
    }
    page.extend([
        Section::new("charts", "Charts", "Charts").with(Block::Drawn(Drawing::Charts)),
        Section::new("latency", "Latency detail (ms)", "Latency")
            .with(Block::Table(sections::latency(s))),
        Section::new(
            "throughput",
            "Throughput, goodput, prompt cache and noise",
            "Throughput",
        )
        .with(Block::Table(sections::throughput(s))),
        Section::new("resources", "Resources and energy", "Resources & energy")
            .with(Block::Table(sections::resources(s)))
            .with(Block::Drawn(Drawing::ServerMetrics)),
        Section::new("timeseries", "Server time series", "Time series")
            .with(Block::Note(TIMESERIES_NOTE))
            .with(Block::Drawn(Drawing::TimeSeries)),
        quality(s),
        Section::new("models", "Models", "Models").with(Block::Table(sections::models(s))),
    ]);
    if let Some(failures) = sections::failed_requests(s) {
        page.push(Section::sub("failed", "Failed requests").with(Block::Table(failures)));
    }
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    let run = &s.run;
    page.extend([
        Section::new("environment", "Environment", "Environment")
            .with(Block::Table(sections::environment(s))),
        Section::sub("options", "Options").with(Block::Json(json(run.options.to_json()))),
        Section::sub("client", "Client health").with(Block::Json(json(
            serde_json::to_value(&run.client).unwrap_or_default(),
        ))),
        Section::new("definitions", "Definitions", "Definitions").with(Block::Definitions),
        // The closing section: the pick and why the others were not picked.
        Section::new("recommendation", "Recommendation", "Recommendation")
            .with(Block::Pick(s.recommendation.explanation.clone()))
            .with(Block::Table(sections::recommendation(&s.recommendation))),
    ]);
    page
}

/// Who scored and how, the scores and checks, and the checks that failed.
fn quality(s: &RunSummary) -> Section {
    let mut q = Section::new("quality", "Quality", "Quality");
    let scorers = sections::scorer_lines(s);
    if scorers.is_empty() {
        q = q.with(Block::Note(
            "No answer has a score yet (`hearth bench --judge MODEL`, or `hearth annotate export` / `import`); automatic checks below.",
        ));
    } else {
        q = q
            .with(Block::Note(
                "Scores 1–5; a person's score replaces the judge's for the same answer.",
            ))
            .with(Block::List(scorers));
    }
    q = q.with(Block::Table(sections::quality(&s.levels)));
    if let Some(failed) = sections::check_failures(&s.levels) {
        q = q.with(Block::Table(failed));
    }
    q
}
