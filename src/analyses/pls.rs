//! `kind = "pls"`: partial least squares regression, as scikit-learn's
//! `PLSRegression(n_components, scale)` (NIPALS; see `numerics::pls`), the
//! Kay V4 project's model: 25 components, `scale = false`, on 5,000 randomly
//! kept conv3 columns, over five random 1500/250 splits of vim-1's training
//! images, with the 120 validation images scored by every split's model.
//!
//! Nodes: per feature layer, ROI and split a `pls_fit` (predictions of each
//! scored set; the weights stay in memory) → `score` (a record per set) →
//! with several splits, one `split_stats` (mean and std over splits).

use std::collections::BTreeMap;
use std::sync::Arc;

use faer::Mat;
use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;
use toml::de::DeValue;

use super::expand::Expand;
use super::sets::{ScoreTask, Set, Target};
use super::{Analysis, ParseCx, SplitSpec};
use crate::error::Result;
use crate::node::{Ctx, FeatureRef, NodeKind, as_indices};
use crate::nodes::reduce::Reduce;
use crate::numerics::pls;
use crate::vocab::{Aggregate, Metric};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    n_components: Spanned<usize>,
    /// scikit-learn's default is true; the Kay V4 voxel fits use false.
    scale: Option<bool>,
    /// "voxels" (default) or "roi_mean".
    target: Option<Spanned<String>>,
    features: Option<Spanned<Vec<String>>>,
    rois: Option<Spanned<Vec<String>>>,
    metrics: Option<Spanned<Vec<String>>>,
    aggregate: Option<Spanned<String>>,
    sets: Option<Spanned<Vec<String>>>,
    split: Option<Spanned<super::RawSplit>>,
    reduce: Option<Spanned<super::RawReduce>>,
}

#[derive(Debug)]
pub struct Pls {
    pub n_components: usize,
    pub scale: bool,
    pub target: Target,
    pub features: Vec<String>,
    pub rois: Vec<String>,
    pub metrics: Vec<Metric>,
    pub aggregate: Aggregate,
    pub sets: Option<Vec<Set>>,
    pub split: Option<SplitSpec>,
    pub reduce: Option<Reduce>,
}

/// The Kay V4 project's score: the squared Pearson r (and r, and R²).
pub const DEFAULT_METRICS: [Metric; 3] = [Metric::PearsonR2, Metric::PearsonR, Metric::R2];

pub fn parse(_name: &str, value: Spanned<DeValue<'_>>, cx: &ParseCx) -> Result<Arc<dyn Analysis>> {
    let raw: Raw = super::deserialize(value, cx.src)?;
    let k = *raw.n_components.get_ref();
    if k == 0 {
        return Err(cx
            .src
            .error(raw.n_components.span(), "n_components must be ≥ 1")
            .with_help("the Kay V4 project: 25 per voxel, 1 for the V4 average"));
    }
    let metrics = super::metrics(cx, raw.metrics.clone(), &DEFAULT_METRICS)?;
    if metrics.contains(&Metric::R2OverNc)
        && let Some(m) = &raw.metrics
    {
        return Err(cx
            .src
            .error(m.span(), "kind = \"pls\" has no noise-ceiling metric")
            .with_help("metrics are pearson_r2, pearson_r and r2"));
    }
    Ok(Arc::new(Pls {
        n_components: k,
        scale: raw.scale.unwrap_or(true),
        target: super::sets::target(cx, raw.target)?,
        features: super::pick(cx, raw.features, &cx.features, "feature source")?,
        rois: super::pick(cx, raw.rois, &cx.rois, "ROI")?,
        metrics,
        aggregate: super::aggregate(cx, raw.aggregate, Aggregate::Median)?,
        sets: super::sets::sets(cx, raw.sets)?,
        split: super::split(cx, raw.split, false, true)?,
        reduce: super::reduce(cx, raw.reduce)?,
    }))
}

