//! What the regression analyses share once a fit has predicted: which
//! stimuli are scored (the `test` stimuli of the split, the `train` stimuli
//! it was fitted on, a `validation` set outside every split), what is
//! predicted (each voxel, or the ROI's mean response as one target), the
//! `score` node that turns predictions into a record per set, and the
//! `split_stats` node that summarises repeated splits (the Kay V4 project's
//! mean and standard deviation over its five splits).
//!
//! A fit node writes `pred.<set>.npy` (stimuli of the set × targets, in the
//! split's order) and, optionally, per-target extras (`alpha.npy`).

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Serialize;
use serde_spanned::Spanned;

use super::ParseCx;
use super::expand::{Expand, Handle};
use crate::error::Result;
use crate::node::{Ctx, NodeKind, as_indices};
use crate::nodes::split::Split;
use crate::nodes::table::Labels;
use crate::record::{self, Record, floats, strings};
use crate::vocab::{Aggregate, Metric};

/// What a fit predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every voxel of the ROI, each its own target.
    Voxels,
    /// The mean over the ROI's voxels, per stimulus: one target (the Kay V4
    /// project's "V4 average").
    RoiMean,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Voxels => "voxels",
            Target::RoiMean => "roi_mean",
        }
    }
}

pub fn target(cx: &ParseCx, raw: Option<Spanned<String>>) -> Result<Target> {
    match raw {
        None => Ok(Target::Voxels),
        Some(t) => match t.get_ref().as_str() {
            "voxels" => Ok(Target::Voxels),
            "roi_mean" => Ok(Target::RoiMean),
            other => Err(cx
                .src
                .error(t.span(), format!("unknown target `{other}`"))
                .with_help("target = \"voxels\" (each voxel) or \"roi_mean\" (the ROI's mean response, one target)")),
        },
    }
}

/// Which stimuli a score is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Set {
    /// The fit stimuli themselves (how well the model fits what it saw).
    Train,
    /// The split's held-out stimuli.
    Test,
    /// Stimuli outside every split (vim-1's 120 validation images).
    Validation,
}

impl Set {
    pub const ALL: [Set; 3] = [Set::Train, Set::Test, Set::Validation];
    pub fn name(self) -> &'static str {
        match self {
            Set::Train => "train",
            Set::Test => "test",
            Set::Validation => "validation",
        }
    }
    /// The set's stimuli, in the order the fit predicts them. A split that
    /// draws nothing (vim-1's given one) scores the validation images as
    /// its score stimuli.
    pub fn rows(self, split: &Split) -> &[usize] {
        match self {
            Set::Train => &split.fit,
            Set::Test => &split.score,
            Set::Validation if split.validation.is_empty() => &split.score,
            Set::Validation => &split.validation,
        }
    }
}

