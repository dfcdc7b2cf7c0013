//! `kind = "linear"`: the Algonauts 2023 devkit's encoding model. Features
//! (usually reduced by `reduce = { method = "incremental_pca", ... }`) are
//! mapped onto every vertex by ordinary least squares with an intercept
//! (scikit-learn's `LinearRegression`), the held-out stimuli are predicted,
//! and each vertex is scored (Pearson r as `scipy.stats.pearsonr`), then
//! summarised per ROI and hemisphere (the devkit's median).
//!
//! OLS is separable by vertex, so one fit per layer serves every ROI: ROIs
//! only slice the scores. With `split = { method = "kfold" }` each fold is
//! fitted on the others and the out-of-fold predictions of all folds are
//! scored together.
//!
//! Nodes: `linear_fit` (per layer and fold) → `linear_score` (per layer, a
//! record over every ROI) → `surface_map` (per layer: scores back in fsaverage
//! space) and `submission` (the challenge's test-set predictions and zip).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;
use toml::de::DeValue;

use super::expand::{Expand, Handle};
use super::{Analysis, ParseCx, SplitSpec};
use crate::error::{Error, IoContext, Result};
use crate::node::{Ctx, FeatureRef, NodeKind, as_indices};
use crate::nodes::reduce::Reduce;
use crate::numerics::linear::LinearFit;
use crate::record::Record;
use crate::vocab::{Aggregate, Metric};

pub const VERSION: u32 = 1;

/// The challenge refuses uploads above 300 MB (the devkit casts to float32
/// for this). The rule is on the uploaded zip; read as MiB so that a zip
/// CodaLab takes is never refused here.
pub const MAX_SUBMISSION_BYTES: u64 = 300 * 1024 * 1024;

/// The folder the challenge's zip is built from, and the zip's name.
pub const SUBMISSION: &str = "algonauts_2023_challenge_submission";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    features: Option<Spanned<Vec<String>>>,
    rois: Option<Spanned<Vec<String>>>,
    metrics: Option<Spanned<Vec<String>>>,
    aggregate: Option<Spanned<String>>,
    by_hemisphere: Option<bool>,
    split: Option<Spanned<super::RawSplit>>,
    reduce: Option<Spanned<super::RawReduce>>,
    submission: Option<Spanned<RawSubmission>>,
    /// Write each layer's per-vertex scores into fsaverage space (default: true
    /// where the subject has an fsaverage mapping).
    surface_maps: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubmission {
    /// The feature source and layer whose predictions are submitted
    /// (default: the analysis's only one).
    source: Option<Spanned<String>>,
    layer: Option<Spanned<String>>,
    /// "train" (the devkit: the 90 % fit set) or "train+val" (every stimulus
    /// with responses, as the devkit recommends but does not do).
    refit: Option<Spanned<String>>,
}

#[derive(Debug)]
struct Submission {
    source: Option<String>,
    layer: Option<String>,
    refit_all: bool,
    span: std::ops::Range<usize>,
}

#[derive(Debug)]
pub struct Linear {
    features: Vec<String>,
    rois: Vec<String>,
    metrics: Vec<Metric>,
    aggregate: Aggregate,
    by_hemisphere: bool,
    split: Option<SplitSpec>,
    reduce: Option<Reduce>,
    submission: Option<Submission>,
    surface_maps: bool,
    source: crate::source::Source,
}

