//! `plot` nodes of the RSA family (seed 004), drawn by `rsa_plots`:
//!
//! - `rdms`: per subject × ROI, the neural RDM first, then every layer's,
//!   on one colour scale, ticks at the stimulus orientation when the
//!   subject has one;
//! - `rsa_bars`: per subject × ROI, each layer's similarity to the neural
//!   RDM with its bootstrap interval, feature sources side by side (read
//!   from the results table, like every other chart of scores);
//! - `tuning_curves`: per subject, a row of neurons per ROI, then a row of
//!   units per layer; also `tuning_curves_<analysis>.csv`, long.

use std::fmt::Write as _;

use serde::Serialize;

use super::rsa_plots::{self, BarSeries, RdmPanel, TuningRow};
use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::vocab::ImageFormat;

pub const VERSION: u32 = 1;

/// One figure of RDM panels: (subject, roi, panel labels in upstream order).
#[derive(Debug, Clone, Serialize)]
pub struct RdmFigure {
    pub subject: String,
    pub roi: String,
    pub panels: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RdmsPlotTask {
    pub analysis: String,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    /// Upstream `rdm:{figure:02}:{panel:03}` and `subject:{figure:02}`.
    pub figures: Vec<RdmFigure>,
}

impl NodeKind for RdmsPlotTask {
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
        super::font::register_font();
        for (f, fig) in self.figures.iter().enumerate() {
            let mut panels = Vec::new();
            for (p, label) in fig.panels.iter().enumerate() {
                let a = ctx
                    .input(&format!("rdm:{f:02}:{p:03}"))?
                    .read_f64("rdm.npy")?;
                panels.push(RdmPanel {
                    label: label.clone(),
                    n: a.rows_cols().0,
                    data: a.data,
                });
            }
            let ticks = ctx
                .input(&format!("subject:{f:02}"))
                .ok()
                .and_then(|e| e.read_f64("orientations.npy").ok())
                .map(|a| a.data);
            let title = match &self.title {
                Some(t) => format!("{t} — {} · {}", fig.subject, fig.roi),
                None => format!("RDMs — {} · {}", fig.subject, fig.roi),
            };
            for format in &self.formats {
                let name = format!(
                    "rdms_{}_{}_{}.{}",
                    self.analysis,
                    fig.subject,
                    fig.roi,
                    format.ext()
                );
                rsa_plots::rdm_panels(
                    &ctx.out.path(&name),
                    &title,
                    &panels,
                    None,
                    ticks.as_deref(),
                )
                .map_err(|e| ctx.fail(format!("drawing {name}: {e}")))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RsaBarsTask {
    pub analysis: String,
    /// The record metric drawn (`rdm_pearson`, …).
    pub measure: String,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    /// (subject, roi) per chart.
    pub charts: Vec<(String, String)>,
}

fn measure_label(m: &str) -> String {
    match m.trim_start_matches("rdm_") {
        "pearson" => "Pearson r with the neural RDM".into(),
        "spearman" => "Spearman ρ with the neural RDM".into(),
        "kendall_tau_a" => "Kendall τa with the neural RDM".into(),
        other => format!("{other} with the neural RDM"),
    }
}

impl NodeKind for RsaBarsTask {
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
        super::font::register_font();
        let df = super::table::read_results(ctx.input("table")?.read("results.parquet")?)
            .map_err(|e| ctx.fail(format!("reading results: {e}")))?;
        let text = |name: &str| crate::record::strings(&df, name);
        let (analysis, subject, source, layer, roi, metric, agg) = (
            text("analysis")?,
            text("subject")?,
            text("source")?,
            text("layer")?,
            text("roi")?,
            text("metric")?,
            text("aggregate")?,
        );
        let value = crate::record::floats(&df, "value")?;
        let layer_index = crate::record::floats(&df, "layer_index")?;
        for (subj, r) in &self.charts {
            let rows: Vec<usize> = (0..value.len())
                .filter(|&i| {
                    analysis[i] == self.analysis
                        && &subject[i] == subj
                        && &roi[i] == r
                        && metric[i] == self.measure
                })
                .collect();
            let mut series: Vec<BarSeries> = Vec::new();
            let mut order: Vec<(String, f64, String)> = rows
                .iter()
                .map(|&i| (source[i].clone(), layer_index[i], layer[i].clone()))
                .collect();
            order.sort_by(|a, b| {
                (&a.0, a.1)
                    .partial_cmp(&(&b.0, b.1))
                    .expect("finite indices")
            });
            order.dedup();
            for (src, _, l) in &order {
                let get = |a: &str| {
                    rows.iter()
                        .find(|&&i| &source[i] == src && &layer[i] == l && agg[i] == a)
                        .map_or(f64::NAN, |&i| value[i])
                };
                let bar = (l.clone(), get("value"), get("ci_low"), get("ci_high"));
                match series.iter_mut().find(|s| &s.name == src) {
                    Some(s) => s.bars.push(bar),
                    None => series.push(BarSeries {
                        name: src.clone(),
                        bars: vec![bar],
                    }),
                }
            }
            let title = match &self.title {
                Some(t) => format!("{t} — {subj} · {r}"),
                None => format!("Which layer resembles {r} ({subj})?"),
            };
            for format in &self.formats {
                let name = format!(
                    "rsa_bars_{}_{}_{subj}_{r}.{}",
                    self.analysis,
                    self.measure.trim_start_matches("rdm_"),
                    format.ext()
                );
                rsa_plots::similarity_bars(
                    &ctx.out.path(&name),
                    &title,
                    &measure_label(&self.measure),
                    &series,
                )
                .map_err(|e| ctx.fail(format!("drawing {name}: {e}")))?;
            }
        }
        Ok(())
    }
}

/// One row of tuning panels: its label, and whether it is neurons (true)
/// or model units.
#[derive(Debug, Clone, Serialize)]
pub struct TuningFigureRow {
    pub label: String,
    pub neurons: bool,
    /// For the CSV: source, layer, roi.
    pub source: String,
    pub layer: String,
    pub roi: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuningPlotTask {
    pub analysis: String,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    /// (subject, rows); upstream `tuning:{figure:02}:{row:03}`.
    pub figures: Vec<(String, Vec<TuningFigureRow>)>,
}

impl NodeKind for TuningPlotTask {
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
        use crate::analyses::tuning::TuningOut;
        super::font::register_font();
        let mut csv = String::from("subject,source,layer,roi,unit,osi,orientation,response\n");
        for (f, (subject, rows)) in self.figures.iter().enumerate() {
            let mut drawn = Vec::new();
            let mut x = Vec::new();
            for (r, row) in rows.iter().enumerate() {
                let e = ctx.input(&format!("tuning:{f:02}:{r:03}"))?;
                let curves = e.read_f64("curves.npy")?;
                let theta = e.read_f64("orientations.npy")?.data;
                let out: TuningOut = e.read_json("tuning.json")?;
                let n = theta.len();
                let mut panels = Vec::new();
                for (k, (&u, &o)) in out.units.iter().zip(&out.osi).enumerate() {
                    let y = curves.data[k * n..(k + 1) * n].to_vec();
                    for (t, v) in theta.iter().zip(&y) {
                        let _ = writeln!(
                            csv,
                            "{subject},{},{},{},{u},{o},{t},{v}",
                            row.source, row.layer, row.roi
                        );
                    }
                    let what = if row.neurons { "neuron" } else { "unit" };
                    panels.push((format!("{what} {u} · OSI {o:.2}"), y));
                }
                x = theta;
                drawn.push(TuningRow {
                    label: row.label.clone(),
                    curves: panels,
                });
            }
            let title = match &self.title {
                Some(t) => format!("{t} — {subject}"),
                None => format!("Tuning curves — {subject}"),
            };
            for format in &self.formats {
                let name = format!("tuning_curves_{}_{subject}.{}", self.analysis, format.ext());
                rsa_plots::tuning_panels(
                    &ctx.out.path(&name),
                    &title,
                    "orientation (degrees)",
                    &x,
                    &drawn,
                )
                .map_err(|e| ctx.fail(format!("drawing {name}: {e}")))?;
            }
        }
        ctx.out.write_bytes(
            &format!("tuning_curves_{}.csv", self.analysis),
            csv.as_bytes(),
        )
    }
}
