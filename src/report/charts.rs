//! SVG charts for the HTML report, drawn with plotters into strings (`SVGBackend::with_string`)
//! so the page carries them inline and opens offline. plotters is built without a font
//! feature: its SVG backend writes `<text>` elements that the browser renders with its own
//! sans-serif font, and only estimates text width for layout, which is all a chart needs.
//!
//! A chart that cannot be drawn (no data, a degenerate range plotters rejects) is a
//! [`ChartError`]; the page prints it instead of failing the whole report.

use plotters::chart::SeriesLabelStyle;
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::text::clip;

/// Chart width and height, pixels (the page scales them down on narrow screens).
const W: u32 = 720;
const H: u32 = 360;
const FONT: &str = "sans-serif";
/// Largest sample drawn as exact CDF steps.
const CDF_STEPS_MAX: usize = 500;

/// Tableau 10: distinguishable, and legible for the common colour-vision deficiencies.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

/// The colour of the `i`-th series (models keep their colour across charts).
pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The CSS colour of the `i`-th series, for legends drawn in HTML.
pub(crate) fn css_color(i: usize) -> String {
    let c = color(i);
    format!("rgb({},{},{})", c.0, c.1, c.2)
}

/// Axis tick text without plotters' trailing `.0`: `100`, `2.5`, `0.25`.
fn tick(v: &f64) -> String {
    let a = v.abs();
    let s = if a >= 1000.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Grid colours: faint minor lines, light major lines.
const LIGHT: RGBColor = RGBColor(246, 246, 246);
const BOLD: RGBColor = RGBColor(222, 222, 222);

/// A numeric x/y chart on `root` with the caption, grid, ticks and axis titles every such
/// chart shares.
fn xy_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_desc: &str,
    y_desc: &str,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, ChartError>
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    xy_mesh(&mut chart, x_desc, y_desc)?;
    Ok(chart)
}

/// The grid, ticks and axis titles every numeric x/y chart shares.
fn xy_mesh(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), ChartError> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(LIGHT)
        .bold_line_style(BOLD)
        .axis_desc_style((FONT, 13))
        .label_style((FONT, 12))
        .draw()
        .map_err(err)
}

/// Why a chart was not drawn; the page prints it in the chart's place.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChartError {
    /// Nothing to draw (no successful request, no sample).
    #[error("no data")]
    NoData,
    /// plotters refused the drawing (a degenerate range, say).
    #[error("plotters: {0}")]
    Draw(String),
}

fn err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

/// An SVG of `size` pixels on a white ground, drawn by `draw`: the setup every chart shares.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), ChartError>,
) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A range that plotters accepts: never empty, a little headroom above.
fn padded(lo: f64, hi: f64, from_zero: bool) -> (f64, f64) {
    let lo = if from_zero { lo.min(0.0) } else { lo };
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        let d = if hi.abs() > 1e-9 { hi.abs() * 0.1 } else { 1.0 };
        return (if from_zero { lo.min(0.0) } else { lo - d }, hi + d);
    }
    let pad = (hi - lo) * 0.06;
    (if from_zero { lo } else { lo - pad }, hi + pad)
}

/// Extra room above the data so the legend (drawn in an upper corner) never hides a line.
fn with_legend_room((lo, hi): (f64, f64)) -> (f64, f64) {
    (lo, hi + (hi - lo) * 0.25)
}

fn bounds<'a>(points: impl Iterator<Item = &'a (f64, f64)>) -> Option<((f64, f64), (f64, f64))> {
    let mut b: Option<((f64, f64), (f64, f64))> = None;
    for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        b = Some(match b {
            None => ((x, x), (y, y)),
            Some(((x0, x1), (y0, y1))) => ((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y))),
        });
    }
    b
}

/// One line of a line chart.
pub(crate) struct Line {
    /// Legend text.
    pub name: String,
    /// Colour index.
    pub color: usize,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Dashed (e.g. p95 next to a solid p50).
    pub dashed: bool,
    /// Draw a marker at each point (sparse data such as load levels).
    pub markers: bool,
}

