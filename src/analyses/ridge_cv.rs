//! `kind = "ridge_cv"`: HW2's RidgeCV. For every feature layer and ROI, α is
//! chosen from `alpha_grid` by leave-one-out error on the fit stimuli (one α
//! for the ROI, or one per voxel), and the score stimuli are predicted and
//! scored: R², R² over the noise ceiling, Pearson r.
//!
//! Nodes: `decompose` (one per layer, shared by every ROI and α) → `fit` (per
//! ROI: only predictions are stored, the features × voxels weights are never
//! formed) → `score` (per ROI, a record).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;
use toml::de::DeValue;

use super::expand::Expand;
use super::sets::{ScoreTask, Set, Target};
use super::{Analysis, ParseCx, SplitSpec};
use crate::error::Result;
use crate::node::{Ctx, NodeKind, as_indices};
use crate::nodes::reduce::Reduce;
use crate::numerics::ridge;
use crate::vocab::{Aggregate, Metric};

/// Every α costs a pass over the predictions of every fit; beyond this a grid
/// is a mistake rather than a search.
pub const MAX_ALPHAS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    alpha_grid: Spanned<Vec<f64>>,
    alpha_per_voxel: Option<bool>,
    fit_intercept: Option<bool>,
    /// Feature sources fitted (default: all).
    features: Option<Spanned<Vec<String>>>,
    /// ROIs fitted (default: all).
    rois: Option<Spanned<Vec<String>>>,
    metrics: Option<Spanned<Vec<String>>>,
    aggregate: Option<Spanned<String>>,
    /// Aggregate each hemisphere on its own too.
    by_hemisphere: Option<bool>,
    /// k in NC = ncsnr² / (ncsnr² + 1/k); default: the subject's repeat count.
    nc_repeats: Option<Spanned<u32>>,
    split: Option<Spanned<super::RawSplit>>,
    reduce: Option<Spanned<super::RawReduce>>,
    /// "voxels" (default) or "roi_mean".
    target: Option<Spanned<String>>,
    /// Which stimuli are scored: "train", "test", "validation".
    sets: Option<Spanned<Vec<String>>>,
}

#[derive(Debug)]
pub struct RidgeCv {
    pub alpha_grid: Vec<f64>,
    pub alpha_per_voxel: bool,
    pub fit_intercept: bool,
    pub features: Vec<String>,
    pub rois: Vec<String>,
    pub metrics: Vec<Metric>,
    pub aggregate: Aggregate,
    pub by_hemisphere: bool,
    pub nc_repeats: Option<u32>,
    pub split: Option<SplitSpec>,
    pub reduce: Option<Reduce>,
    pub target: Target,
    pub sets: Option<Vec<Set>>,
}

pub fn parse(_name: &str, value: Spanned<DeValue<'_>>, cx: &ParseCx) -> Result<Arc<dyn Analysis>> {
    let raw: Raw = super::deserialize(value, cx.src)?;
    let span = raw.alpha_grid.span();
    let grid = raw.alpha_grid.into_inner();
    if grid.is_empty() {
        return Err(cx.src.error(span, "alpha_grid must not be empty"));
    }
    if grid.len() > MAX_ALPHAS {
        return Err(cx
            .src
            .error(
                span,
                format!(
                    "alpha_grid has {} values; at most {} are allowed",
                    grid.len(),
                    MAX_ALPHAS
                ),
            )
            .with_help("a log-spaced grid of 10–30 values brackets the optimum; HW2 uses 17"));
    }
    if let Some(a) = grid.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
        return Err(cx
            .src
            .error(
                span,
                format!("alpha_grid holds {a}; every α must be finite and > 0"),
            )
            .with_help("HW2 uses [1e-8, 1e-7, ..., 1e7, 1e8]"));
    }
    let nc_repeats = match raw.nc_repeats {
        Some(k) if *k.get_ref() == 0 => {
            return Err(cx.src.error(k.span(), "nc_repeats must be ≥ 1"));
        }
        k => k.map(Spanned::into_inner),
    };
    let target = super::sets::target(cx, raw.target)?;
    let metrics = super::metrics(cx, raw.metrics.clone(), &Metric::ALL)?;
    if target == Target::RoiMean && metrics.contains(&Metric::R2OverNc) {
        let sp = raw.metrics.as_ref().map_or(span, |m| m.span());
        return Err(cx
            .src
            .error(
                sp,
                "target = \"roi_mean\" has no noise ceiling: r2_over_nc cannot be scored",
            )
            .with_help("set metrics = [\"pearson_r2\", \"pearson_r\", \"r2\"]"));
    }
    Ok(Arc::new(RidgeCv {
        alpha_grid: grid,
        alpha_per_voxel: raw.alpha_per_voxel.unwrap_or(false),
        fit_intercept: raw.fit_intercept.unwrap_or(true),
        features: super::pick(cx, raw.features, &cx.features, "feature source")?,
        rois: super::pick(cx, raw.rois, &cx.rois, "ROI")?,
        metrics,
        aggregate: super::aggregate(cx, raw.aggregate, Aggregate::Mean)?,
        by_hemisphere: raw.by_hemisphere.unwrap_or(false),
        nc_repeats,
        split: super::split(cx, raw.split, false, true)?,
        reduce: super::reduce(cx, raw.reduce)?,
        target,
        sets: super::sets::sets(cx, raw.sets)?,
    }))
}

