//! `kind = "ridge_holdout"`: Lab08's encoding models (seed 003). Ridge with
//! λ chosen per voxel on a holdout set, scored on the validation images;
//! then, from those fits, the best layer of every voxel and a variance
//! partition of two or three feature sets.
//!
//! As the lab does it:
//! - features are z-scored with the mean and std (ddof 0, + `epsilon`) of
//!   the train + holdout images, then a column of ones is appended (the
//!   intercept); a joint model (A+B) is joined *before* z-scoring;
//! - ridge weights (XᵀX + λI)⁻¹Xᵀy penalise the intercept column too
//!   (`penalize_intercept = false` fits it unpenalised instead);
//! - per voxel the first λ of least summed squared holdout error, no refit
//!   (`refit = true` refits on train + holdout with each voxel's λ);
//! - R² (and R²/NC with the lab's noise ceiling) on the validation images.
//!
//! Each voxel's fit is independent of the others, so one fit per feature set
//! serves every ROI: ROIs only slice its per-voxel scores.
//!
//! Nodes: `holdout_fit` (per subject × feature set: z-score, the fit, the
//! validation scores) → `holdout_score` (its record over every ROI);
//! `best_layer` (per subject × source, over the single-layer fits: a record
//! per layer with its voxel count and fraction per ROI); `varpart` (per
//! subject × partition, over the fits of every subset); `volume_maps`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use faer::Mat;
use petgraph::graph::NodeIndex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;
use toml::de::DeValue;

use super::expand::{Expand, Handle};
use super::{Analysis, ParseCx, SplitSpec};
use crate::error::{Error, Result};
use crate::node::{Ctx, FeatureRef, NodeKind, as_indices};
use crate::nodes::table::Labels;
use crate::numerics::ridge_holdout;
use crate::record::Record;
use crate::vocab::{Aggregate, Metric};

pub const VERSION: u32 = 1;