pub fn parse(_name: &str, value: Spanned<DeValue<'_>>, cx: &ParseCx) -> Result<Arc<dyn Analysis>> {
    let raw: Raw = super::deserialize(value, cx.src)?;
    let submission = match raw.submission {
        None => None,
        Some(s) => {
            let span = s.span();
            let s = s.into_inner();
            let refit_all = match s.refit.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
                None | Some(("train", _)) => false,
                Some(("train+val", _)) => true,
                Some((other, at)) => {
                    return Err(cx
                        .src
                        .error(at, format!("unknown refit `{other}`"))
                        .with_help("refit = \"train\" (the devkit) or \"train+val\""));
                }
            };
            if let Some(src) = &s.source
                && !cx.features.contains(src.get_ref())
            {
                return Err(cx
                    .src
                    .error(
                        src.span(),
                        format!("unknown feature source `{}`", src.get_ref()),
                    )
                    .with_help(format!("declared: {}", cx.features.join(", "))));
            }
            Some(Submission {
                source: s.source.map(Spanned::into_inner),
                layer: s.layer.map(Spanned::into_inner),
                refit_all,
                span,
            })
        }
    };
    Ok(Arc::new(Linear {
        features: super::pick(cx, raw.features, &cx.features, "feature source")?,
        rois: super::pick(cx, raw.rois, &cx.rois, "ROI")?,
        metrics: super::metrics(cx, raw.metrics, &[Metric::PearsonR])?,
        aggregate: super::aggregate(cx, raw.aggregate, Aggregate::Median)?,
        by_hemisphere: raw.by_hemisphere.unwrap_or(true),
        split: super::split(cx, raw.split, true, false)?,
        reduce: super::reduce(cx, raw.reduce)?,
        submission,
        surface_maps: raw.surface_maps.unwrap_or(true),
        source: cx.src.clone(),
    }))
}