impl Analysis for RidgeCv {
    fn metrics(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.name().to_string()).collect()
    }

    fn aggregate(&self) -> Aggregate {
        self.aggregate
    }

    fn predicts_roi_mean(&self) -> bool {
        self.target == Target::RoiMean
    }

    fn expand(&self, cx: &mut Expand) -> Result<()> {
        let handles: Vec<_> = cx.shared.handles_of(&self.features).cloned().collect();
        let folds = self.split.as_ref().map_or(1, SplitSpec::folds);
        for h in handles {
            let subject = cx.shared.subject(&h.subject);
            if !(subject.noise_ceiling || subject.nc_given)
                && self.metrics.contains(&Metric::R2OverNc)
            {
                return Err(no_noise_ceiling(cx.name, subject));
            }
            let sets = super::sets::resolve(cx.name, &self.sets, &self.split, subject)?;
            let mut per_roi: BTreeMap<&str, Vec<_>> = BTreeMap::new();
            for fold in 0..folds {
                let (split, (nt, ne)) = cx.split(subject, &self.split, fold)?;
                let h = cx.reduced(&h, split, &self.reduce);
                let p = h.width;
                let mut upstream = vec![("split".to_string(), split)];
                let mut inputs = BTreeMap::new();
                h.attach(&mut upstream, &mut inputs);
                let dec = cx.g.add(
                    if folds > 1 {
                        format!("decompose/{}/{fold}", h.id())
                    } else {
                        format!("decompose/{}", h.id())
                    },
                    super::decompose::DecomposeTask {
                        features: h.features.clone(),
                        fit_intercept: self.fit_intercept,
                        predict_train: sets.contains(&Set::Train),
                        sizes: (nt, ne, p),
                    },
                    upstream,
                    inputs,
                );
                for roi_name in &self.rois {
                    let roi = subject.roi(roi_name);
                    if let Some((why, help)) = &roi.empty {
                        return Err(crate::error::Error::usage(format!(
                            "analyses.{}: ROI `{roi_name}` of subject `{}` {why}",
                            cx.name, subject.name
                        ))
                        .with_help(help.clone()));
                    }
                    let v = roi.n_voxels as u64;
                    let ups = |role: &str, ix| (role.to_string(), ix);
                    let id = if folds > 1 {
                        format!("{}/{}/{roi_name}/{fold}", cx.name, h.id())
                    } else {
                        format!("{}/{}/{roi_name}", cx.name, h.id())
                    };
                    let fit = cx.g.add(
                        format!("fit/{id}"),
                        FitTask {
                            alpha_grid: self.alpha_grid.clone(),
                            alpha_per_voxel: self.alpha_per_voxel,
                            target: self.target,
                            sets: sets.clone(),
                            sizes: (nt, ne, v),
                        },
                        vec![
                            ups("decompose", dec),
                            ups("subject", subject.node),
                            ups("roi", roi.node),
                            ups("split", split),
                        ],
                        BTreeMap::new(),
                    );
                    let task = ScoreTask {
                        nc_repeats: self.nc_repeats,
                        metrics: self.metrics.clone(),
                        aggregates: if sets == [Set::Test] {
                            vec![self.aggregate]
                        } else {
                            super::sets::aggregates(self.aggregate)
                        },
                        by_hemisphere: self.by_hemisphere,
                        roi: roi_name.clone(),
                        target: self.target,
                        sets: sets.clone(),
                        extras: vec!["alpha".into()],
                        sizes: (ne.max(nt), v),
                    };
                    let score = cx.g.add(
                        format!("score/{id}"),
                        task.clone(),
                        vec![
                            ups("fit", fit),
                            ups("subject", subject.node),
                            ups("roi", roi.node),
                            ups("split", split),
                        ],
                        BTreeMap::new(),
                    );
                    per_roi.entry(roi_name).or_default().push((score, task));
                }
            }
            for roi_name in &self.rois {
                super::sets::register(cx, &h, roi_name, &per_roi[roi_name.as_str()]);
            }
        }
        Ok(())
    }
}