/// The most λ a grid may hold (each costs q²·v per voxel batch).
pub const MAX_LAMBDAS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawGrid {
    Named(String),
    List(Vec<f64>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    features: Option<Spanned<Vec<String>>>,
    rois: Option<Spanned<Vec<String>>>,
    metrics: Option<Spanned<Vec<String>>>,
    aggregate: Option<Spanned<OneOrMany>>,
    /// "lab08" (the seed's 20 values) or a list of λ.
    lambda_grid: Option<Spanned<RawGrid>>,
    penalize_intercept: Option<bool>,
    refit: Option<bool>,
    /// Added to each feature's std before dividing (the lab: 1e-6).
    epsilon: Option<Spanned<f64>>,
    split: Option<Spanned<super::RawSplit>>,
    /// The best layer of each voxel, per feature source (default: true
    /// when a source has several layers).
    best_layer: Option<bool>,
    /// Feature sets to partition: `[["Conv1", "Conv4"], ...]`, each member a
    /// layer (or `source/layer`), two or three per partition.
    varpart: Option<Spanned<Vec<Vec<String>>>>,
    /// NIfTI volumes and PNG montages of the per-voxel results (default:
    /// true for subjects in a brain volume).
    maps: Option<bool>,
}

#[derive(Debug)]
pub struct RidgeHoldout {
    features: Vec<String>,
    rois: Vec<String>,
    metrics: Vec<Metric>,
    aggregates: Vec<Aggregate>,
    lambdas: Vec<f64>,
    penalize_intercept: bool,
    refit: bool,
    epsilon: f64,
    split: Option<SplitSpec>,
    best_layer: Option<bool>,
    varpart: Vec<(Vec<String>, Range<usize>)>,
    maps: Option<bool>,
    source: crate::source::Source,
}

pub fn parse(_name: &str, value: Spanned<DeValue<'_>>, cx: &ParseCx) -> Result<Arc<dyn Analysis>> {
    let raw: Raw = super::deserialize(value, cx.src)?;
    let lambdas = match raw.lambda_grid {
        None => ridge_holdout::lab08_lambdas(),
        Some(g) => {
            let span = g.span();
            match g.into_inner() {
                RawGrid::Named(n) if n == "lab08" => ridge_holdout::lab08_lambdas(),
                RawGrid::Named(n) => {
                    return Err(cx
                        .src
                        .error(span, format!("unknown λ grid `{n}`"))
                        .with_help("lambda_grid = \"lab08\" (the seed's 20 values, the first three negative) or a list of numbers"));
                }
                RawGrid::List(l) => {
                    if l.is_empty() || l.len() > MAX_LAMBDAS {
                        return Err(cx.src.error(
                            span,
                            format!(
                                "lambda_grid holds {} values; give 1 to {MAX_LAMBDAS}",
                                l.len()
                            ),
                        ));
                    }
                    if let Some(x) = l.iter().find(|x| !x.is_finite()) {
                        return Err(cx.src.error(span, format!("lambda_grid holds {x}")));
                    }
                    l
                }
            }
        }
    };
    let aggregates = match raw.aggregate {
        None => vec![Aggregate::Min, Aggregate::Max, Aggregate::Median],
        Some(a) => {
            let span = a.span();
            let names = match a.into_inner() {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            };
            if names.is_empty() {
                return Err(cx.src.error(span, "aggregate must not be empty"));
            }
            let mut out = Vec::new();
            for n in names {
                let a = Aggregate::parse(&n).ok_or_else(|| {
                    cx.src
                        .error(span.clone(), format!("unknown aggregate `{n}`"))
                        .with_help("aggregates: mean, median, min, max")
                })?;
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            out
        }
    };
    let epsilon = match raw.epsilon {
        None => 1e-6,
        Some(e) if e.get_ref().is_finite() && *e.get_ref() >= 0.0 => *e.get_ref(),
        Some(e) => return Err(cx.src.error(e.span(), "epsilon must be ≥ 0")),
    };
    let mut varpart = Vec::new();
    if let Some(v) = raw.varpart {
        let span = v.span();
        for set in v.into_inner() {
            if !(2..=3).contains(&set.len()) {
                return Err(cx
                    .src
                    .error(
                        span,
                        format!(
                            "a partition has 2 or 3 feature sets; [{}] has {}",
                            set.join(", "),
                            set.len()
                        ),
                    )
                    .with_help(
                        "varpart = [[\"Conv1\", \"Conv4\"], [\"Conv1\", \"Conv3\", \"Conv5\"]]",
                    ));
            }
            for (i, m) in set.iter().enumerate() {
                if set[..i].contains(m) {
                    return Err(cx.src.error(
                        span,
                        format!("partition [{}] names `{m}` twice", set.join(", ")),
                    ));
                }
            }
            varpart.push((set, span.clone()));
        }
    }
    Ok(Arc::new(RidgeHoldout {
        features: super::pick(cx, raw.features, &cx.features, "feature source")?,
        rois: super::pick(cx, raw.rois, &cx.rois, "ROI")?,
        metrics: super::metrics(cx, raw.metrics, &[Metric::R2, Metric::R2OverNc])?,
        aggregates,
        lambdas,
        penalize_intercept: raw.penalize_intercept.unwrap_or(true),
        refit: raw.refit.unwrap_or(false),
        epsilon,
        split: super::split(cx, raw.split, false, false)?,
        best_layer: raw.best_layer,
        varpart,
        maps: raw.maps,
        source: cx.src.clone(),
    }))
}

/// A feature set: one layer, or several joined into one model.
#[derive(Clone)]
struct Set {
    members: Vec<Handle>,
}

impl Set {
    fn layer(&self) -> String {
        self.members
            .iter()
            .map(|h| h.layer.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
    fn source(&self) -> String {
        let mut out: Vec<&str> = Vec::new();
        for h in &self.members {
            if !out.contains(&h.source.as_str()) {
                out.push(&h.source);
            }
        }
        out.join("+")
    }
    fn id(&self) -> String {
        let m: Vec<String> = self
            .members
            .iter()
            .map(|h| format!("{}/{}", h.source, h.layer))
            .collect();
        format!("{}/{}", self.members[0].subject, m.join("+"))
    }
    fn labels(&self, analysis: &str) -> Labels {
        Labels {
            analysis: analysis.to_string(),
            subject: self.members[0].subject.clone(),
            source: self.source(),
            layer: self.layer(),
            layer_index: if self.members.len() == 1 {
                self.members[0].layer_index
            } else {
                // Joint models after every single layer.
                1000 + self.members.iter().map(|h| h.layer_index).sum::<usize>()
            },
            part: String::new(),
            split: String::new(),
            set: String::new(),
        }
    }
}

impl Analysis for RidgeHoldout {
    fn metrics(&self) -> Vec<String> {
        let mut m: Vec<String> = self.metrics.iter().map(|m| m.name().to_string()).collect();
        m.push("lambda".into());
        m.push("best_layer_fraction".into());
        m.push("best_layer_count".into());
        m
    }

    fn aggregate(&self) -> Aggregate {
        if self.aggregates.contains(&Aggregate::Median) {
            Aggregate::Median
        } else {
            self.aggregates[0]
        }
    }

    fn expand(&self, cx: &mut Expand) -> Result<()> {
        let handles: Vec<Handle> = cx.shared.handles_of(&self.features).cloned().collect();
        let mut subjects: Vec<String> = Vec::new();
        for h in &handles {
            if !subjects.contains(&h.subject) {
                subjects.push(h.subject.clone());
            }
        }
        let neg: Vec<String> = self
            .lambdas
            .iter()
            .filter(|l| **l < 0.0)
            .map(|l| format!("{l:.3e}"))
            .collect();
        if !neg.is_empty() {
            // Said once: the lab's grid does this on purpose or not, but a
            // negative λ is not ridge; each fit's count is in its fit.json.
            cx.warnings.push(format!(
                "analyses.{}: {} of the λ grid's {} values are negative ({}), as the lab's grid is; voxels that choose them are fitted with less than no penalty",
                cx.name,
                neg.len(),
                self.lambdas.len(),
                neg.join(", ")
            ));
        }
        for sname in subjects {
            let subject = cx.shared.subject(&sname);
            if self.metrics.contains(&Metric::R2OverNc)
                && !(subject.noise_ceiling || subject.nc_given)
            {
                return Err(super::ridge_cv::no_noise_ceiling(cx.name, subject));
            }
            for roi in &self.rois {
                if let Some((why, help)) = &subject.roi(roi).empty {
                    cx.warnings.push(format!(
                        "analyses.{}: ROI `{roi}` of subject `{sname}` {why}; it scores NaN ({help})",
                        cx.name
                    ));
                }
            }
            let (split, _) = cx.split(subject, &self.split, 0)?;
            let mine: Vec<Handle> = handles
                .iter()
                .filter(|h| h.subject == sname)
                .cloned()
                .collect();
            let mut fits: BTreeMap<String, NodeIndex> = BTreeMap::new();
            let mut fit_of = |cx: &mut Expand, set: &Set| -> NodeIndex {
                if let Some(&ix) = fits.get(&set.id()) {
                    return ix;
                }
                let subject = cx.shared.subject(&sname);
                let mut upstream = vec![
                    ("subject".to_string(), subject.node),
                    ("split".to_string(), split),
                ];
                let mut inputs = BTreeMap::new();
                for (i, h) in set.members.iter().enumerate() {
                    h.attach_as(&format!("features:{i:02}"), &mut upstream, &mut inputs);
                }
                let width: u64 = set.members.iter().map(|h| h.width).sum();
                let fit = cx.g.add(
                    format!("holdout_fit/{}", set.id()),
                    HoldoutFitTask {
                        features: set.members.iter().map(|h| h.features.clone()).collect(),
                        lambdas: self.lambdas.clone(),
                        penalize_intercept: self.penalize_intercept,
                        refit: self.refit,
                        epsilon: self.epsilon,
                        sizes: (subject.n_stimuli as u64, width, subject.n_voxels as u64),
                    },
                    upstream,
                    inputs,
                );
                let mut ups = vec![
                    ("fit".to_string(), fit),
                    ("subject".to_string(), subject.node),
                ];
                for roi in &self.rois {
                    ups.push((format!("roi:{roi}"), subject.roi(roi).node));
                }
                let score = cx.g.add(
                    format!("holdout_score/{}/{}", cx.name, set.id()),
                    HoldoutScoreTask {
                        metrics: self.metrics.clone(),
                        aggregates: self.aggregates.clone(),
                        rois: self.rois.clone(),
                    },
                    ups,
                    BTreeMap::new(),
                );
                cx.score_as(score, set.labels(cx.name));
                fits.insert(set.id(), fit);
                fit
            };
            let mut maps: Vec<(String, NodeIndex)> = Vec::new();
            for h in &mine {
                let set = Set {
                    members: vec![h.clone()],
                };
                let fit = fit_of(cx, &set);
                maps.push((format!("r2:{}", set.layer()), fit));
            }
            // Best layer per source, over its layers.
            let mut sources: Vec<String> = Vec::new();
            for h in &mine {
                if !sources.contains(&h.source) {
                    sources.push(h.source.clone());
                }
            }
            for src in &sources {
                let layers: Vec<&Handle> = mine.iter().filter(|h| &h.source == src).collect();
                if !self.best_layer.unwrap_or(layers.len() > 1) {
                    continue;
                }
                let subject = cx.shared.subject(&sname);
                let mut ups = vec![("subject".to_string(), subject.node)];
                for (i, h) in layers.iter().enumerate() {
                    let set = Set {
                        members: vec![(*h).clone()],
                    };
                    ups.push((format!("fit:{i:02}"), fit_of(cx, &set)));
                }
                for roi in &self.rois {
                    ups.push((format!("roi:{roi}"), subject.roi(roi).node));
                }
                let node = cx.g.add(
                    format!("best_layer/{}/{sname}/{src}", cx.name),
                    BestLayerTask {
                        layers: layers.iter().map(|h| h.layer.clone()).collect(),
                        rois: self.rois.clone(),
                    },
                    ups,
                    BTreeMap::new(),
                );
                for h in &layers {
                    let mut labels = Set {
                        members: vec![(*h).clone()],
                    }
                    .labels(cx.name);
                    labels.part = h.layer.clone();
                    cx.score_as(node, labels);
                }
                maps.push((format!("best_layer:{src}"), node));
            }
            for (names, span) in &self.varpart {
                let members = names
                    .iter()
                    .map(|n| self.member(&mine, n, span, &sname))
                    .collect::<Result<Vec<Handle>>>()?;
                let k = members.len();
                let subject = cx.shared.subject(&sname);
                let mut ups = vec![("subject".to_string(), subject.node)];
                // Every non-empty subset, by bitmask (A = bit 0).
                for mask in 1..(1usize << k) {
                    let set = Set {
                        members: (0..k)
                            .filter(|b| mask & (1 << b) != 0)
                            .map(|b| members[b].clone())
                            .collect(),
                    };
                    let fit = fit_of(cx, &set);
                    ups.push((format!("fit:{mask}"), fit));
                    if mask == (1 << k) - 1 {
                        maps.push((format!("r2:{}", set.layer()), fit));
                    }
                }
                for roi in &self.rois {
                    ups.push((format!("roi:{roi}"), subject.roi(roi).node));
                }
                let joint = Set {
                    members: members.clone(),
                };
                let node = cx.g.add(
                    format!("varpart/{}/{}", cx.name, joint.id()),
                    VarpartTask {
                        sets: members.iter().map(|h| h.layer.clone()).collect(),
                        aggregates: self.aggregates.clone(),
                        rois: self.rois.clone(),
                    },
                    ups,
                    BTreeMap::new(),
                );
                cx.score_as(node, joint.labels(cx.name));
                maps.push((format!("varpart:{}", joint.layer()), node));
            }
            let subject = cx.shared.subject(&sname);
            if self.maps.unwrap_or(subject.volume) {
                if !subject.volume {
                    return Err(Error::usage(format!(
                        "analyses.{}: subject `{sname}` ({}) has no brain volume to map",
                        cx.name, subject.format
                    ))
                    .with_help("maps = true needs a subject in a volume (format = \"lab08\")"));
                }
                let mut ups = vec![("subject".to_string(), subject.node)];
                let mut what = Vec::new();
                for (i, (name, node)) in maps.iter().enumerate() {
                    ups.push((format!("map:{i:03}"), *node));
                    what.push(name.clone());
                }
                let node = cx.g.add(
                    format!("volume_maps/{}/{sname}", cx.name),
                    crate::nodes::volume_maps::VolumeMapsTask {
                        stem: format!("{}_{sname}", cx.name),
                        maps: what,
                    },
                    ups,
                    BTreeMap::new(),
                );
                cx.outputs.push((node, String::new()));
            }
        }
        Ok(())
    }
}

impl RidgeHoldout {
    /// A partition's member: `layer` (unique among the analysis's sources)
    /// or `source/layer`.
    fn member(
        &self,
        mine: &[Handle],
        name: &str,
        span: &Range<usize>,
        subject: &str,
    ) -> Result<Handle> {
        let found: Vec<&Handle> = mine
            .iter()
            .filter(|h| h.layer == name || format!("{}/{}", h.source, h.layer) == name)
            .collect();
        match found[..] {
            [h] => Ok(h.clone()),
            [] => Err(self
                .source
                .error(span.clone(), format!("varpart names `{name}`, which is no layer of this analysis's features for subject `{subject}`"))
                .with_help(format!(
                    "layers: {}",
                    mine.iter()
                        .map(|h| format!("{}/{}", h.source, h.layer))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            _ => Err(self
                .source
                .error(span.clone(), format!("`{name}` is a layer of several sources"))
                .with_help("write source/layer")),
        }
    }
}

/// One feature set's fit on one subject, with its validation scores.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutFitTask {
    /// The members, joined column-wise (roles `features:00`, `features:01`, …).
    pub features: Vec<FeatureRef>,
    pub lambdas: Vec<f64>,
    pub penalize_intercept: bool,
    pub refit: bool,
    pub epsilon: f64,
    /// Sizes for the memory estimate: stimuli, columns, voxels.
    #[serde(skip)]
    pub sizes: (u64, u64, u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldoutFitOut {
    pub n_fit: usize,
    pub n_holdout: usize,
    pub n_score: usize,
    pub n_columns: usize,
    pub n_voxels: usize,
    /// Voxels whose λ is the grid's first or last value.
    pub at_lower_edge: usize,
    pub at_upper_edge: usize,
    /// Voxels that chose a negative λ (the seed's grid starts below 0).
    pub negative: usize,
}

/// Rows of a row-major matrix, as a faer matrix.
fn rows_of(data: &[f64], width: usize, rows: &[usize]) -> Mat<f64> {
    Mat::from_fn(rows.len(), width, |i, j| data[rows[i] * width + j])
}

/// The lab's `split_normalize_feats`: z-score every column with the mean and
/// std (ddof 0) + ε of the `stats` rows, then a column of ones.
pub fn zscore_with_intercept(x: &[f64], p: usize, stats: &[usize], epsilon: f64) -> Vec<f64> {
    let n = x.len() / p.max(1);
    let m = stats.len() as f64;
    let mut mean = vec![0.0; p];
    for &i in stats {
        for j in 0..p {
            mean[j] += x[i * p + j];
        }
    }
    mean.iter_mut().for_each(|v| *v /= m);
    let mut var = vec![0.0; p];
    for &i in stats {
        for j in 0..p {
            let d = x[i * p + j] - mean[j];
            var[j] += d * d;
        }
    }
    let sd: Vec<f64> = var.iter().map(|v| (v / m).sqrt() + epsilon).collect();
    let q = p + 1;
    let mut out = vec![1.0; n * q];
    for i in 0..n {
        for j in 0..p {
            out[i * q + j] = (x[i * p + j] - mean[j]) / sd[j];
        }
    }
    out
}

impl NodeKind for HoldoutFitTask {
    fn kind(&self) -> &'static str {
        "holdout_fit"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let (n, q, v) = self.sizes;
        let l = self.lambdas.len() as u64;
        // y, x, the q × v blocks and every λ's loss.
        8 * (2 * n * v + 2 * n * q + 6 * (q + 1) * v + l * v)
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = ctx.input("subject")?;
        let split = crate::nodes::split::read(ctx.input("split")?)?;
        if split.holdout.is_empty() {
            return Err(ctx
                .fail("the split has no holdout images to choose λ on")
                .with_help("use split = { method = \"val_holdout\" } (Lab08's) with a subject that has validation flags"));
        }
        let y = subject.read_f64("y.npy")?;
        let (n, v) = y.rows_cols();
        // The members side by side, as np.concatenate([f_A, f_B], axis=1).
        let mats = self
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| f.read_f64_as(ctx, &format!("features:{i:02}")))
            .collect::<Result<Vec<_>>>()?;
        let p: usize = mats.iter().map(|m| m.rows_cols().1).sum();
        let mut x = vec![0.0; n * p];
        let mut col = 0;
        for m in &mats {
            let (rows, w) = m.rows_cols();
            if rows != n {
                return Err(ctx.fail(format!(
                    "a feature matrix has {rows} rows but the subject has {n} stimuli"
                )));
            }
            for i in 0..n {
                x[i * p + col..i * p + col + w].copy_from_slice(&m.data[i * w..(i + 1) * w]);
            }
            col += w;
        }
        drop(mats);
        let stats: Vec<usize> = split.fit.iter().chain(&split.holdout).copied().collect();
        let xz = zscore_with_intercept(&x, p, &stats, self.epsilon);
        drop(x);
        let q = p + 1;
        let x_trn = rows_of(&xz, q, &split.fit);
        let x_out = rows_of(&xz, q, &split.holdout);
        let x_val = rows_of(&xz, q, &split.score);
        let y_trn = rows_of(&y.data, v, &split.fit);
        let y_out = rows_of(&y.data, v, &split.holdout);
        let y_val = rows_of(&y.data, v, &split.score);
        ctx.progress.set_message(format!(
            "ridge {}×{q} → {v} voxels, {} λ",
            split.fit.len(),
            self.lambdas.len()
        ));
        let solve = if self.penalize_intercept {
            ridge_holdout::fit
        } else {
            ridge_holdout::fit_free_intercept
        };
        let fit = solve(
            x_trn.as_ref(),
            y_trn.as_ref(),
            x_out.as_ref(),
            y_out.as_ref(),
            &self.lambdas,
        )
        .map_err(|m| {
            ctx.fail(m).with_help(
                "a negative λ needs XᵀX's smallest eigenvalue above |λ|: more fit images than columns, or a grid without negative values",
            )
        })?;
        let chosen: Vec<f64> = fit.best.iter().map(|&b| self.lambdas[b]).collect();
        let weights = if self.refit {
            let x_all = faer::concat![[x_trn], [x_out]];
            let y_all = faer::concat![[y_trn], [y_out]];
            let refit = if self.penalize_intercept {
                ridge_holdout::fit_per_voxel
            } else {
                ridge_holdout::fit_per_voxel_free_intercept
            };
            refit(x_all.as_ref(), y_all.as_ref(), &chosen).map_err(|m| ctx.fail(m))?
        } else {
            fit.weights
        };
        let mut pred = Mat::<f64>::zeros(x_val.nrows(), v);
        faer::linalg::matmul::matmul(
            pred.as_mut(),
            faer::Accum::Replace,
            x_val.as_ref(),
            weights.as_ref(),
            1.0,
            faer::Par::rayon(0),
        );
        let (r2, r): (Vec<f64>, Vec<f64>) = (0..v)
            .into_par_iter()
            .map(|j| {
                let t: Vec<f64> = y_val.col(j).iter().copied().collect();
                let pr: Vec<f64> = pred.col(j).iter().copied().collect();
                (
                    crate::numerics::metrics::r2(&t, &pr),
                    crate::numerics::metrics::pearson_r(&pr, &t),
                )
            })
            .unzip();
        // Weights as the lab's [q, v], the intercept last.
        let weights_out = crate::numerics::ridge::to_row_major(weights.as_ref());
        let lambda_index: Vec<f64> = fit.best.iter().map(|&b| b as f64).collect();
        ctx.out.write_npy("r2.npy", &[v], &r2)?;
        ctx.out.write_npy("pearson_r.npy", &[v], &r)?;
        ctx.out.write_npy("lambda.npy", &[v], &chosen)?;
        ctx.out.write_npy("lambda_index.npy", &[v], &lambda_index)?;
        ctx.out.write_npy("weights.npy", &[q, v], &weights_out)?;
        ctx.out
            .write_npy("holdout_loss.npy", &[self.lambdas.len(), v], &fit.loss)?;
        let last = self.lambdas.len() - 1;
        ctx.out.write_json(
            "fit.json",
            &HoldoutFitOut {
                n_fit: split.fit.len(),
                n_holdout: split.holdout.len(),
                n_score: split.score.len(),
                n_columns: q,
                n_voxels: v,
                at_lower_edge: fit.best.iter().filter(|&&b| b == 0).count(),
                at_upper_edge: fit.best.iter().filter(|&&b| b == last).count(),
                negative: chosen.iter().filter(|&&l| l < 0.0).count(),
            },
        )
    }

    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let fit: HoldoutFitOut = entry()?.read_json("fit.json")?;
        if fit.at_upper_edge > 0 {
            out.push(format!(
                "{} of {} voxels chose the grid's largest λ; a wider grid may fit them better",
                fit.at_upper_edge, fit.n_voxels
            ));
        }
        Ok(out)
    }
}

/// Per-voxel results of one fit into its record: every ROI's slice.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutScoreTask {
    pub metrics: Vec<Metric>,
    pub aggregates: Vec<Aggregate>,
    pub rois: Vec<String>,
}

/// Each ROI's voxel indices (into the subject's voxels), in `rois` order.
fn roi_indices(ctx: &Ctx, rois: &[String]) -> Result<Vec<Vec<usize>>> {
    rois.iter()
        .map(|r| {
            Ok(as_indices(
                &ctx.input(&format!("roi:{r}"))?.read_f64("indices.npy")?,
            ))
        })
        .collect()
}

/// Per-voxel `values` of every ROI into `rec`, summarised by each aggregate.
fn record_rois(
    rec: &mut Record,
    rois: &[String],
    idx: &[Vec<usize>],
    voxels: &crate::nsd::VoxelTable,
    values: &[(&str, &[f64])],
    aggregates: &[Aggregate],
) {
    for (roi, idx) in rois.iter().zip(idx) {
        let hemi: Vec<&str> = idx.iter().map(|&j| voxels.hemi[j].as_str()).collect();
        let voxel: Vec<i64> = idx.iter().map(|&j| voxels.index[j] as i64).collect();
        let picked: Vec<(&str, Vec<f64>)> = values
            .iter()
            .map(|(n, v)| (*n, idx.iter().map(|&j| v[j]).collect()))
            .collect();
        let refs: Vec<(&str, &[f64])> = picked.iter().map(|(n, v)| (*n, &v[..])).collect();
        rec.add_voxels(roi, &hemi, &voxel, &refs);
        for &a in aggregates {
            rec.summarize(roi, &[], &hemi, &refs, a, false);
        }
    }
}

impl NodeKind for HoldoutScoreTask {
    fn kind(&self) -> &'static str {
        "holdout_score"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        64 << 20
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = ctx.input("subject")?;
        let voxels = crate::nodes::subject::read_voxels(subject)?;
        let fit = ctx.input("fit")?;
        let r2 = fit.read_f64("r2.npy")?.data;
        let r = fit.read_f64("pearson_r.npy")?.data;
        let lambda = fit.read_f64("lambda.npy")?.data;
        let nc = crate::nodes::subject::noise_ceiling(subject, None)?;
        let mut cols: Vec<(&str, Vec<f64>)> = Vec::new();
        for m in &self.metrics {
            let vals = match m {
                Metric::R2 => r2.clone(),
                Metric::PearsonR => r.clone(),
                Metric::PearsonR2 => r.iter().map(|x| x * x).collect(),
                Metric::R2OverNc => {
                    let nc = nc
                        .as_ref()
                        .ok_or_else(|| ctx.fail("the subject has no noise ceiling"))?;
                    r2.iter().zip(nc).map(|(a, c)| a / c).collect()
                }
            };
            cols.push((m.name(), vals));
        }
        if let Some(nc) = &nc {
            cols.push(("noise_ceiling", nc.clone()));
        }
        let refs: Vec<(&str, &[f64])> = cols.iter().map(|(n, v)| (*n, &v[..])).collect();
        let idx = roi_indices(ctx, &self.rois)?;
        let mut rec = Record::default();
        record_rois(&mut rec, &self.rois, &idx, &voxels, &refs, &self.aggregates);
        // Each voxel's λ, and the ROI's median λ.
        let lam = [("lambda", &lambda[..])];
        record_rois(
            &mut rec,
            &self.rois,
            &idx,
            &voxels,
            &lam,
            &[Aggregate::Median],
        );
        rec.write(ctx)
    }
}

/// The best layer of every voxel: argmax of validation R² over the layers
/// (the first maximum on ties, as np.argmax); per layer a record of how many
/// voxels of each ROI it wins, and which fraction.
#[derive(Debug, Clone, Serialize)]
pub struct BestLayerTask {
    pub layers: Vec<String>,
    pub rois: Vec<String>,
}

/// np.argmax over the rows of `r2` (one row per layer) for each voxel; NaN
/// never wins (a voxel NaN in every layer gets layer 0, as numpy would give
/// the first NaN).
pub fn best_layer(r2: &[Vec<f64>]) -> Vec<usize> {
    let v = r2.first().map_or(0, |r| r.len());
    (0..v)
        .map(|j| {
            let mut best = 0;
            for (l, row) in r2.iter().enumerate() {
                if row[j] > r2[best][j] || r2[best][j].is_nan() && !row[j].is_nan() {
                    best = l;
                }
            }
            best
        })
        .collect()
}

impl NodeKind for BestLayerTask {
    fn kind(&self) -> &'static str {
        "best_layer"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        64 << 20
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let voxels = crate::nodes::subject::read_voxels(ctx.input("subject")?)?;
        let r2 = (0..self.layers.len())
            .map(|i| Ok(ctx.input(&format!("fit:{i:02}"))?.read_f64("r2.npy")?.data))
            .collect::<Result<Vec<_>>>()?;
        let best = best_layer(&r2);
        let v = best.len();
        let idx = roi_indices(ctx, &self.rois)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let mut rec = Record::default();
            let wins: Vec<f64> = best.iter().map(|&b| f64::from(u8::from(b == l))).collect();
            for (roi, idx) in self.rois.iter().zip(&idx) {
                let hemi: Vec<&str> = idx.iter().map(|&j| voxels.hemi[j].as_str()).collect();
                let picked: Vec<f64> = idx.iter().map(|&j| wins[j]).collect();
                // The mean of the indicator is the fraction; × n the count.
                let vals = [("best_layer_fraction", &picked[..])];
                rec.summarize(roi, &[], &hemi, &vals, Aggregate::Mean, false);
                let count: Vec<f64> = picked.iter().map(|w| w * idx.len() as f64).collect();
                rec.summarize(
                    roi,
                    &[],
                    &hemi,
                    &[("best_layer_count", &count[..])],
                    Aggregate::Mean,
                    false,
                );
            }
            rec.write_part(ctx, layer)?;
        }
        let as_f: Vec<f64> = best.iter().map(|&b| b as f64).collect();
        ctx.out.write_npy("best_layer.npy", &[v], &as_f)?;
        ctx.out.write_json("layers.json", &self.layers)
    }
}

/// Variance partitioning of 2 or 3 feature sets from the validation R² of
/// every subset's fit (inclusion–exclusion), per voxel and per ROI.
#[derive(Debug, Clone, Serialize)]
pub struct VarpartTask {
    pub sets: Vec<String>,
    pub aggregates: Vec<Aggregate>,
    pub rois: Vec<String>,
}

/// The partition's components, by name, from R² of each subset (indexed by
/// bitmask, A = bit 0): two sets give unique_A, unique_B and shared_A_B;
/// three the seven regions of the Venn diagram.
pub fn partition(names: &[String], r2: &BTreeMap<usize, Vec<f64>>) -> Vec<(String, Vec<f64>)> {
    let v = r2.values().next().map_or(0, |x| x.len());
    let at = |mask: usize, j: usize| r2[&mask][j];
    let per = |f: &dyn Fn(usize) -> f64| (0..v).map(f).collect::<Vec<f64>>();
    match names.len() {
        2 => {
            let (a, b) = (&names[0], &names[1]);
            vec![
                (format!("unique_{a}"), per(&|j| at(3, j) - at(2, j))),
                (format!("unique_{b}"), per(&|j| at(3, j) - at(1, j))),
                (
                    format!("shared_{a}_{b}"),
                    per(&|j| at(1, j) + at(2, j) - at(3, j)),
                ),
            ]
        }
        3 => {
            let (a, b, c) = (&names[0], &names[1], &names[2]);
            // Masks: A 1, B 2, C 4, AB 3, AC 5, BC 6, ABC 7. With the union
            // R²_ABC and inclusion–exclusion over the regions:
            //   unique_A = R_ABC − R_BC (what only A adds), likewise B, C;
            //   AB only  = R_AC + R_BC − R_C − R_ABC, likewise AC, BC;
            //   ABC      = R_A + R_B + R_C − R_AB − R_AC − R_BC + R_ABC.
            vec![
                (format!("unique_{a}"), per(&|j| at(7, j) - at(6, j))),
                (format!("unique_{b}"), per(&|j| at(7, j) - at(5, j))),
                (format!("unique_{c}"), per(&|j| at(7, j) - at(3, j))),
                (
                    format!("shared_{a}_{b}"),
                    per(&|j| at(5, j) + at(6, j) - at(4, j) - at(7, j)),
                ),
                (
                    format!("shared_{a}_{c}"),
                    per(&|j| at(3, j) + at(6, j) - at(2, j) - at(7, j)),
                ),
                (
                    format!("shared_{b}_{c}"),
                    per(&|j| at(3, j) + at(5, j) - at(1, j) - at(7, j)),
                ),
                (
                    format!("shared_{a}_{b}_{c}"),
                    per(&|j| {
                        at(1, j) + at(2, j) + at(4, j) - at(3, j) - at(5, j) - at(6, j) + at(7, j)
                    }),
                ),
            ]
        }
        _ => unreachable!("partitions of 2 or 3 sets are checked when parsed"),
    }
}

impl NodeKind for VarpartTask {
    fn kind(&self) -> &'static str {
        "varpart"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        64 << 20
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let voxels = crate::nodes::subject::read_voxels(ctx.input("subject")?)?;
        let k = self.sets.len();
        let mut r2 = BTreeMap::new();
        for mask in 1..(1usize << k) {
            r2.insert(
                mask,
                ctx.input(&format!("fit:{mask}"))?.read_f64("r2.npy")?.data,
            );
        }
        let parts = partition(&self.sets, &r2);
        let refs: Vec<(&str, &[f64])> = parts.iter().map(|(n, v)| (n.as_str(), &v[..])).collect();
        let idx = roi_indices(ctx, &self.rois)?;
        let mut rec = Record::default();
        record_rois(&mut rec, &self.rois, &idx, &voxels, &refs, &self.aggregates);
        let v = voxels.len();
        let mut flat = Vec::with_capacity(parts.len() * v);
        for (_, p) in &parts {
            flat.extend_from_slice(p);
        }
        ctx.out
            .write_npy("components.npy", &[parts.len(), v], &flat)?;
        ctx.out.write_json(
            "components.json",
            &parts.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        )?;
        rec.write(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng_r2(seed: u64, v: usize) -> Vec<f64> {
        // A small LCG: test data that need not be random in any strong sense.
        let mut s = seed;
        (0..v)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    #[test]
    fn three_set_regions_sum_to_the_joint_r2() {
        let names: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let r2: BTreeMap<usize, Vec<f64>> = (1..8).map(|m| (m, rng_r2(m as u64, 50))).collect();
        let parts = partition(&names, &r2);
        assert_eq!(parts.len(), 7);
        for j in 0..50 {
            let sum: f64 = parts.iter().map(|(_, p)| p[j]).sum();
            assert!(
                (sum - r2[&7][j]).abs() < 1e-12,
                "voxel {j}: {sum} vs {}",
                r2[&7][j]
            );
            // What A explains alone = its unique part + every region it shares.
            let a: f64 = parts
                .iter()
                .filter(|(n, _)| n.contains('A'))
                .map(|(_, p)| p[j])
                .sum();
            assert!((a - r2[&1][j]).abs() < 1e-12);
        }
    }

    #[test]
    fn two_set_identities_hold() {
        let names: Vec<String> = ["Conv1", "Conv4"].iter().map(|s| s.to_string()).collect();
        let r2: BTreeMap<usize, Vec<f64>> = (1..4).map(|m| (m, rng_r2(m as u64 + 9, 40))).collect();
        let parts = partition(&names, &r2);
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["unique_Conv1", "unique_Conv4", "shared_Conv1_Conv4"]
        );
        for j in 0..40 {
            let (ua, ub, sh) = (parts[0].1[j], parts[1].1[j], parts[2].1[j]);
            assert!((ua + ub + sh - r2[&3][j]).abs() < 1e-12);
            assert!((ua + sh - r2[&1][j]).abs() < 1e-12);
        }
    }

    #[test]
    fn best_layer_takes_the_first_maximum_and_skips_nan() {
        let r2 = vec![
            vec![0.1, 0.5, f64::NAN, 0.2],
            vec![0.3, 0.5, 0.1, 0.2],
            vec![0.2, 0.4, 0.0, f64::NAN],
        ];
        assert_eq!(best_layer(&r2), vec![1, 0, 1, 0]);
    }

    #[test]
    fn zscore_matches_numpy_std_ddof0_plus_epsilon() {
        // Column [1, 2, 3, 10] with stats over rows 0..3: mean 2, std sqrt(2/3).
        let x = vec![1.0, 2.0, 3.0, 10.0];
        let z = zscore_with_intercept(&x, 1, &[0, 1, 2], 1e-6);
        let sd = (2.0f64 / 3.0).sqrt() + 1e-6;
        assert_eq!(z.len(), 8);
        assert!((z[0] - (1.0 - 2.0) / sd).abs() < 1e-15);
        assert!((z[6] - (10.0 - 2.0) / sd).abs() < 1e-15);
        assert!(z.iter().skip(1).step_by(2).all(|&one| one == 1.0));
    }
}