impl Analysis for Linear {
    fn metrics(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.name().to_string()).collect()
    }

    fn aggregate(&self) -> Aggregate {
        self.aggregate
    }

    fn expand(&self, cx: &mut Expand) -> Result<()> {
        let handles: Vec<Handle> = cx.shared.handles_of(&self.features).cloned().collect();
        let mut submitted: Vec<(
            String,
            petgraph::graph::NodeIndex,
            petgraph::graph::NodeIndex,
        )> = Vec::new();
        let mut candidates = Vec::new();
        for h in handles {
            let subject = cx.shared.subject(&h.subject);
            if !(subject.noise_ceiling || subject.nc_given)
                && self.metrics.contains(&Metric::R2OverNc)
            {
                return Err(super::ridge_cv::no_noise_ceiling(cx.name, subject));
            }
            let folds = self.split.as_ref().map_or(1, SplitSpec::folds);
            let mut upstream = vec![("subject".to_string(), subject.node)];
            let mut fold_fits = Vec::new();
            let mut first = None;
            for fold in 0..folds {
                let (split, _) = cx.split(subject, &self.split, fold)?;
                // Each fold reduces on its own fit stimuli.
                let hf = cx.reduced(&h, split, &self.reduce);
                let fit = self.fit_node(cx, &hf, subject.node, split, false, fold, folds);
                if fold == 0 {
                    first = Some((hf.clone(), split));
                }
                upstream.push((format!("fit:{fold:03}"), fit));
                upstream.push((format!("split:{fold:03}"), split));
                fold_fits.push(fit);
            }
            for roi in &self.rois {
                upstream.push((format!("roi:{roi}"), subject.roi(roi).node));
            }
            let score = cx.g.add(
                format!("linear_score/{}/{}", cx.name, h.id()),
                LinearScoreTask {
                    metrics: self.metrics.clone(),
                    aggregate: self.aggregate,
                    by_hemisphere: self.by_hemisphere,
                    rois: self.rois.clone(),
                    folds,
                    n_voxels: subject.n_voxels,
                    n_responses: subject.n_responses,
                },
                upstream,
                BTreeMap::new(),
            );
            cx.score(score, &h, "");
            if self.surface_maps && subject.fsaverage {
                let maps = cx.g.add(
                    format!("surface_map/{}/{}", cx.name, h.id()),
                    SurfaceMapTask {
                        stem: format!("{}_{}_{}_{}", cx.name, h.subject, h.source, h.layer),
                        metrics: self.metrics.clone(),
                    },
                    vec![("score".into(), score), ("subject".into(), subject.node)],
                    BTreeMap::new(),
                );
                cx.outputs.push((maps, String::new()));
            }
            if self.submission.is_some() {
                candidates.push((h.clone(), first.expect("at least one fold")));
            }
        }
        if let Some(sub) = &self.submission {
            let wanted: Vec<&(Handle, (Handle, petgraph::graph::NodeIndex))> = candidates
                .iter()
                .filter(|(h, _)| sub.source.as_ref().is_none_or(|s| *s == h.source))
                .filter(|(h, _)| sub.layer.as_ref().is_none_or(|l| *l == h.layer))
                .collect();
            let mut per_subject: BTreeMap<&str, Vec<_>> = BTreeMap::new();
            for w in &wanted {
                per_subject
                    .entry(w.0.subject.as_str())
                    .or_default()
                    .push(*w);
            }
            if per_subject.is_empty() {
                return Err(self.source.error(
                    sub.span.clone(),
                    "the submission matches no feature source and layer of this analysis",
                ));
            }
            for (sname, list) in &per_subject {
                if list.len() > 1 {
                    return Err(self
                        .source
                        .error(
                            sub.span.clone(),
                            format!(
                                "subject `{sname}` has {} candidate layers for the submission: {}",
                                list.len(),
                                list.iter()
                                    .map(|(h, _)| format!("{}/{}", h.source, h.layer))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                        .with_help(
                            "say which: submission = { source = \"...\", layer = \"...\" }",
                        ));
                }
                let (_, (hf, split)) = list[0];
                let subject = cx.shared.subject(sname);
                if !subject.fsaverage || subject.n_stimuli == subject.n_responses {
                    return Err(self.source.error(
                        sub.span.clone(),
                        format!(
                            "subject `{sname}` ({}) has no test stimuli to submit predictions for",
                            subject.format
                        ),
                    ));
                }
                let fit = self.fit_node(cx, hf, subject.node, *split, sub.refit_all, 0, 1);
                let folder = subject.folder.clone();
                if !is_challenge_folder(&folder) {
                    cx.warnings.push(format!(
                        "analyses.{}: subject directory `{folder}` is not named subjNN; the challenge expects subj01..subj08 in the zip",
                        cx.name
                    ));
                }
                submitted.push((folder, fit, subject.node));
            }
            let mut upstream = Vec::new();
            let mut folders: Vec<String> = Vec::new();
            for (i, (folder, fit, subject)) in submitted.iter().enumerate() {
                if folders.contains(folder) {
                    return Err(self.source.error(
                        sub.span.clone(),
                        format!("two subjects live in directories named `{folder}`; the submission needs one folder per subject"),
                    ));
                }
                upstream.push((format!("fit:{i:03}"), *fit));
                upstream.push((format!("subject:{i:03}"), *subject));
                folders.push(folder.clone());
            }
            let node = cx.g.add(
                format!("submission/{}", cx.name),
                SubmissionTask { folders },
                upstream,
                BTreeMap::new(),
            );
            cx.outputs.push((node, String::new()));
        }
        Ok(())
    }
}

impl Linear {
    #[allow(clippy::too_many_arguments)]
    fn fit_node(
        &self,
        cx: &mut Expand,
        h: &Handle,
        subject: petgraph::graph::NodeIndex,
        split: petgraph::graph::NodeIndex,
        refit_all: bool,
        fold: usize,
        folds: usize,
    ) -> petgraph::graph::NodeIndex {
        let mut upstream = vec![
            ("subject".to_string(), subject),
            ("split".to_string(), split),
        ];
        let mut inputs = BTreeMap::new();
        h.attach(&mut upstream, &mut inputs);
        let s = cx.shared.subject(&h.subject);
        let fold_label = if folds > 1 {
            format!("/fold{fold}")
        } else {
            String::new()
        };
        let refit = if refit_all { "/refit-all" } else { "" };
        cx.g.add(
            format!("linear_fit/{}{fold_label}{refit}", h.id()),
            LinearFitTask {
                features: h.features.clone(),
                refit_all,
                n_stimuli: s.n_stimuli,
                n_voxels: s.n_voxels,
                width: h.width,
            },
            upstream,
            inputs,
        )
    }
}

/// The challenge's size rule, on the zip's bytes.
fn too_big(zip_bytes: u64) -> Option<String> {
    (zip_bytes > MAX_SUBMISSION_BYTES)
        .then(|| format!("the submission zip is {zip_bytes} bytes, above the challenge's 300 MB"))
}

fn is_challenge_folder(name: &str) -> bool {
    name.len() == 6 && name.starts_with("subj") && name[4..].chars().all(|c| c.is_ascii_digit())
}

/// OLS with intercept onto every voxel; predictions of the scored and the
/// predict-only stimuli.
#[derive(Debug, Clone, Serialize)]
pub struct LinearFitTask {
    pub features: FeatureRef,
    /// Fit on fit + score stimuli (a submission's refit on train+val).
    pub refit_all: bool,
    #[serde(skip)]
    pub n_stimuli: usize,
    #[serde(skip)]
    pub n_voxels: usize,
    #[serde(skip)]
    pub width: u64,
}

impl NodeKind for LinearFitTask {
    fn kind(&self) -> &'static str {
        "linear_fit"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let (n, v, p) = (self.n_stimuli as u64, self.n_voxels as u64, self.width);
        4 * n * p + 8 * n * v + 8 * p * v + 8 * p * p
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let split = crate::nodes::split::read(ctx.input("split")?)?;
        let x = self.features.read(ctx)?;
        let y = ctx.input("subject")?.read_f32("y.npy")?;
        let (_, p) = x.rows_cols();
        let (_, v) = y.rows_cols();
        let fit_rows: Vec<usize> = if self.refit_all {
            split.fit.iter().chain(&split.score).copied().collect()
        } else {
            split.fit.clone()
        };
        let gather = |a: &[f32], w: usize, rows: &[usize]| -> Vec<f32> {
            let mut out = Vec::with_capacity(rows.len() * w);
            for &i in rows {
                out.extend_from_slice(&a[i * w..(i + 1) * w]);
            }
            out
        };
        if let Some(i) = x.data.iter().position(|f| !f.is_finite()) {
            return Err(ctx.fail(format!(
                "non-finite feature at stimulus {}, column {}",
                i / p,
                i % p
            )));
        }
        ctx.progress
            .set_message(format!("OLS {}×{p} → {v} voxels", fit_rows.len()));
        let model = LinearFit::fit(
            &gather(&x.data, p, &fit_rows),
            fit_rows.len(),
            p,
            &gather(&y.data, v, &fit_rows),
            v,
        );
        let score_pred = model.predict(&gather(&x.data, p, &split.score), split.score.len());
        let test_pred = model.predict(&gather(&x.data, p, &split.predict), split.predict.len());
        ctx.out
            .write_npy("y_pred_score.npy", &[split.score.len(), v], &score_pred)?;
        ctx.out
            .write_npy("y_pred_test.npy", &[split.predict.len(), v], &test_pred)
    }
}