/// A line chart: one or more series on shared axes.
pub(crate) fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    y_from_zero: bool,
) -> Result<String, ChartError> {
    line_chart_in(title, x_desc, y_desc, lines, y_from_zero, None)
}

/// [`line_chart`] with a fixed y range (a share: 0–100 %), the legend then in the lower right
/// where a rising curve leaves room, instead of room added above the data.
fn line_chart_in(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    y_from_zero: bool,
    y_fixed: Option<(f64, f64)>,
) -> Result<String, ChartError> {
    let ((x0, x1), (y0, y1)) =
        bounds(lines.iter().flat_map(|l| l.points.iter())).ok_or(ChartError::NoData)?;
    let (x0, x1) = padded(x0, x1, false);
    let (y0, y1) = y_fixed.unwrap_or_else(|| with_legend_room(padded(y0, y1, y_from_zero)));
    let legend_at = if y_fixed.is_some() {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperLeft
    };
    svg((W, H), |root| {
        let mut chart = xy_chart(root, title, x0..x1, y0..y1, x_desc, y_desc)?;
        for l in lines {
            let c = color(l.color);
            let style = c.stroke_width(2);
            let legend = move |(x, y): (i32, i32)| {
                PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
            };
            if l.dashed {
                chart
                    .draw_series(DashedLineSeries::new(l.points.iter().copied(), 6, 4, style))
                    .map_err(err)?
                    .label(&l.name)
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 18, y)], 5, 3, c.stroke_width(2))
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(l.points.iter().copied(), style))
                    .map_err(err)?
                    .label(&l.name)
                    .legend(legend);
            }
            if l.markers && l.points.len() == 1 {
                // A lone marked point highlights a point of another line (a sweep's knee):
                // a ring around it, not a dot on top of it.
                chart
                    .draw_series(
                        l.points
                            .iter()
                            .map(|&p| Circle::new(p, 8, c.stroke_width(2))),
                    )
                    .map_err(err)?;
            } else if l.markers {
                chart
                    .draw_series(l.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(err)?;
            }
        }
        draw_legend(chart.configure_series_labels(), legend_at)?;
        Ok(())
    })
}

/// One point of a scatter chart.
pub(crate) struct Point {
    /// Label drawn beside the point.
    pub name: String,
    /// Colour index.
    pub color: usize,
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// What the point's area shows (e.g. memory); `None` draws the smallest point.
    pub size: Option<f64>,
    /// A second, smaller line under the label (e.g. the quality of a tune's configuration).
    pub note: Option<String>,
}

/// A labelled scatter chart whose point area grows with `size`: one point per model, so a
/// trade-off between three figures (latency, quality, memory) reads at a glance.
pub(crate) fn scatter_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    y_range: (f64, f64),
    points: &[Point],
) -> Result<String, ChartError> {
    let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
    let ((x0, x1), _) = bounds(xy.iter()).ok_or(ChartError::NoData)?;
    let (x0, x1) = padded(x0, x1, true);
    let (x0, x1) = (x0, x1 + (x1 - x0) * 0.15);
    let largest = points.iter().filter_map(|p| p.size).fold(0.0f64, f64::max);
    let radius = |size: Option<f64>| match size {
        Some(v) if largest > 0.0 => 5.0 + 15.0 * (v / largest).sqrt(),
        _ => 5.0,
    };
    svg((W, H), |root| {
        let mut chart = xy_chart(root, title, x0..x1, y_range.0..y_range.1, x_desc, y_desc)?;
        for p in points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()) {
            let c = color(p.color);
            let r = radius(p.size);
            chart
                .draw_series(std::iter::once(Circle::new(
                    (p.x, p.y),
                    r as i32,
                    c.mix(0.55).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new(
                    (p.x, p.y),
                    r as i32,
                    c.stroke_width(1),
                )))
                .map_err(err)?;
            let label = Text::new(clip(&p.name, 28), (r as i32 + 4, -6), (FONT, 12));
            chart
                .draw_series(std::iter::once(EmptyElement::at((p.x, p.y)) + label))
                .map_err(err)?;
            if let Some(note) = &p.note {
                let note = Text::new(clip(note, 32), (r as i32 + 4, 8), (FONT, 10));
                chart
                    .draw_series(std::iter::once(EmptyElement::at((p.x, p.y)) + note))
                    .map_err(err)?;
            }
        }
        Ok(())
    })
}

