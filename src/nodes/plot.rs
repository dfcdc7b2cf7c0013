//! `plot`: one heatmap per model (rows = layers in depth order, columns =
//! ROIs), the value printed in every cell, and one colour scale shared by all
//! models so that their colours compare directly.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ColorMap;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::analyses::expand::Scored;
use crate::config::{Experiment, PlotKind, PlotSpec};
use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::plan::{Graph, natural_key};
use crate::vocab::{Aggregate, ImageFormat, Metric};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

pub const VERSION: u32 = 1;

pub(crate) use super::font::{FONT, register_font};

#[derive(Debug, Clone, Serialize)]
pub struct Panel {
    pub subject: String,
    /// The feature source.
    pub model: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlotTask {
    pub analysis: String,
    pub metric: Metric,
    pub aggregate: Aggregate,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    pub panels: Vec<Panel>,
    pub rois: Vec<String>,
    /// Prefix the file names with the subject (when the experiment has several).
    pub name_subject: bool,
    /// Put the analysis in the file names (when the experiment has several).
    pub name_analysis: bool,
}

/// The file stem of one panel's heatmap.
pub fn panel_stem(metric: Metric, panel: &Panel, name_subject: bool) -> String {
    panel_stem_of(None, metric, panel, name_subject)
}

fn panel_stem_of(
    analysis: Option<&str>,
    metric: Metric,
    panel: &Panel,
    name_subject: bool,
) -> String {
    if let Some(a) = analysis {
        let s = panel_stem_of(None, metric, panel, name_subject);
        return s.replacen("heatmap_", &format!("heatmap_{a}_"), 1);
    }
    if name_subject {
        format!(
            "heatmap_{}_{}_{}",
            metric.name(),
            panel.subject,
            panel.model
        )
    } else {
        format!("heatmap_{}_{}", metric.name(), panel.model)
    }
}

struct Grid {
    title: String,
    scale_label: String,
    rows: Vec<String>,
    cols: Vec<String>,
    /// rows × cols, NaN where missing
    values: Vec<Vec<f64>>,
}

impl NodeKind for PlotTask {
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
        let table = ctx.input("table")?;
        let df = super::table::read_results(table.read("results.parquet")?)
            .map_err(|e| ctx.fail(format!("reading results: {e}")))?;
        let text = |name: &str| crate::record::strings(&df, name);
        let (analysis, subj, model, layer, roi, hemi, metric, agg) = (
            text("analysis")?,
            text("subject")?,
            text("source")?,
            text("layer")?,
            text("roi")?,
            text("hemisphere")?,
            text("metric")?,
            text("aggregate")?,
        );
        let values = crate::record::floats(&df, "value")?;
        let headline = super::table::headline_rows(&df, &self.analysis)?;
        // This analysis's metric, aggregated over both hemispheres.
        let keep: Vec<usize> = (0..values.len())
            .filter(|&i| {
                headline[i]
                    && analysis[i] == self.analysis
                    && metric[i] == self.metric.name()
                    && agg[i] == self.aggregate.name()
                    && hemi[i] == crate::record::BOTH
            })
            .collect();

        let grids: Vec<Grid> = self
            .panels
            .iter()
            .map(|p| {
                let values = p
                    .layers
                    .iter()
                    .map(|l| {
                        self.rois
                            .iter()
                            .map(|r| {
                                keep.iter()
                                    .copied()
                                    .find(|&i| {
                                        subj[i] == p.subject
                                            && model[i] == p.model
                                            && &layer[i] == l
                                            && &roi[i] == r
                                    })
                                    .map_or(f64::NAN, |i| values[i])
                            })
                            .collect()
                    })
                    .collect();
                let who = if self.name_subject {
                    format!("{} · {}", p.subject, p.model)
                } else {
                    p.model.clone()
                };
                let title = match &self.title {
                    Some(t) => format!("{t} — {who}"),
                    None => format!(
                        "{who}: {} ({} over voxels)",
                        self.metric.label(),
                        self.aggregate.name()
                    ),
                };
                Grid {
                    title,
                    scale_label: self.metric.label().to_string(),
                    rows: p.layers.clone(),
                    cols: self.rois.clone(),
                    values,
                }
            })
            .collect();