/// Every voxel scored once; every ROI of the analysis summarised from those.
#[derive(Debug, Clone, Serialize)]
pub struct LinearScoreTask {
    pub metrics: Vec<Metric>,
    pub aggregate: Aggregate,
    pub by_hemisphere: bool,
    pub rois: Vec<String>,
    pub folds: usize,
    #[serde(skip)]
    pub n_voxels: usize,
    #[serde(skip)]
    pub n_responses: usize,
}

impl NodeKind for LinearScoreTask {
    fn kind(&self) -> &'static str {
        "linear_score"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        8 * 3 * (self.n_voxels * self.n_responses) as u64
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = ctx.input("subject")?;
        let voxels = crate::nodes::subject::read_voxels(subject)?;
        let y = subject.read_f32("y.npy")?;
        let (_, v) = y.rows_cols();
        // Out-of-fold predictions of every fold, stacked.
        let (mut pred, mut truth) = (Vec::new(), Vec::new());
        let mut n = 0;
        for fold in 0..self.folds {
            let split = crate::nodes::split::read(ctx.input(&format!("split:{fold:03}"))?)?;
            let p = ctx
                .input(&format!("fit:{fold:03}"))?
                .read_f32("y_pred_score.npy")?;
            if p.shape != [split.score.len(), v] {
                return Err(ctx.fail(format!(
                    "fold {fold}: predictions are {:?} but the score set is {} × {v}",
                    p.shape,
                    split.score.len()
                )));
            }
            pred.extend(p.data.iter().map(|&x| x as f64));
            for &i in &split.score {
                truth.extend(y.data[i * v..(i + 1) * v].iter().map(|&x| x as f64));
            }
            n += split.score.len();
        }
        let nc = crate::nodes::subject::noise_ceiling(subject, None)?;
        let scores = crate::record::score_voxels(&self.metrics, &pred, &truth, n, v, nc.as_deref());
        for (m, vals) in &scores {
            let f: Vec<f64> = vals.clone();
            ctx.out.write_npy(&format!("{}.npy", m.name()), &[v], &f)?;
        }
        let hemi_all: Vec<&str> = voxels.hemi.iter().map(|s| s.as_str()).collect();
        let hemis = voxels.hemis();
        let voxel_all: Vec<i64> = voxels.index.iter().map(|&i| i as i64).collect();
        let mut rec = Record::default();
        // Per-voxel values once, for all voxels; ROI rows summarise slices.
        let all: Vec<(&str, &[f64])> = scores.iter().map(|(m, v)| (m.name(), &v[..])).collect();
        rec.add_voxels("", &hemi_all, &voxel_all, &all);
        for roi in &self.rois {
            let idx = as_indices(&ctx.input(&format!("roi:{roi}"))?.read_f64("indices.npy")?);
            let hemi: Vec<&str> = idx.iter().map(|&j| hemi_all[j]).collect();
            let picked: Vec<(&str, Vec<f64>)> = scores
                .iter()
                .map(|(m, vals)| (m.name(), idx.iter().map(|&j| vals[j]).collect()))
                .collect();
            let values: Vec<(&str, &[f64])> = picked.iter().map(|(m, v)| (*m, &v[..])).collect();
            rec.summarize(
                roi,
                &hemis,
                &hemi,
                &values,
                self.aggregate,
                self.by_hemisphere,
            );
        }
        rec.write(ctx)
    }

    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        crate::record::empty_warning(&entry()?)
    }
}