/// Empirical CDF lines of several samples: the whole latency distribution at a glance, tails
/// included, which a mean or a box hides.
pub(crate) fn cdf_chart(
    title: &str,
    x_desc: &str,
    samples: &[(String, usize, Vec<f64>)],
) -> Result<String, ChartError> {
    let lines: Vec<Line> = samples
        .iter()
        .filter(|(_, _, v)| !v.is_empty())
        .map(|(name, c, v)| {
            let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            // Exact steps for small samples; for large ones, 401 quantiles keep the page
            // light and the curve indistinguishable at chart resolution.
            let points: Vec<(f64, f64)> = if v.len() <= CDF_STEPS_MAX {
                v.iter()
                    .enumerate()
                    .flat_map(|(i, x)| {
                        [(*x, i as f64 / n * 100.0), (*x, (i + 1) as f64 / n * 100.0)]
                    })
                    .collect()
            } else {
                (0..=400)
                    .filter_map(|k| {
                        let q = k as f64 / 4.0;
                        crate::stats::percentile(&v, q).map(|x| (x, q))
                    })
                    .collect()
            };
            Line {
                name: name.clone(),
                color: *c,
                points,
                dashed: false,
                markers: false,
            }
        })
        .collect();
    if lines.is_empty() {
        return Err(ChartError::NoData);
    }
    // A share: the axis ends at 100 %.
    line_chart_in(
        title,
        x_desc,
        "% of requests at or below",
        &lines,
        true,
        Some((0.0, 100.0)),
    )
}

/// A horizontal bar chart, one bar per label: long model names stay readable.
pub(crate) fn bar_chart(
    title: &str,
    x_desc: &str,
    bars: &[(String, usize, f64)],
    value_fmt: &dyn Fn(f64) -> String,
) -> Result<String, ChartError> {
    // Segment 0 is drawn at the bottom: reverse so the first bar is on top. The segmented
    // range 0..n−1 has n segments; a single bar needs 0..1 (plotters labels no segment of an
    // empty range), leaving one empty row.
    let bars: Vec<&(String, usize, f64)> = bars.iter().rev().filter(|b| b.2.is_finite()).collect();
    if bars.is_empty() {
        return Err(ChartError::NoData);
    }
    let max = bars.iter().map(|b| b.2).fold(0.0, f64::max);
    let (_, x1) = padded(0.0, max * 1.12, true);
    let longest = bars
        .iter()
        .map(|b| b.0.chars().count())
        .max()
        .unwrap_or(4)
        .min(32);
    let h = (80 + 34 * bars.len() as u32).max(160);
    let labels: Vec<String> = bars.iter().map(|b| clip(&b.0, 32)).collect();
    svg((W, h), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size((longest as u32 * 7 + 16).max(60))
            .build_cartesian_2d(0f64..x1, (0..(bars.len() - 1).max(1)).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_desc)
            .x_label_formatter(&tick)
            .light_line_style(LIGHT)
            .bold_line_style(BOLD)
            .axis_desc_style((FONT, 13))
            .label_style((FONT, 12))
            .y_labels(bars.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (b.2, SegmentValue::Exact(i + 1)),
                    ],
                    color(b.1).filled(),
                );
                r.set_margin(5, 5, 0, 0);
                r
            }))
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let style =
                    TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
                Text::new(
                    format!(" {}", value_fmt(b.2)),
                    (b.2, SegmentValue::CenterOf(i)),
                    style,
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// A time series with a second y axis on the right (e.g. memory in MiB and KV cache use in %).
pub(crate) fn dual_axis_chart(
    title: &str,
    left_desc: &str,
    left: &[Line],
    right_desc: &str,
    right: &[Line],
    right_range: Option<(f64, f64)>,
) -> Result<String, ChartError> {
    let ((lx0, lx1), (ly0, ly1)) =
        bounds(left.iter().flat_map(|l| l.points.iter())).ok_or(ChartError::NoData)?;
    let rb = bounds(right.iter().flat_map(|l| l.points.iter()));
    let (x0, x1) = match rb {
        Some(((a, b), _)) => padded(lx0.min(a), lx1.max(b), false),
        None => padded(lx0, lx1, false),
    };
    let (y0, y1) = with_legend_room(padded(ly0, ly1, true));
    let (r0, r1) = right_range.unwrap_or_else(|| {
        rb.map_or((0.0, 1.0), |(_, (a, b))| {
            with_legend_room(padded(a, b, true))
        })
    });
    svg((W, H), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .right_y_label_area_size(if right.is_empty() { 0 } else { 64 })
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?
            .set_secondary_coord(x0..x1, r0..r1);
        xy_mesh(&mut chart, "seconds since the level started", left_desc)?;
        if !right.is_empty() {
            chart
                .configure_secondary_axes()
                .y_desc(right_desc)
                .y_label_formatter(&tick)
                .axis_desc_style((FONT, 13))
                .label_style((FONT, 12))
                .draw()
                .map_err(err)?;
        }
        for l in left {
            let c = color(l.color);
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(&l.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        for l in right {
            let c = color(l.color);
            chart
                .draw_secondary_series(DashedLineSeries::new(
                    l.points.iter().copied(),
                    6,
                    4,
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{} (right axis)", l.name))
                .legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 18, y)], 5, 3, c.stroke_width(2))
                });
        }
        draw_legend(
            chart.configure_series_labels(),
            SeriesLabelPosition::UpperRight,
        )?;
        Ok(())
    })
}