        // One scale for every model; include 0 so that sign is readable.
        let finite = grids
            .iter()
            .flat_map(|g| g.values.iter().flatten())
            .copied()
            .filter(|v| v.is_finite());
        let (mut lo, mut hi) =
            finite.fold((0f64, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
        if !hi.is_finite() || hi <= lo {
            hi = lo + 1.0;
        }
        if lo >= hi {
            lo = hi - 1.0;
        }

        for (panel, grid) in self.panels.iter().zip(&grids) {
            let stem = panel_stem_of(
                self.name_analysis.then_some(self.analysis.as_str()),
                self.metric,
                panel,
                self.name_subject,
            );
            let size = (
                200 + 110 * grid.cols.len() as u32 + 150,
                140 + 60 * grid.rows.len() as u32,
            );
            for format in &self.formats {
                match format {
                    ImageFormat::Png => {
                        let path = ctx.out.path(&format!("{stem}.png"));
                        let root = BitMapBackend::new(&path, size).into_drawing_area();
                        draw(&root, grid, lo, hi)
                            .map_err(|e| ctx.fail(format!("drawing {stem}.png: {e}")))?;
                        root.present()
                            .map_err(|e| ctx.fail(format!("writing {stem}.png: {e}")))?;
                    }
                    ImageFormat::Svg => {
                        let path = ctx.out.path(&format!("{stem}.svg"));
                        let root = SVGBackend::new(&path, size).into_drawing_area();
                        draw(&root, grid, lo, hi)
                            .map_err(|e| ctx.fail(format!("drawing {stem}.svg: {e}")))?;
                        root.present()
                            .map_err(|e| ctx.fail(format!("writing {stem}.svg: {e}")))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn colour(v: f64, lo: f64, hi: f64) -> RGBColor {
    if !v.is_finite() {
        return RGBColor(220, 220, 220);
    }
    ViridisRGB.get_color_normalized(v as f32, lo as f32, hi as f32)
}

/// Black text on light cells, white on dark ones.
fn ink(c: RGBColor) -> RGBColor {
    let lum = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if lum > 140.0 { BLACK } else { WHITE }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    g: &Grid,
    lo: f64,
    hi: f64,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (w, _h) = root.dim_in_pixel();
    let (left, top, cw, ch) = (200i32, 90i32, 110i32, 60i32);
    let text = |size: f64| TextStyle::from((FONT, size).into_font()).color(&BLACK);
    root.draw(&Text::new(
        g.title.clone(),
        (w as i32 / 2, 30),
        text(22.0).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    for (j, c) in g.cols.iter().enumerate() {
        root.draw(&Text::new(
            c.clone(),
            (left + j as i32 * cw + cw / 2, top - 15),
            text(17.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    for (i, r) in g.rows.iter().enumerate() {
        let y = top + i as i32 * ch;
        root.draw(&Text::new(
            r.clone(),
            (left - 10, y + ch / 2),
            text(16.0).pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        for (j, v) in g.values[i].iter().enumerate() {
            let x = left + j as i32 * cw;
            let fill = colour(*v, lo, hi);
            root.draw(&Rectangle::new([(x, y), (x + cw, y + ch)], fill.filled()))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cw, y + ch)],
                WHITE.stroke_width(1),
            ))?;
            let label = if v.is_finite() {
                format!("{v:.3}")
            } else {
                "–".into()
            };
            root.draw(&Text::new(
                label,
                (x + cw / 2, y + ch / 2),
                TextStyle::from((FONT, 16.0).into_font())
                    .color(&ink(fill))
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
    }
    // Colour bar, shared across models.
    let bx = left + g.cols.len() as i32 * cw + 40;
    let bh = (g.rows.len() as i32 * ch).max(120);
    let steps = 100;
    for s in 0..steps {
        let v = hi - (hi - lo) * s as f64 / steps as f64;
        let y0 = top + bh * s / steps;
        let y1 = top + bh * (s + 1) / steps;
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + 24, y1 + 1)],
            colour(v, lo, hi).filled(),
        ))?;
    }
    root.draw(&Text::new(
        g.scale_label.clone(),
        (bx + 12, top - 15),
        text(13.0).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    root.draw(&Text::new(
        "layer \\ ROI".to_string(),
        (left - 10, top - 15),
        text(13.0).pos(Pos::new(HPos::Right, VPos::Center)),
    ))?;
    for (v, y) in [(hi, top), ((hi + lo) / 2.0, top + bh / 2), (lo, top + bh)] {
        root.draw(&Text::new(
            format!("{v:.3}"),
            (bx + 30, y),
            text(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// The plot node of a `[[plots]]` entry (one per analysis, kind and metric).
pub fn add(
    g: &mut Graph,
    exp: &Experiment,
    p: &PlotSpec,
    scored: &[Scored],
    table: NodeIndex,
    artifacts: &[(String, crate::analyses::expand::Artifact)],
) -> NodeIndex {
    let art: Vec<&crate::analyses::expand::Artifact> = artifacts
        .iter()
        .filter(|(a, _)| *a == p.analysis)
        .map(|(_, x)| x)
        .collect();
    let mine: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.labels.analysis == p.analysis)
        .collect();
    let name_analysis = exp.analyses.len() > 1;
    let aggregate = aggregate_of(exp, &p.analysis);
    match p.kind {
        PlotKind::Rdms => {
            use super::rsa_figures::{RdmFigure, RdmsPlotTask};
            let rdms: Vec<_> = art.iter().filter(|a| a.kind == "rdm").collect();
            let mut figures = Vec::new();
            let mut upstream = Vec::new();
            for neural in rdms.iter().filter(|a| a.source.is_empty()) {
                let f = figures.len();
                let mut layers: Vec<_> = rdms
                    .iter()
                    .filter(|a| !a.source.is_empty() && a.subject == neural.subject)
                    .collect();
                layers.sort_by_key(|a| (a.source.clone(), a.layer_index));
                let mut panels = vec![format!("{} · {}", neural.subject, neural.roi)];
                upstream.push((format!("rdm:{f:02}:000"), neural.node));
                for (k, l) in layers.iter().enumerate() {
                    panels.push(format!("{} '{}'", l.source, l.layer));
                    upstream.push((format!("rdm:{f:02}:{:03}", k + 1), l.node));
                }
                if let Some(s) = neural.stimulus_node {
                    upstream.push((format!("subject:{f:02}"), s));
                }
                figures.push(RdmFigure {
                    subject: neural.subject.clone(),
                    roi: neural.roi.clone(),
                    panels,
                });
            }
            g.add(
                format!("plot/rdms/{}", p.analysis),
                RdmsPlotTask {
                    analysis: p.analysis.clone(),
                    formats: p.formats.clone(),
                    title: p.title.clone(),
                    figures,
                },
                upstream,
                BTreeMap::new(),
            )
        }
        PlotKind::RsaBars => {
            let mut charts: Vec<(String, String)> = Vec::new();
            for s in &mine {
                let c = (s.labels.subject.clone(), s.sort_roi.clone());
                if !charts.contains(&c) {
                    charts.push(c);
                }
            }
            let measure = p
                .measure
                .clone()
                .expect("validated: rsa_bars has a comparison");
            g.add(
                format!("plot/rsa_bars/{}/{measure}", p.analysis),
                super::rsa_figures::RsaBarsTask {
                    analysis: p.analysis.clone(),
                    measure,
                    formats: p.formats.clone(),
                    title: p.title.clone(),
                    charts,
                },
                vec![("table".into(), table)],
                BTreeMap::new(),
            )
        }
        PlotKind::TuningCurves => {
            use super::rsa_figures::{TuningFigureRow, TuningPlotTask};
            let tuning: Vec<_> = art.iter().filter(|a| a.kind == "tuning").collect();
            let mut subjects: Vec<String> = Vec::new();
            for a in &tuning {
                if !subjects.contains(&a.subject) {
                    subjects.push(a.subject.clone());
                }
            }
            let mut figures = Vec::new();
            let mut upstream = Vec::new();
            for (f, subj) in subjects.iter().enumerate() {
                let mut of: Vec<_> = tuning.iter().filter(|a| &a.subject == subj).collect();
                // Neurons first (ROI order), then layers in depth order.
                of.sort_by_key(|a| (!a.source.is_empty(), a.source.clone(), a.layer_index));
                let mut rows = Vec::new();
                for (r, a) in of.iter().enumerate() {
                    upstream.push((format!("tuning:{f:02}:{r:03}"), a.node));
                    rows.push(TuningFigureRow {
                        label: if a.source.is_empty() {
                            format!("{} · {}", a.subject, a.roi)
                        } else {
                            format!("{} '{}'", a.source, a.layer)
                        },
                        neurons: a.source.is_empty(),
                        source: a.source.clone(),
                        layer: a.layer.clone(),
                        roi: a.roi.clone(),
                    });
                }
                figures.push((subj.clone(), rows));
            }
            g.add(
                format!("plot/tuning_curves/{}", p.analysis),
                TuningPlotTask {
                    analysis: p.analysis.clone(),
                    formats: p.formats.clone(),
                    title: p.title.clone(),
                    figures,
                },
                upstream,
                BTreeMap::new(),
            )
        }
        PlotKind::Heatmap => {
            let mut panels: Vec<Panel> = Vec::new();
            for s in &mine {
                let l = &s.labels;
                match panels
                    .iter_mut()
                    .find(|x| x.subject == l.subject && x.model == l.source)
                {
                    Some(x) => {
                        if !x.layers.contains(&l.layer) {
                            x.layers.push(l.layer.clone());
                        }
                    }
                    None => panels.push(Panel {
                        subject: l.subject.clone(),
                        model: l.source.clone(),
                        layers: vec![l.layer.clone()],
                    }),
                }
            }
            panels.sort_by(|a, b| (&a.subject, &a.model).cmp(&(&b.subject, &b.model)));
            let mut rois: Vec<String> = Vec::new();
            for s in &mine {
                if !rois.contains(&s.sort_roi) {
                    rois.push(s.sort_roi.clone());
                }
            }
            rois.sort_by_key(|r| natural_key(r));
            let rois = p.rois.clone().unwrap_or(rois);
            g.add(
                format!("plot/heatmap/{}/{}", p.analysis, p.metric.name()),
                PlotTask {
                    analysis: p.analysis.clone(),
                    metric: p.metric,
                    aggregate,
                    formats: p.formats.clone(),
                    title: p.title.clone(),
                    panels,
                    rois,
                    name_subject: exp.subjects.len() > 1,
                    name_analysis,
                },
                vec![("table".into(), table)],
                BTreeMap::new(),
            )
        }
        PlotKind::SetBars => {
            let drawn: Vec<&Scored> = scored
                .iter()
                .filter(|s| p.analyses.contains(&s.labels.analysis))
                .collect();
            let mut charts: Vec<(String, String, String, String)> = Vec::new();
            for s in &drawn {
                let c = (
                    s.labels.subject.clone(),
                    s.labels.source.clone(),
                    s.labels.layer.clone(),
                    s.sort_roi.clone(),
                );
                if !charts.contains(&c) {
                    charts.push(c);
                }
            }
            // The project's figures: split 0's model.
            let split = p.split.clone().unwrap_or_else(|| {
                if drawn.iter().any(|s| s.labels.split == "0") {
                    "0".into()
                } else {
                    String::new()
                }
            });
            g.add(
                format!("plot/set_bars/{}/{}", p.analyses.join("+"), p.metric.name()),
                super::set_bars::SetBarsTask {
                    analyses: p.analyses.clone(),
                    metric: p.metric,
                    split,
                    formats: p.formats.clone(),
                    title: p.title.clone(),
                    charts,
                },
                vec![("table".into(), table)],
                BTreeMap::new(),
            )
        }
        PlotKind::Scatter => {
            // One chart per fit's record of the set: the only split, or the first.
            let picked: Vec<&Scored> = mine
                .iter()
                .copied()
                .filter(|s| {
                    s.labels.set_name() == p.set
                        && (s.labels.split.is_empty() || s.labels.split == "0")
                })
                .collect();
            let charts = picked
                .iter()
                .map(|s| {
                    (
                        s.labels.subject.clone(),
                        s.labels.source.clone(),
                        s.labels.layer.clone(),
                        s.sort_roi.clone(),
                    )
                })
                .collect();
            let upstream = picked
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("score:{i}"), s.node))
                .collect();
            g.add(
                format!("plot/scatter/{}/{}", p.analysis, p.set),
                super::scatter::ScatterTask {
                    analysis: p.analysis.clone(),
                    set: p.set.clone(),
                    formats: p.formats.clone(),
                    title: p.title.clone(),
                    charts,
                },
                upstream,
                BTreeMap::new(),
            )
        }
        PlotKind::RoiBars => {
            let mut charts: Vec<(String, String, String)> = Vec::new();
            for s in &mine {
                let c = (
                    s.labels.subject.clone(),
                    s.labels.source.clone(),
                    s.labels.layer.clone(),
                );
                if !charts.contains(&c) {
                    charts.push(c);
                }
            }
            let rois = p
                .rois
                .clone()
                .unwrap_or_else(|| exp.rois.iter().map(|r| r.name.clone()).collect());
            g.add(
                format!("plot/roi_bars/{}/{}", p.analysis, p.metric.name()),
                super::bars::BarsTask {
                    analysis: p.analysis.clone(),
                    metric: p.metric,
                    aggregate,
                    formats: p.formats.clone(),
                    title: p.title.clone(),
                    charts,
                    rois,
                    hemis: exp
                        .subjects
                        .first()
                        .map(|s| s.hemis.clone())
                        .unwrap_or_default(),
                },
                vec![("table".into(), table)],
                BTreeMap::new(),
            )
        }
    }
}

/// The aggregate an analysis's records use for its ROI values.
fn aggregate_of(exp: &Experiment, analysis: &str) -> Aggregate {
    exp.analyses
        .iter()
        .find(|(n, _)| n == analysis)
        .map(|(_, a)| a.aggregate())
        .unwrap_or(Aggregate::Mean)
}