/// A layer's per-vertex scores written back into fsaverage space, one
/// `.npy` per hemisphere and metric (zero off the challenge vertices, as the
/// devkit fills them), for nilearn's `view_surf`.
#[derive(Debug, Clone, Serialize)]
pub struct SurfaceMapTask {
    pub stem: String,
    pub metrics: Vec<Metric>,
}

impl NodeKind for SurfaceMapTask {
    fn kind(&self) -> &'static str {
        "surface_map"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        64 << 20
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = ctx.input("subject")?;
        let fs: crate::nodes::subject::Fsaverage = subject.read_json("fsaverage.json")?;
        let voxels = crate::nodes::subject::read_voxels(subject)?;
        let score = ctx.input("score")?;
        for m in &self.metrics {
            let vals = score.read_f64(&format!("{}.npy", m.name()))?.data;
            for (hemi, len, index) in &fs.hemis {
                // This hemisphere's values by challenge vertex; NaN (a constant
                // prediction) shows as off-mesh, like the devkit's zero fill.
                let mut challenge = vec![0f32; index.len()];
                for (j, _) in voxels.hemi.iter().enumerate().filter(|(_, h)| *h == hemi) {
                    let value = vals[j];
                    challenge[voxels.index[j] as usize] =
                        if value.is_finite() { value as f32 } else { 0.0 };
                }
                let map = crate::algonauts::fsaverage_map(*len, index, &challenge);
                ctx.out.write_npy(
                    &format!("{}.{hemi}.{}.fsaverage.npy", self.stem, m.name()),
                    &[*len],
                    &map,
                )?;
            }
        }
        Ok(())
    }
}