pub fn no_noise_ceiling(analysis: &str, s: &super::expand::SharedSubject) -> crate::error::Error {
    crate::error::Error::usage(format!(
        "analyses.{analysis} asks for r2_over_nc, but subject `{}` ({}) has no noise ceiling",
        s.name, s.format
    ))
    .with_help("set metrics without r2_over_nc, e.g. metrics = [\"pearson_r\", \"r2\"]")
}

pub const VERSION: u32 = 3;

#[derive(Debug, Clone, Serialize)]
pub struct FitTask {
    pub alpha_grid: Vec<f64>,
    pub alpha_per_voxel: bool,
    pub target: Target,
    pub sets: Vec<Set>,
    /// Sizes for the memory estimate: fit and score stimuli, voxels.
    #[serde(skip)]
    pub sizes: (u64, u64, u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitOut {
    pub n_voxels: usize,
    /// The shared α, or the median per-voxel α.
    pub alpha: f64,
    pub alpha_per_voxel: bool,
    /// Voxels whose α is the smallest / largest of the grid.
    pub at_lower_edge: usize,
    pub at_upper_edge: usize,
}

/// The smallest and largest α: the grid need not be sorted.
fn grid_edges(grid: &[f64]) -> (f64, f64) {
    grid.iter()
        .fold((f64::INFINITY, 0f64), |(l, h), &a| (l.min(a), h.max(a)))
}

impl FitOut {
    /// A sentence for the user when the grid probably does not bracket the optimum.
    pub fn edge_warning(&self, grid: &[f64]) -> Option<String> {
        let (lo, hi) = grid_edges(grid);
        let which = |n: usize, edge: &str, a: f64| {
            (n > 0).then(|| {
                if self.alpha_per_voxel {
                    format!(
                        "{n} of {} voxels chose α = {a:e}, the {edge} edge of alpha_grid",
                        self.n_voxels
                    )
                } else {
                    format!("chosen α = {a:e} is the {edge} edge of alpha_grid")
                }
            })
        };
        let parts: Vec<String> = [
            which(self.at_lower_edge, "lower", lo),
            which(self.at_upper_edge, "upper", hi),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| format!("{}; widen the grid", parts.join("; ")))
    }
}

impl NodeKind for FitTask {
    fn kind(&self) -> &'static str {
        "fit"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // The decomposition, LOO errors for every α, predictions.
        let (nt, ne, v) = self.sizes;
        8 * (3 * nt * nt + ne * nt + 5 * nt * v) + 4 * nt * 1000
    }
    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let meta: FitOut = entry()?.read_json("fit.json")?;
        Ok(meta.edge_warning(&self.alpha_grid).into_iter().collect())
    }

