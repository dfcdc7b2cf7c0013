//! `plot` of kind `roi_bars`: the Algonauts devkit's figure. One chart per
//! subject × source × layer: a bar per ROI and hemisphere (left and right
//! side by side) of the ROI's aggregate, y from 0 to 1 as the devkit draws
//! Pearson r, ROI names turned so that 32 of them fit. An ROI without voxels
//! in a hemisphere has no bar (its value is NaN), and says "n/a".

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use super::font::{FONT, register_font};
use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::vocab::{Aggregate, ImageFormat, Metric};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct BarsTask {
    pub analysis: String,
    pub metric: Metric,
    pub aggregate: Aggregate,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    /// (subject, source, layer) of each chart.
    pub charts: Vec<(String, String, String)>,
    pub rois: Vec<String>,
    pub hemis: Vec<String>,
}

impl NodeKind for BarsTask {
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
            text("metric")?,
            text("aggregate")?,
        ];
        let values = crate::record::floats(&df, "value")?;
        let headline = super::table::headline_rows(&df, &self.analysis)?;
        let find = |chart: &(String, String, String), roi: &str, hemi: &str| -> f64 {
            (0..values.len())
                .find(|&i| {
                    headline[i]
                        && cols[0][i] == self.analysis
                        && cols[1][i] == chart.0
                        && cols[2][i] == chart.1
                        && cols[3][i] == chart.2
                        && cols[4][i] == roi
                        && cols[5][i] == hemi
                        && cols[6][i] == self.metric.name()
                        && cols[7][i] == self.aggregate.name()
                })
                .map_or(f64::NAN, |i| values[i])
        };
        for chart in &self.charts {
            let bars: Vec<Vec<f64>> = self
                .rois
                .iter()
                .map(|r| self.hemis.iter().map(|h| find(chart, r, h)).collect())
                .collect();
            let stem = format!(
                "roi_bars_{}_{}_{}_{}_{}",
                self.analysis,
                self.metric.name(),
                chart.0,
                chart.1,
                chart.2
            );
            let title = match &self.title {
                Some(t) => format!("{t} — {} · {} · {}", chart.0, chart.1, chart.2),
                None => format!("{} · {} · {}", chart.0, chart.1, chart.2),
            };
            let size = (300 + 48 * self.rois.len() as u32, 520);
            for format in &self.formats {
                let name = format!("{stem}.{}", format.ext());
                let path = ctx.out.path(&name);
                let r = match format {
                    ImageFormat::Png => {
                        let root = BitMapBackend::new(&path, size).into_drawing_area();
                        draw(&root, self, &title, &bars)
                            .and_then(|_| root.present().map_err(|e| e.to_string()))
                    }
                    ImageFormat::Svg => {
                        let root = SVGBackend::new(&path, size).into_drawing_area();
                        draw(&root, self, &title, &bars)
                            .and_then(|_| root.present().map_err(|e| e.to_string()))
                    }
                };
                r.map_err(|e| ctx.fail(format!("drawing {name}: {e}")))?;
            }
        }
        Ok(())
    }
}

const COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];

fn hemi_name(h: &str) -> String {
    match h {
        "lh" => "Left Hemisphere".into(),
        "rh" => "Right Hemisphere".into(),
        other => other.to_string(),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    task: &BarsTask,
    title: &str,
    bars: &[Vec<f64>],
) -> std::result::Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let n = task.rois.len().max(1);
    let lo = bars
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0f64, f64::min);
    let ylabel = format!(
        "{} {}",
        capitalise(task.aggregate.name()),
        task.metric.label()
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(110)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, lo.min(0.0)..1f64)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .light_line_style(TRANSPARENT)
        .y_desc(ylabel)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(e)?;
    let k = task.hemis.len().max(1) as f64;
    let width = 0.6 / k;
    for (r, vals) in bars.iter().enumerate() {
        for (h, v) in vals.iter().enumerate() {
            let x0 = r as f64 + 0.5 - 0.3 + h as f64 * width;
            let colour = COLOURS[h % COLOURS.len()];
            if v.is_finite() {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, 0.0), (x0 + width, *v)],
                        colour.filled(),
                    )))
                    .map_err(e)?;
            } else {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "n/a",
                        (x0, 0.02),
                        (FONT, 10).into_font().color(&colour),
                    )))
                    .map_err(e)?;
            }
        }
    }
    for (h, hemi) in task.hemis.iter().enumerate() {
        let colour = COLOURS[h % COLOURS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-10.0, -10.0), (-10.0, -10.0)],
                colour.filled(),
            )))
            .map_err(e)?
            .label(hemi_name(hemi))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font((FONT, 14))
        .draw()
        .map_err(e)?;
    // ROI names under the axis, turned a quarter (plotters turns text by
    // quarters only; the devkit's 60° does not fit 32 names either way).
    let style = TextStyle::from((FONT, 14).into_font())
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (r, name) in task.rois.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(r as f64 + 0.5, lo.min(0.0)));
        root.draw(&Text::new(name.clone(), (px, py + 8), style.clone()))
            .map_err(e)?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (n as f64, 0.0)],
            BLACK,
        )))
        .map_err(e)?;
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