/// The challenge's submission: float32 test predictions of every challenge
/// vertex, `subjNN/{lh,rh}_pred_test.npy`, and the zip whose root holds the
/// `subjNN/` folders.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionTask {
    pub folders: Vec<String>,
}

impl NodeKind for SubmissionTask {
    fn kind(&self) -> &'static str {
        "submission"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        2 * MAX_SUBMISSION_BYTES
    }
    fn result_name(&self, file: &str) -> String {
        // `subj01.lh_pred_test.npy` in the entry → the challenge's tree.
        match file.split_once('.') {
            Some((folder, rest)) if self.folders.iter().any(|f| f == folder) => {
                format!("{SUBMISSION}/{folder}/{rest}")
            }
            _ => file.to_string(),
        }
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        use std::io::Write;
        let mut files: Vec<(String, String)> = Vec::new();
        for (i, folder) in self.folders.iter().enumerate() {
            let subject = ctx.input(&format!("subject:{i:03}"))?;
            let voxels = crate::nodes::subject::read_voxels(subject)?;
            let pred = ctx
                .input(&format!("fit:{i:03}"))?
                .read_f32("y_pred_test.npy")?;
            let (n, v) = pred.rows_cols();
            let mut hemis: Vec<&str> = Vec::new();
            for h in &voxels.hemi {
                if !hemis.contains(&h.as_str()) {
                    hemis.push(h);
                }
            }
            for hemi in hemis {
                let cols: Vec<usize> = (0..v).filter(|&j| voxels.hemi[j] == hemi).collect();
                let mut out = Vec::with_capacity(n * cols.len());
                for r in 0..n {
                    out.extend(cols.iter().map(|&j| pred.data[r * v + j]));
                }
                let name = format!("{folder}.{hemi}_pred_test.npy");
                ctx.out.write_npy(&name, &[n, cols.len()], &out)?;
                files.push((name, format!("{folder}/{hemi}_pred_test.npy")));
            }
        }
        let zip_name = format!("{SUBMISSION}.zip");
        let path = ctx.out.path(&zip_name);
        let file = std::fs::File::create(&path).at(&path)?;
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            // Fixed times: the same predictions give the same zip bytes.
            .last_modified_time(zip::DateTime::default());
        let zerr = |e: zip::result::ZipError| Error::data(&path, format!("writing the zip: {e}"));
        for folder in &self.folders {
            zip.add_directory(format!("{folder}/"), opts)
                .map_err(zerr)?;
        }
        for (name, inside) in &files {
            zip.start_file(inside.as_str(), opts).map_err(zerr)?;
            let bytes = std::fs::read(ctx.out.path(name)).at(ctx.out.path(name))?;
            zip.write_all(&bytes).at(&path)?;
        }
        zip.finish().map_err(zerr)?;
        let size = std::fs::metadata(&path).at(&path)?.len();
        match too_big(size) {
            None => Ok(()),
            Some(why) => Err(ctx.fail(why).with_help(
                "the challenge takes float32 predictions of every challenge vertex of the test images; check the subjects and hemispheres",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_rule_is_the_challenges() {
        // All 8 subjects' test images × subj02's challenge vertices in float32
        // are 318 MB before compression; float64 is twice that, which is why
        // the devkit casts ("a float64 data type would exceed this limit").
        let tests = [159u64, 159, 293, 395, 159, 293, 159, 395];
        let vertices = 19004u64 + 20544;
        let f32_bytes: u64 = tests.iter().map(|n| n * vertices * 4).sum();
        assert_eq!(f32_bytes, 318_282_304);
        assert!(too_big(f32_bytes * 9 / 10).is_none());
        let err = too_big(2 * f32_bytes).unwrap();
        assert!(err.contains("above the challenge's 300 MB"), "{err}");
        assert!(is_challenge_folder("subj01") && !is_challenge_folder("s1"));
    }
}