/// The sets an analysis scores on one subject: those asked for (default:
/// all three with repeated random splits, else the test set), checked
/// against what the split and the subject have.
pub fn resolve(
    analysis: &str,
    asked: &Option<Vec<Set>>,
    split: &Option<super::SplitSpec>,
    subject: &super::expand::SharedSubject,
) -> Result<Vec<Set>> {
    use crate::error::Error;
    let random = matches!(split, Some(super::SplitSpec::RandomSplits { .. }));
    // vim-1's own test stimuli are its validation images.
    let given_is_validation = subject.format == crate::vim1::FORMAT
        && matches!(split, None | Some(super::SplitSpec::Given));
    let has_validation = match &subject.given {
        Some(crate::nodes::split::SplitMethod::Given { score, .. }) => {
            score.iter().map(|r| r.1).sum::<usize>() > 0
        }
        _ => false,
    };
    let default: Vec<Set> = if random {
        Set::ALL.to_vec()
    } else {
        vec![Set::Test]
    };
    let mut out = Vec::new();
    for &s in asked.as_ref().unwrap_or(&default) {
        let s = match (s, random) {
            (Set::Test, false) if given_is_validation => Set::Validation,
            (Set::Validation, true) if !has_validation => {
                if asked.is_some() {
                    return Err(Error::usage(format!(
                        "analyses.{analysis}: subject `{}` has no stimuli outside the random splits to score as \"validation\"",
                        subject.name
                    )));
                }
                continue;
            }
            (Set::Validation, false) if !given_is_validation => {
                return Err(Error::usage(format!(
                    "analyses.{analysis}: set \"validation\" is the stimuli kept out of random splits; this analysis has one split"
                ))
                .with_help("use split = { method = \"random_splits\", … }, or sets = [\"train\", \"test\"]"));
            }
            (s, _) => s,
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.sort();
    Ok(out)
}

/// `sets = ["train", "test", "validation"]`; None: the default of
/// [`resolve`].
pub fn sets(cx: &ParseCx, raw: Option<Spanned<Vec<String>>>) -> Result<Option<Vec<Set>>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let span = raw.span();
    let mut out = Vec::new();
    for s in raw.into_inner() {
        let Some(set) = Set::ALL.into_iter().find(|x| x.name() == s) else {
            return Err(cx
                .src
                .error(span, format!("unknown set `{s}`"))
                .with_help("sets are \"train\" (the fit stimuli), \"test\" (the split's held-out stimuli) and \"validation\" (stimuli outside every split: vim-1's)"));
        };
        if !out.contains(&set) {
            out.push(set);
        }
    }
    if !out.contains(&Set::Test) && !out.contains(&Set::Validation) {
        return Err(cx
            .src
            .error(span, "sets must include \"test\" or \"validation\": a score on the training stimuli alone says nothing of prediction"));
    }
    out.sort();
    Ok(Some(out))
}

/// The summary's aggregates: the analysis's first, then mean and std (the
/// Kay V4 bars need both), without repeats.
pub fn aggregates(main: Aggregate) -> Vec<Aggregate> {
    let mut a = vec![main];
    for x in [Aggregate::Mean, Aggregate::Std] {
        if !a.contains(&x) {
            a.push(x);
        }
    }
    a
}

pub const VERSION: u32 = 3;

/// `score`: a fit's predictions of each set against the responses, as a
/// record per set (part = the set's name; a lone `test` set is the record
/// "" as every other analysis writes).
#[derive(Debug, Clone, Serialize)]
pub struct ScoreTask {
    /// k in NC = ncsnr²/(ncsnr² + 1/k); None = the subject's repeat count.
    pub nc_repeats: Option<u32>,
    pub metrics: Vec<Metric>,
    pub aggregates: Vec<Aggregate>,
    pub by_hemisphere: bool,
    /// The ROI's name as the record labels it.
    pub roi: String,
    pub target: Target,
    pub sets: Vec<Set>,
    /// Per-target values of the fit (`alpha` from `alpha.npy`), recorded
    /// with the scores and summarised by their median.
    pub extras: Vec<String>,
    /// Sizes for the memory estimate: scored stimuli, voxels.
    #[serde(skip)]
    pub sizes: (u64, u64),
}

impl ScoreTask {
    /// The record name of a set.
    pub fn part(&self, set: Set) -> &'static str {
        if self.sets == [Set::Test] {
            ""
        } else {
            set.name()
        }
    }
}

impl NodeKind for ScoreTask {
    fn kind(&self) -> &'static str {
        "score"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let (ne, v) = self.sizes;
        8 * ne * v * 4
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = ctx.input("subject")?;
        let voxels = crate::nodes::subject::read_voxels(subject)?;
        let idx = as_indices(&ctx.input("roi")?.read_f64("indices.npy")?);
        let split = crate::nodes::split::read(ctx.input("split")?)?;
        let y = subject.read_f64("y.npy")?;
        let fit = ctx.input("fit")?;
        let (_, v_all) = y.rows_cols();
        let v = idx.len();
        let t = match self.target {
            Target::Voxels => v,
            Target::RoiMean => 1,
        };
        // NSD: ncsnr²/(ncsnr² + 1/k); Lab08: as the data gives it.
        let nc: Option<Vec<f64>> = match self.target {
            Target::Voxels => crate::nodes::subject::noise_ceiling(subject, self.nc_repeats)?
                .map(|all| idx.iter().map(|&j| all[j]).collect()),
            Target::RoiMean => None,
        };
        let (hemi, voxel): (Vec<&str>, Vec<i64>) = match self.target {
            Target::Voxels => (
                idx.iter().map(|&j| voxels.hemi[j].as_str()).collect(),
                idx.iter().map(|&j| voxels.index[j] as i64).collect(),
            ),
            // One target: the ROI's mean, voxel -1.
            Target::RoiMean => (vec![record::BOTH], vec![-1]),
        };
        let extras: Vec<(String, Vec<f64>)> = self
            .extras
            .iter()
            .map(|e| Ok((e.clone(), fit.read_f64(&format!("{e}.npy"))?.data)))
            .collect::<Result<_>>()?;
        for &set in &self.sets {
            let rows = set.rows(&split);
            let n = rows.len();
            let pred = fit.read_f64(&format!("pred.{}.npy", set.name()))?;
            if pred.shape != [n, t] {
                return Err(ctx.fail(format!(
                    "{} predictions are {:?} but the set is {n} images × {t} targets",
                    set.name(),
                    pred.shape
                )));
            }
            let truth = truth(&y.data, v_all, rows, &idx, self.target);
            let scores =
                record::score_voxels(&self.metrics, &pred.data, &truth, n, t, nc.as_deref());
            let mut values: Vec<(&str, &[f64])> =
                scores.iter().map(|(m, v)| (m.name(), &v[..])).collect();
            if let Some(nc) = &nc {
                values.push(("noise_ceiling", nc));
            }
            let mut rec = Record::default();
            rec.add_voxels(&self.roi, &hemi, &voxel, &values);
            let hemis = match self.target {
                Target::Voxels => voxels.hemis(),
                Target::RoiMean => vec![],
            };
            for &a in &self.aggregates {
                rec.summarize(&self.roi, &hemis, &hemi, &values, a, self.by_hemisphere);
            }
            for (name, vals) in &extras {
                let x = [(name.as_str(), &vals[..])];
                rec.add_voxels(&self.roi, &hemi, &voxel, &x);
                rec.summarize(&self.roi, &[], &hemi, &x, Aggregate::Median, false);
            }
            rec.write_part(ctx, self.part(set))?;
            if self.target == Target::RoiMean {
                // Measured and predicted per stimulus, for scatter plots.
                let pairs: Vec<f64> = truth
                    .iter()
                    .zip(&pred.data)
                    .flat_map(|(a, p)| [*a, *p])
                    .collect();
                ctx.out
                    .write_npy(&format!("points.{}.npy", set.name()), &[n, 2], &pairs)?;
            }
        }
        Ok(())
    }

    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let e = entry()?;
        let mut out = Vec::new();
        for &set in &self.sets {
            let name = match self.part(set) {
                "" => "empty_rois.json".to_string(),
                p => format!("{p}.empty_rois.json"),
            };
            let empty: Vec<String> = e.read_json(&name)?;
            if !empty.is_empty() {
                out.push(format!("no voxel in {}: scored NaN", empty.join(", ")));
                break;
            }
        }
        Ok(out)
    }
}