/// The legend, in the one style every chart uses, at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    mut labels: SeriesLabelStyle<'a, '_, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), ChartError> {
    labels
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 12))
        .draw()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_labelled_svg_and_escape_text() {
        let svg = line_chart(
            "TTFT <p50>",
            "concurrency",
            "ms",
            &[Line {
                name: "a&b".into(),
                color: 0,
                points: vec![(1.0, 10.0), (4.0, 30.0)],
                dashed: false,
                markers: true,
            }],
            true,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("viewBox"));
        assert!(svg.contains("TTFT &lt;p50&gt;"));
        assert!(svg.contains("a&amp;b"));
        let bars = bar_chart(
            "tok/s",
            "tokens/s",
            &[("m1".into(), 0, 10.0), ("m2".into(), 1, 0.0)],
            &|v| format!("{v:.1}"),
        )
        .unwrap();
        assert!(bars.contains("\nm1\n") && bars.contains("\nm2\n"), "{bars}");
        assert_eq!(
            (
                tick(&100.0),
                tick(&2.5),
                tick(&0.25),
                tick(&40.0),
                tick(&0.0)
            ),
            (
                "100".into(),
                "2.5".into(),
                "0.25".into(),
                "40".into(),
                "0".into()
            )
        );
        let one = bar_chart("rss", "MiB", &[("only".into(), 0, 5.0)], &|v| {
            format!("{v:.0}")
        })
        .unwrap();
        assert!(one.contains("\nonly\n"), "{one}");
        assert!(bar_chart("rss", "MiB", &[], &|v| format!("{v}")).is_err());
        let big: Vec<f64> = (0..5000).map(f64::from).collect();
        let cdf = cdf_chart("E2E", "ms", &[("m".into(), 0, big)]).unwrap();
        assert!(cdf.len() < 40_000, "{}", cdf.len());
        let cdf = cdf_chart("E2E", "ms", &[("m".into(), 0, vec![5.0])]).unwrap();
        assert!(cdf.contains("<polyline") || cdf.contains("<path"));
        assert!(cdf_chart("E2E", "ms", &[("m".into(), 0, vec![])]).is_err());
        let dual = dual_axis_chart(
            "t",
            "MiB",
            &[Line {
                name: "rss".into(),
                color: 0,
                points: vec![(0.0, 1.0), (1.0, 1.0)],
                dashed: false,
                markers: false,
            }],
            "%",
            &[Line {
                name: "kv".into(),
                color: 1,
                points: vec![(0.0, 0.0), (1.0, 50.0)],
                dashed: true,
                markers: false,
            }],
            Some((0.0, 100.0)),
        )
        .unwrap();
        assert!(dual.contains("kv (right axis)"));
    }
}