    fn run(&self, ctx: &Ctx) -> Result<()> {
        let dec = super::decompose::load(ctx.input("decompose")?)?;
        let idx = as_indices(&ctx.input("roi")?.read_f64("indices.npy")?);
        let split = crate::nodes::split::read(ctx.input("split")?)?;
        let y = ctx.input("subject")?.read_f64("y.npy")?;
        let (_, v_all) = y.rows_cols();
        let n = split.fit.len();
        if n != dec.basis.nrows() {
            return Err(ctx.fail(format!(
                "features have {} training rows but the split fits {n}",
                dec.basis.nrows()
            )));
        }
        let v = match self.target {
            Target::Voxels => idx.len(),
            Target::RoiMean => 1,
        };
        let y_roi = super::sets::targets(&y.data, v_all, &split.fit, &idx, self.target);
        drop(y);
        ctx.progress
            .set_message(format!("{} α × {v} voxels", self.alpha_grid.len()));
        let cv = ridge::ridge_cv(&dec, &y_roi, v, &self.alpha_grid, self.alpha_per_voxel);
        let alphas: Vec<f64> = cv.alpha_index.iter().map(|&i| self.alpha_grid[i]).collect();
        // A tiny α on (near-)singular features overflows the solve: its LOO
        // error is inf/NaN, or its predictions are so large their squares
        // overflow. Say so rather than report R² = −inf.
        let bad_voxel = (0..v).find(|&j| {
            !cv.loo_mse[(cv.alpha_index[j], j)].is_finite()
                || !(0..cv.y_pred.nrows())
                    .map(|i| cv.y_pred[(i, j)] * cv.y_pred[(i, j)])
                    .sum::<f64>()
                    .is_finite()
        });
        if let Some(j) = bad_voxel {
            return Err(ctx
                .fail(format!(
                    "ridge is numerically singular: at α = {:e} voxel {j} gets non-finite leave-one-out errors or predictions too large to score",
                    alphas[j]
                ))
                .with_help("raise the smallest α in alpha_grid (features are float32: an α below ~1e-10 × their variance is lost in rounding)"));
        }
        let bad_alpha =
            (0..self.alpha_grid.len()).find(|&a| (0..v).any(|j| !cv.loo_mse[(a, j)].is_finite()));
        if let Some(a) = bad_alpha {
            ctx.note(format!(
                "α = {:e} gives non-finite leave-one-out errors (numerically singular); it was never chosen",
                self.alpha_grid[a]
            ));
        }
        // The grid need not be sorted: edges are its smallest and largest values.
        let (lo, hi) = grid_edges(&self.alpha_grid);
        // The cross products' rows are the score stimuli, then validation,
        // then (when asked) the fit stimuli.
        let rows = ridge::to_row_major(cv.y_pred.as_ref());
        let (ne, nv) = (split.score.len(), split.validation.len());
        for &set in &self.sets {
            let (data, n_set) = match set {
                Set::Test => (rows[..ne * v].to_vec(), ne),
                Set::Validation if nv == 0 => (rows[..ne * v].to_vec(), ne),
                Set::Validation => (rows[ne * v..(ne + nv) * v].to_vec(), nv),
                Set::Train => (rows[(ne + nv) * v..].to_vec(), n),
            };
            ctx.out
                .write_npy(&format!("pred.{}.npy", set.name()), &[n_set, v], &data)?;
        }
        ctx.out.write_npy("alpha.npy", &[v], &alphas)?;
        ctx.out.write_npy(
            "loo_mse.npy",
            &[self.alpha_grid.len(), v],
            &ridge::to_row_major(cv.loo_mse.as_ref()),
        )?;
        ctx.out.write_json(
            "fit.json",
            &FitOut {
                n_voxels: v,
                alpha: crate::numerics::metrics::median(&alphas),
                alpha_per_voxel: self.alpha_per_voxel,
                at_lower_edge: alphas.iter().filter(|&&a| a == lo).count(),
                at_upper_edge: alphas.iter().filter(|&&a| a == hi).count(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::FitOut;

    #[test]
    fn edge_warnings_name_the_edge() {
        let grid = [10.0, 0.1, 1.0];
        let shared = FitOut {
            n_voxels: 5,
            alpha: 10.0,
            alpha_per_voxel: false,
            at_lower_edge: 0,
            at_upper_edge: 5,
        };
        assert_eq!(
            shared.edge_warning(&grid).unwrap(),
            "chosen α = 1e1 is the upper edge of alpha_grid; widen the grid"
        );
        let per_voxel = FitOut {
            n_voxels: 5,
            alpha: 1.0,
            alpha_per_voxel: true,
            at_lower_edge: 2,
            at_upper_edge: 0,
        };
        assert_eq!(
            per_voxel.edge_warning(&grid).unwrap(),
            "2 of 5 voxels chose α = 1e-1, the lower edge of alpha_grid; widen the grid"
        );
        let inside = FitOut {
            n_voxels: 5,
            alpha: 1.0,
            alpha_per_voxel: false,
            at_lower_edge: 0,
            at_upper_edge: 0,
        };
        assert!(inside.edge_warning(&grid).is_none());
    }
}
