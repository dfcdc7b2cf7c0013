//! `plot` of kind `scatter`: predicted against measured response per
//! stimulus, for fits of an ROI's mean response (`target = "roi_mean"`), as
//! the Kay V4 project's "Predicted vs. actual response to images for avg of
//! V4 voxels": the identity line, and the squared Pearson r in the title.

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

use super::font::{FONT, register_font};
use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::vocab::ImageFormat;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct ScatterTask {
    pub analysis: String,
    /// "validation", "test" or "train".
    pub set: String,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    /// Per upstream `score:{i}`: (subject, source, layer, roi).
    pub charts: Vec<(String, String, String, String)>,
}

impl NodeKind for ScatterTask {
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
        for (i, chart) in self.charts.iter().enumerate() {
            let points = ctx
                .input(&format!("score:{i}"))?
                .read_f64(&format!("points.{}.npy", self.set))?;
            let (n, _) = points.rows_cols();
            let xy: Vec<(f64, f64)> = (0..n)
                .map(|k| (points.data[2 * k], points.data[2 * k + 1]))
                .collect();
            let (a, p): (Vec<f64>, Vec<f64>) = xy.iter().copied().unzip();
            let r = crate::numerics::metrics::pearson_r(&p, &a);
            let (subject, source, layer, roi) = chart;
            let title = match &self.title {
                Some(t) => format!("{t}\n{} set, {subject}, r-squared = {:.2}", self.set, r * r),
                None => format!(
                    "Predicted vs. actual response for avg of {roi} voxels\n{} data, {subject} ({source} {layer}), r-squared = {:.2}",
                    capitalise(&self.set),
                    r * r
                ),
            };
            let stem = format!(
                "scatter_{}_{subject}_{source}_{layer}_{roi}_{}",
                self.analysis, self.set
            );
            for format in &self.formats {
                let name = format!("{stem}.{}", format.ext());
                let path = ctx.out.path(&name);
                let size = (620, 620);
                let res = match format {
                    ImageFormat::Png => {
                        let root = BitMapBackend::new(&path, size).into_drawing_area();
                        draw(&root, &title, &xy)
                            .and_then(|_| root.present().map_err(|e| e.to_string()))
                    }
                    ImageFormat::Svg => {
                        let root = SVGBackend::new(&path, size).into_drawing_area();
                        draw(&root, &title, &xy)
                            .and_then(|_| root.present().map_err(|e| e.to_string()))
                    }
                };
                res.map_err(|e| ctx.fail(format!("drawing {name}: {e}")))?;
            }
        }
        Ok(())
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    xy: &[(f64, f64)],
) -> std::result::Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let finite = xy.iter().flat_map(|p| [p.0, p.1]).filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let (lo, hi) = if lo < hi { (lo, hi) } else { (-1.0, 1.0) };
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let (t1, t2) = title.split_once('\n').unwrap_or((title, ""));
    let (top, body) = root.split_vertically(60);
    top.draw(&Text::new(t1.to_string(), (20, 8), (FONT, 17)))
        .map_err(e)?;
    top.draw(&Text::new(t2.to_string(), (20, 32), (FONT, 15)))
        .map_err(e)?;
    let mut chart = ChartBuilder::on(&body)
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(e)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("Measured response")
        .y_desc("Predicted response")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(e)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(lo, lo), (hi, hi)],
            BLACK.mix(0.6),
        )))
        .map_err(e)?;
    chart
        .draw_series(
            xy.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, RGBColor(31, 119, 180).mix(0.7).filled())),
        )
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
