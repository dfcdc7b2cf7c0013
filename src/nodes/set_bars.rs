//! `plot` of kind `set_bars`: the Kay V4 project's figure. One chart per
//! subject × feature layer × ROI: groups Train / Test / Validation, a bar per analysis (PLS
//! vs ridge) of the mean over voxels with the standard deviation over voxels
//! as error bar, for one split (default the first: the project's figures
//! show split 0's model).

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

use super::font::{FONT, register_font};
use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::vocab::{ImageFormat, Metric};

pub const VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct SetBarsTask {
    pub analyses: Vec<String>,
    pub metric: Metric,
    /// The split drawn ("0", or "" for analyses with one split).
    pub split: String,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    /// (subject, source, layer, roi) of each chart.
    pub charts: Vec<(String, String, String, String)>,
}

const SETS: [(&str, &str); 3] = [
    ("train", "Train"),
    ("test", "Test"),
    ("validation", "Validation"),
];

/// The project's colours per analysis (ridge red, PLS green, then blue).
const COLOURS: [RGBColor; 4] = [
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(148, 103, 189),
];

impl NodeKind for SetBarsTask {
    fn kind(&self) -> &'static str {
        "plot"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        256 << 20
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        register_font();
        let df = super::table::read_results(ctx.input("table")?.read("results.parquet")?)
            .map_err(|e| ctx.fail(format!("reading results: {e}")))?;
        let text = |name: &str| crate::record::strings(&df, name);
        let cols = [
            text("analysis")?,
            text("subject")?,
            text("source")?,
            text("layer")?,
            text("roi")?,
            text("hemisphere")?,
            text("split")?,
            text("set")?,
            text("metric")?,
            text("aggregate")?,
        ];
        let values = crate::record::floats(&df, "value")?;
        let find = |analysis: &str,
                    chart: &(String, String, String, String),
                    set: &str,
                    agg: &str|
         -> f64 {
            (0..values.len())
                .find(|&i| {
                    cols[0][i] == analysis
                        && cols[1][i] == chart.0
                        && cols[2][i] == chart.1
                        && cols[3][i] == chart.2
                        && cols[4][i] == chart.3
                        && cols[5][i] == crate::record::BOTH
                        && (cols[6][i] == self.split || cols[6][i].is_empty())
                        && cols[7][i] == set
                        && cols[8][i] == self.metric.name()
                        && cols[9][i] == agg
                })
                .map_or(f64::NAN, |i| values[i])
        };
        for chart in &self.charts {
            // bars[set][analysis] = (mean, std)
            let bars: Vec<Vec<(f64, f64)>> = SETS
                .iter()
                .map(|(set, _)| {
                    self.analyses
                        .iter()
                        .map(|a| (find(a, chart, set, "mean"), find(a, chart, set, "std")))
                        .collect()
                })
                .collect();
            // Sets no analysis scored are left out.
            let shown: Vec<usize> = (0..SETS.len())
                .filter(|&s| bars[s].iter().any(|b| b.0.is_finite()))
                .collect();
            let stem = format!(
                "set_bars_{}_{}_{}_{}_{}",
                self.metric.name(),
                chart.0,
                chart.1,
                chart.2,
                chart.3
            );
            let split = if self.split.is_empty() {
                String::new()
            } else {
                format!(", split {}", self.split)
            };
            let title = match &self.title {
                Some(t) => format!("{t} — {} {} ({} {})", chart.0, chart.3, chart.1, chart.2),
                None => format!(
                    "Regression performance across {} {} voxels ({} {}{split})",
                    chart.0, chart.3, chart.1, chart.2
                ),
            };
            for format in &self.formats {
                let name = format!("{stem}.{}", format.ext());
                let path = ctx.out.path(&name);
                let size = (760, 520);
                let r = match format {
                    ImageFormat::Png => {
                        let root = BitMapBackend::new(&path, size).into_drawing_area();
                        draw(&root, self, &title, &bars, &shown)
                            .and_then(|_| root.present().map_err(|e| e.to_string()))
                    }
                    ImageFormat::Svg => {
                        let root = SVGBackend::new(&path, size).into_drawing_area();
                        draw(&root, self, &title, &bars, &shown)
                            .and_then(|_| root.present().map_err(|e| e.to_string()))
                    }
                };
                r.map_err(|e| ctx.fail(format!("drawing {name}: {e}")))?;
            }
        }
        Ok(())
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    task: &SetBarsTask,
    title: &str,
    bars: &[Vec<(f64, f64)>],
    shown: &[usize],
) -> std::result::Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let top = shown
        .iter()
        .flat_map(|&s| bars[s].iter())
        .filter(|b| b.0.is_finite())
        .map(|b| b.0 + b.1.max(0.0))
        .fold(0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let n = shown.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .light_line_style(TRANSPARENT)
        .y_desc(format!("Variance explained ({})", task.metric.label()))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(e)?;
    let k = task.analyses.len().max(1) as f64;
    let width = 0.8 / k;
    for (g, &s) in shown.iter().enumerate() {
        for (a, (mean, std)) in bars[s].iter().enumerate() {
            if !mean.is_finite() {
                continue;
            }
            let colour = COLOURS[a % COLOURS.len()];
            let x0 = g as f64 + 0.1 + a as f64 * width;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + width, mean.max(0.0))],
                    colour.mix(0.6).filled(),
                )))
                .map_err(e)?;
            if std.is_finite() {
                // mean ± std with caps (the project's capsize=10).
                let (xm, cap) = (x0 + width / 2.0, width / 6.0);
                let (lo, hi) = ((mean - std).max(0.0), mean + std);
                let lines = [
                    vec![(xm, lo), (xm, hi)],
                    vec![(xm - cap, lo), (xm + cap, lo)],
                    vec![(xm - cap, hi), (xm + cap, hi)],
                ];
                chart
                    .draw_series(lines.into_iter().map(|l| PathElement::new(l, BLACK)))
                    .map_err(e)?;
            }
        }
        let (px, py) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        root.draw(&Text::new(
            SETS[s].1,
            (px - 30, py + 10),
            (FONT, 16).into_font(),
        ))
        .map_err(e)?;
    }
    for (a, name) in task.analyses.iter().enumerate() {
        let colour = COLOURS[a % COLOURS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-10.0, -10.0), (-10.0, -10.0)],
                colour.mix(0.6).filled(),
            )))
            .map_err(e)?
            .label(name.clone())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.mix(0.6).filled())
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font((FONT, 14))
        .draw()
        .map_err(e)?;
    Ok(())
}