/// The measured responses of `rows`: the ROI's voxels, or their mean.
pub fn truth(y: &[f64], v_all: usize, rows: &[usize], idx: &[usize], target: Target) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * idx.len());
    for &i in rows {
        let row = &y[i * v_all..(i + 1) * v_all];
        match target {
            Target::Voxels => out.extend(idx.iter().map(|&j| row[j])),
            Target::RoiMean => {
                out.push(idx.iter().map(|&j| row[j]).sum::<f64>() / idx.len() as f64)
            }
        }
    }
    out
}

/// The fit targets of `rows` (row-major rows × targets).
pub fn targets(y: &[f64], v_all: usize, rows: &[usize], idx: &[usize], target: Target) -> Vec<f64> {
    truth(y, v_all, rows, idx, target)
}

/// `split_stats`: repeated splits summarised: for every summary row of the
/// splits' records (ROI, hemisphere, metric, aggregate), its mean and its
/// standard deviation (ddof 0, the project's `np.std`) over splits; and per
/// voxel the same over its per-split values. Parts `mean.<set>`, `std.<set>`.
#[derive(Debug, Clone, Serialize)]
pub struct SplitStatsTask {
    pub sets: Vec<Set>,
    pub n_splits: usize,
    /// The record names of the score nodes' sets.
    pub parts: Vec<String>,
}

pub const STATS: [Aggregate; 2] = [Aggregate::Mean, Aggregate::Std];

impl NodeKind for SplitStatsTask {
    fn kind(&self) -> &'static str {
        "split_stats"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        64 << 20
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        for (set, part) in self.sets.iter().zip(&self.parts) {
            let mut summaries = Vec::new();
            let mut voxels = Vec::new();
            for k in 0..self.n_splits {
                let (s, v) = record::read_part(ctx.input(&format!("score:{k}"))?, part)?;
                summaries.push(s);
                voxels.push(v);
            }
            for stat in STATS {
                let (summary, vox) = combine(&summaries, &voxels, stat)?;
                let name = format!("{}.{}", stat.name(), set.name());
                write(ctx, &name, summary, vox)?;
            }
        }
        Ok(())
    }
}

type Rows = BTreeMap<Vec<String>, (Vec<f64>, u32)>;

/// Groups rows of several tables by their text columns, collecting `value`.
fn group(tables: &[DataFrame], keys: &[&str]) -> Result<(Vec<Vec<String>>, Rows)> {
    let mut order = Vec::new();
    let mut rows: Rows = BTreeMap::new();
    for df in tables {
        let cols: Vec<Vec<String>> = keys.iter().map(|k| strings(df, k)).collect::<Result<_>>()?;
        let value = floats(df, "value")?;
        let n_vox = if df.column("n_voxels").is_ok() {
            floats(df, "n_voxels")?
        } else {
            vec![0.0; df.height()]
        };
        let voxel = if df.column("voxel").is_ok() {
            floats(df, "voxel")?
        } else {
            vec![0.0; df.height()]
        };
        for i in 0..df.height() {
            let mut key: Vec<String> = cols.iter().map(|c| c[i].clone()).collect();
            if df.column("voxel").is_ok() {
                key.push((voxel[i] as i64).to_string());
            }
            let e = rows.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                (Vec::new(), n_vox[i] as u32)
            });
            e.0.push(value[i]);
        }
    }
    Ok((order, rows))
}