impl Analysis for Pls {
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
            let sets = super::sets::resolve(cx.name, &self.sets, &self.split, subject)?;
            let mut per_roi: BTreeMap<&str, Vec<_>> = BTreeMap::new();
            for fold in 0..folds {
                let (split, (nt, ne)) = cx.split(subject, &self.split, fold)?;
                let hf = cx.reduced(&h, split, &self.reduce);
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
                    let mut upstream = vec![
                        ("subject".to_string(), subject.node),
                        ("roi".to_string(), roi.node),
                        ("split".to_string(), split),
                    ];
                    let mut inputs = BTreeMap::new();
                    hf.attach(&mut upstream, &mut inputs);
                    let id = format!("{}/{}/{roi_name}/{fold}", cx.name, hf.id());
                    let fit = cx.g.add(
                        format!("pls_fit/{id}"),
                        PlsFitTask {
                            n_components: self.n_components,
                            scale: self.scale,
                            target: self.target,
                            sets: sets.clone(),
                            features: hf.features.clone(),
                            sizes: (nt, ne, hf.width, v),
                        },
                        upstream,
                        inputs,
                    );
                    let task = ScoreTask {
                        nc_repeats: None,
                        metrics: self.metrics.clone(),
                        aggregates: super::sets::aggregates(self.aggregate),
                        by_hemisphere: false,
                        roi: roi_name.clone(),
                        target: self.target,
                        sets: sets.clone(),
                        extras: vec![],
                        sizes: (ne.max(nt), v),
                    };
                    let score = cx.g.add(
                        format!("score/{id}"),
                        task.clone(),
                        vec![
                            ("fit".to_string(), fit),
                            ("subject".to_string(), subject.node),
                            ("roi".to_string(), roi.node),
                            ("split".to_string(), split),
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

pub const VERSION: u32 = 1;

/// `pls_fit`: one PLS regression on the split's fit stimuli, predicting
/// each scored set.
#[derive(Debug, Clone, Serialize)]
pub struct PlsFitTask {
    pub n_components: usize,
    pub scale: bool,
    pub target: Target,
    pub sets: Vec<Set>,
    pub features: FeatureRef,
    /// Sizes for the memory estimate: fit and scored stimuli, features, voxels.
    #[serde(skip)]
    pub sizes: (u64, u64, u64, u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlsOut {
    pub n_fit: usize,
    pub n_features: usize,
    pub n_targets: usize,
    pub components_used: usize,
    /// Power-method iterations per component (scikit-learn's `n_iter_`).
    pub n_iter: Vec<usize>,
    /// scikit-learn's warnings, as it words them.
    pub warnings: Vec<String>,
}

impl NodeKind for PlsFitTask {
    fn kind(&self) -> &'static str {
        "pls_fit"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // Every stimulus's features in f64, the fit rows' copy, the n × n
        // Gram matrix, the weights and loadings, the targets.
        let (nt, ne, p, v) = self.sizes;
        let k = self.n_components as u64;
        8 * ((nt + ne) * p * 2 + nt * nt + 4 * p * k + p * v + 3 * nt * v)
    }
    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let out: PlsOut = entry()?.read_json("pls.json")?;
        Ok(out.warnings)
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let x = self.features.read_f64_as(ctx, "features")?;
        let (n_rows, p) = x.rows_cols();
        let split = crate::nodes::split::read(ctx.input("split")?)?;
        let idx = as_indices(&ctx.input("roi")?.read_f64("indices.npy")?);
        let y = ctx.input("subject")?.read_f64("y.npy")?;
        let v_all = y.rows_cols().1;
        let needed = split
            .fit
            .iter()
            .chain(&split.score)
            .chain(&split.validation)
            .max()
            .map_or(0, |m| m + 1);
        if n_rows < needed {
            return Err(ctx.fail(format!(
                "features have {n_rows} rows but the split needs {needed}"
            )));
        }
        let rows_of = |rows: &[usize]| -> Result<Mat<f64>> {
            if let Some((i, j)) = rows.iter().find_map(|&i| {
                x.data[i * p..(i + 1) * p]
                    .iter()
                    .position(|v| !v.is_finite())
                    .map(|j| (i, j))
            }) {
                return Err(ctx
                    .fail(format!("feature row {i}, column {j} is not finite"))
                    .with_help("features must be finite; check the file or extraction"));
            }
            Ok(Mat::from_fn(rows.len(), p, |r, c| x.data[rows[r] * p + c]))
        };
        let t = match self.target {
            Target::Voxels => idx.len(),
            Target::RoiMean => 1,
        };
        let targets = super::sets::targets(&y.data, v_all, &split.fit, &idx, self.target);
        let yt = Mat::from_fn(split.fit.len(), t, |r, c| targets[r * t + c]);
        let xt = rows_of(&split.fit)?;
        ctx.progress.set_message(format!(
            "{} components, {}×{p} → {t}",
            self.n_components,
            split.fit.len()
        ));
        let model = pls::fit(xt.as_ref(), yt.as_ref(), self.n_components, self.scale)
            .map_err(|e| ctx.fail(format!("PLSRegression: {e}")))?;
        drop(xt);
        for &set in &self.sets {
            let rows = set.rows(&split);
            let pred = model.predict(rows_of(rows)?.as_ref());
            let data: Vec<f64> = (0..rows.len())
                .flat_map(|i| (0..t).map(move |j| (i, j)))
                .map(|(i, j)| pred[(i, j)])
                .collect();
            ctx.out
                .write_npy(&format!("pred.{}.npy", set.name()), &[rows.len(), t], &data)?;
        }
        ctx.out.write_json(
            "pls.json",
            &PlsOut {
                n_fit: split.fit.len(),
                n_features: p,
                n_targets: t,
                components_used: model.components_used,
                n_iter: model.n_iter.clone(),
                warnings: model.warnings.clone(),
            },
        )
    }
}