fn combine(
    summaries: &[DataFrame],
    voxels: &[DataFrame],
    stat: Aggregate,
) -> Result<(DataFrame, DataFrame)> {
    let err = |e: PolarsError| crate::error::Error::usage(e.to_string());
    let keys = ["roi", "hemisphere", "metric", "aggregate"];
    let (order, rows) = group(summaries, &keys)?;
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    let (mut value, mut n_voxels) = (Vec::new(), Vec::new());
    for key in &order {
        let (vals, n) = &rows[key];
        for (c, k) in cols.iter_mut().zip(key) {
            c.push(k.clone());
        }
        value.push(stat.of(vals));
        n_voxels.push(*n);
    }
    let mut columns: Vec<Column> = keys
        .iter()
        .zip(cols)
        .map(|(k, c)| Column::new((*k).into(), c))
        .collect();
    columns.push(Column::new("value".into(), value));
    columns.push(Column::new("n_voxels".into(), n_voxels));
    let summary = DataFrame::new_infer_height(columns).map_err(err)?;

    let vkeys = ["roi", "hemisphere", "metric"];
    let (order, rows) = group(voxels, &vkeys)?;
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); vkeys.len()];
    let (mut voxel, mut value) = (Vec::new(), Vec::new());
    for key in &order {
        for (c, k) in cols.iter_mut().zip(key) {
            c.push(k.clone());
        }
        voxel.push(key[3].parse::<i64>().unwrap_or(-1));
        value.push(stat.of(&rows[key].0));
    }
    let mut vcols: Vec<Column> = Vec::new();
    let mut cols = cols.into_iter();
    vcols.push(Column::new("roi".into(), cols.next().unwrap()));
    vcols.push(Column::new("hemisphere".into(), cols.next().unwrap()));
    vcols.push(Column::new("voxel".into(), voxel));
    vcols.push(Column::new("metric".into(), cols.next().unwrap()));
    vcols.push(Column::new("value".into(), value));
    let vox = DataFrame::new_infer_height(vcols).map_err(err)?;
    Ok((summary, vox))
}

fn write(ctx: &Ctx, part: &str, mut summary: DataFrame, mut voxels: DataFrame) -> Result<()> {
    record::write_parquet(ctx, &format!("{part}.summary.parquet"), &mut summary)?;
    record::write_parquet(ctx, &format!("{part}.voxels.parquet"), &mut voxels)?;
    ctx.out
        .write_json(&format!("{part}.empty_rois.json"), &Vec::<String>::new())
}

/// The labels of one record of a handle's analysis.
pub fn labels(cx: &Expand, h: &Handle, part: &str, split: &str, set: Set) -> Labels {
    Labels {
        analysis: cx.name.to_string(),
        subject: h.subject.clone(),
        source: h.source.clone(),
        layer: h.layer.clone(),
        layer_index: h.layer_index,
        part: part.to_string(),
        split: split.to_string(),
        set: set.name().to_string(),
    }
}

/// Registers the records of one ROI's fits over `n_splits` splits: each
/// split's score node's sets (labelled by split when there are several)
/// and, with several, a split_stats node's mean and std.
pub fn register(
    cx: &mut Expand,
    h: &Handle,
    roi: &str,
    scores: &[(petgraph::graph::NodeIndex, ScoreTask)],
) {
    let n = scores.len();
    let sets = scores[0].1.sets.clone();
    for (k, (node, task)) in scores.iter().enumerate() {
        let split = if n > 1 { k.to_string() } else { String::new() };
        for &set in &sets {
            let l = labels(cx, h, task.part(set), &split, set);
            cx.score_as_roi(*node, l, roi);
        }
    }
    if n > 1 {
        let parts: Vec<String> = sets
            .iter()
            .map(|&s| scores[0].1.part(s).to_string())
            .collect();
        let upstream = scores
            .iter()
            .enumerate()
            .map(|(k, (ix, _))| (format!("score:{k}"), *ix))
            .collect();
        let stats = cx.g.add(
            format!("split_stats/{}/{}/{roi}", cx.name, h.id()),
            SplitStatsTask {
                sets: sets.clone(),
                n_splits: n,
                parts,
            },
            upstream,
            BTreeMap::new(),
        );
        for stat in STATS {
            for &set in &sets {
                let part = format!("{}.{}", stat.name(), set.name());
                let l = labels(cx, h, &part, stat.name(), set);
                cx.score_as_roi(stats, l, roi);
            }
        }
    }
}
