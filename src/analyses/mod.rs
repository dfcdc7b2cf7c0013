//! Analyses: what an experiment does with its features and brain data. Each
//! is one file holding its `[analyses.NAME]` table, how it expands into nodes
//! on top of the shared ones (subjects, ROIs, extractions, splits), and the
//! node kinds only it uses. Every scoring node writes a [`crate::record`], so
//! the table and the plots never learn what an analysis is.
//!
//! Adding one: write `analyses/NAME.rs` with a `parse` and an [`Analysis`]
//! impl, and add it to [`KINDS`].

pub mod decompose;
pub mod expand;
pub mod linear;
pub mod pls;
pub mod ridge_cv;
pub mod ridge_holdout;
pub mod rsa;
pub mod sets;
pub mod tuning;

use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use crate::error::Result;
use crate::nodes::split::SplitMethod;
use crate::source::Source;
use crate::vocab::{Aggregate, Metric};
use expand::Expand;

pub trait Analysis: std::fmt::Debug + Send + Sync {
    /// Metric names its records carry (plots may only ask for these).
    fn metrics(&self) -> Vec<String>;
    /// How its records aggregate voxels into an ROI value.
    fn aggregate(&self) -> Aggregate;
    /// Adds the analysis's nodes and registers its scoring nodes and results.
    fn expand(&self, cx: &mut Expand) -> Result<()>;
    /// Whether its fits predict an ROI's mean response (scatter plots).
    fn predicts_roi_mean(&self) -> bool {
        false
    }
    /// What plots can draw it: "fit" (scores per voxel), "rsa" (RDMs and
    /// their comparisons) or "tuning" (tuning curves).
    fn family(&self) -> &'static str {
        "fit"
    }
}

/// What an analysis's parser may look at: the file (for errors) and the names
/// the experiment declares.
pub struct ParseCx<'a> {
    pub src: &'a Source,
    pub features: Vec<String>,
    pub rois: Vec<String>,
    pub subjects: Vec<String>,
}

type ParseFn = fn(&str, Spanned<DeValue<'_>>, &ParseCx) -> Result<Arc<dyn Analysis>>;

/// The registry: `kind = "..."` → parser.
pub const KINDS: &[(&str, ParseFn)] = &[
    ("ridge_cv", ridge_cv::parse),
    ("linear", linear::parse),
    ("ridge_holdout", ridge_holdout::parse),
    ("pls", pls::parse),
    ("rsa", rsa::parse),
    ("tuning_curves", tuning::parse),
];

/// Parses one `[analyses.NAME]` table by its `kind`.
pub fn parse(name: &str, value: Spanned<DeValue<'_>>, cx: &ParseCx) -> Result<Arc<dyn Analysis>> {
    let span = value.span();
    let Some(table) = value.get_ref().as_table() else {
        return Err(cx
            .src
            .error(span, format!("analyses.{name} must be a table")));
    };
    let Some(kind) = table.get("kind") else {
        return Err(cx
            .src
            .error(span, format!("analyses.{name} has no `kind`"))
            .with_help(kinds_help()));
    };
    let kind_span = kind.span();
    let kind_name = kind.get_ref().as_str().unwrap_or("");
    match KINDS.iter().find(|(k, _)| *k == kind_name) {
        Some((_, parse)) => parse(name, value, cx),
        None => Err(cx
            .src
            .error(kind_span, format!("unknown analysis kind `{kind_name}`"))
            .with_help(kinds_help())),
    }
}

fn kinds_help() -> String {
    format!(
        "kind is one of: {}",
        KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
    )
}

/// Deserializes an analysis's table into its raw struct, keeping spans (so
/// errors say file:line:col) and refusing unknown keys (`deny_unknown_fields`).
pub fn deserialize<T: for<'de> Deserialize<'de>>(
    value: Spanned<DeValue<'_>>,
    src: &Source,
) -> Result<T> {
    let owned = {
        let mut v = value;
        v.get_mut().make_owned();
        v
    };
    T::deserialize(ValueDeserializer::from(owned)).map_err(|e| src.from_toml(e))
}

/// The feature sources / ROIs an analysis uses: all by default, or a checked list.
pub fn pick(
    cx: &ParseCx,
    list: Option<Spanned<Vec<String>>>,
    all: &[String],
    what: &str,
) -> Result<Vec<String>> {
    let Some(list) = list else {
        return Ok(all.to_vec());
    };
    let span = list.span();
    let list = list.into_inner();
    if list.is_empty() {
        return Err(cx.src.error(span, format!("{what} must not be empty")));
    }
    for (i, x) in list.iter().enumerate() {
        if !all.contains(x) {
            return Err(cx
                .src
                .error(span.clone(), format!("unknown {what} `{x}`"))
                .with_help(format!("declared: {}", all.join(", "))));
        }
        if list[..i].contains(x) {
            return Err(cx.src.error(span, format!("{what} names `{x}` twice")));
        }
    }
    Ok(list)
}

pub fn metrics(
    cx: &ParseCx,
    list: Option<Spanned<Vec<String>>>,
    default: &[Metric],
) -> Result<Vec<Metric>> {
    let Some(list) = list else {
        return Ok(default.to_vec());
    };
    let span = list.span();
    let mut out = Vec::new();
    for m in list.into_inner() {
        let Some(metric) = Metric::parse(&m) else {
            return Err(cx
                .src
                .error(span, format!("unknown metric `{m}`"))
                .with_help(
                    "metrics are r2, r2_over_nc, pearson_r and pearson_r2 (the squared Pearson r)",
                ));
        };
        if !out.contains(&metric) {
            out.push(metric);
        }
    }
    if out.is_empty() {
        return Err(cx.src.error(span, "metrics must not be empty"));
    }
    Ok(out)
}

pub fn aggregate(
    cx: &ParseCx,
    raw: Option<Spanned<String>>,
    default: Aggregate,
) -> Result<Aggregate> {
    match raw {
        None => Ok(default),
        Some(a) => Aggregate::parse(a.get_ref()).ok_or_else(|| {
            cx.src
                .error(a.span(), format!("unknown aggregate `{}`", a.get_ref()))
                .with_help("use \"mean\" (HW2), \"median\" (Algonauts), \"min\" or \"max\"")
        }),
    }
}

/// `split = { method = "given" | "holdout" | "kfold", ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    pub method: Spanned<String>,
    /// holdout: percent of the stimuli with responses that fit (devkit: 90).
    pub train_percent: Option<Spanned<f64>>,
    /// holdout, kfold: numpy legacy seed of the shuffle (devkit: 4).
    pub seed: Option<Spanned<u32>>,
    /// kfold: number of folds.
    pub k: Option<Spanned<usize>>,
    /// val_holdout: the image table's boolean column of validation images.
    pub column: Option<Spanned<String>>,
    /// val_holdout: the fraction of the other images held out to choose λ.
    pub holdout_fraction: Option<Spanned<f64>>,
    /// random_splits: how many splits one RandomState(seed) draws (Kay: 5).
    pub n_splits: Option<Spanned<usize>>,
    /// random_splits: stimuli scored per split (Kay: 250 of 1750).
    pub n_test: Option<Spanned<usize>>,
}

/// A split as an analysis asks for it; `None` = each subject's own default
/// (NSD: its train/test splits; Algonauts: the devkit's 90 % holdout, seed 4).
#[derive(Debug, Clone, PartialEq)]
pub enum SplitSpec {
    Given,
    Holdout {
        train_percent: f64,
        seed: u32,
    },
    KFold {
        k: usize,
        seed: u32,
    },
    /// Lab08's; `seed` None = the subject's own (the lab's seed list).
    ValHoldout {
        column: String,
        holdout_fraction: f64,
        seed: Option<u32>,
    },
    /// The Kay V4 project's: `n_splits` permutations of the subject's
    /// training stimuli from one RandomState(seed), `n_test` scored each;
    /// the subject's own test stimuli (vim-1's validation set) are scored
    /// by every split's model as a separate set.
    RandomSplits {
        n_splits: usize,
        n_test: usize,
        seed: u32,
    },
}

pub fn split(
    cx: &ParseCx,
    raw: Option<Spanned<RawSplit>>,
    kfold_ok: bool,
    random_ok: bool,
) -> Result<Option<SplitSpec>> {
    let Some(raw) = raw else { return Ok(None) };
    let span = raw.span();
    let raw = raw.into_inner();
    let default_seed = if raw.method.get_ref() == "random_splits" {
        0
    } else {
        4
    };
    let seed = raw.seed.as_ref().map_or(default_seed, |s| *s.get_ref());
    if raw.method.get_ref() != "random_splits" {
        for (key, sp) in [
            ("n_splits", raw.n_splits.as_ref().map(|s| s.span())),
            ("n_test", raw.n_test.as_ref().map(|s| s.span())),
        ] {
            if let Some(sp) = sp {
                return Err(cx.src.error(
                    sp,
                    format!("`{key}` applies to method \"random_splits\" only"),
                ));
            }
        }
    }
    if raw.method.get_ref() != "val_holdout" {
        for (key, sp) in [
            ("column", raw.column.as_ref().map(|s| s.span())),
            (
                "holdout_fraction",
                raw.holdout_fraction.as_ref().map(|s| s.span()),
            ),
        ] {
            if let Some(sp) = sp {
                return Err(cx.src.error(
                    sp,
                    format!("`{key}` applies to method \"val_holdout\" only"),
                ));
            }
        }
    }
    let forbid = |x: Option<Range<usize>>, key: &str, m: &str| -> Result<()> {
        match x {
            Some(sp) => Err(cx
                .src
                .error(sp, format!("`{key}` does not apply to method \"{m}\""))),
            None => Ok(()),
        }
    };
    let spec = match raw.method.get_ref().as_str() {
        "given" => {
            forbid(
                raw.train_percent.as_ref().map(|s| s.span()),
                "train_percent",
                "given",
            )?;
            forbid(raw.seed.as_ref().map(|s| s.span()), "seed", "given")?;
            forbid(raw.k.as_ref().map(|s| s.span()), "k", "given")?;
            SplitSpec::Given
        }
        "holdout" => {
            forbid(raw.k.as_ref().map(|s| s.span()), "k", "holdout")?;
            let p = raw.train_percent.as_ref().map_or(90.0, |p| *p.get_ref());
            if !(p > 0.0 && p < 100.0) {
                let sp = raw.train_percent.as_ref().map_or(span, |s| s.span());
                return Err(cx.src.error(sp, "train_percent must be between 0 and 100"));
            }
            SplitSpec::Holdout {
                train_percent: p,
                seed,
            }
        }
        "kfold" => {
            forbid(
                raw.train_percent.as_ref().map(|s| s.span()),
                "train_percent",
                "kfold",
            )?;
            if !kfold_ok {
                return Err(cx
                    .src
                    .error(raw.method.span(), "this analysis has no k-fold mode")
                    .with_help("use method = \"holdout\" or \"given\"; kind = \"linear\" scores k-fold out-of-fold predictions"));
            }
            let k = raw.k.as_ref().map_or(5, |k| *k.get_ref());
            if k < 2 {
                let sp = raw.k.as_ref().map_or(span, |s| s.span());
                return Err(cx.src.error(sp, "k must be ≥ 2"));
            }
            SplitSpec::KFold { k, seed }
        }
        "val_holdout" => {
            forbid(raw.k.as_ref().map(|s| s.span()), "k", "val_holdout")?;
            forbid(
                raw.train_percent.as_ref().map(|s| s.span()),
                "train_percent",
                "val_holdout",
            )?;
            let f = raw.holdout_fraction.as_ref().map_or(0.1, |p| *p.get_ref());
            if !(f > 0.0 && f < 1.0) {
                let sp = raw.holdout_fraction.as_ref().map_or(span, |s| s.span());
                return Err(cx.src.error(sp, "holdout_fraction must be between 0 and 1"));
            }
            SplitSpec::ValHoldout {
                column: raw
                    .column
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| "shared1000".into()),
                holdout_fraction: f,
                seed: raw.seed.map(Spanned::into_inner),
            }
        }
        "random_splits" => {
            forbid(raw.k.as_ref().map(|s| s.span()), "k", "random_splits")?;
            forbid(
                raw.train_percent.as_ref().map(|s| s.span()),
                "train_percent",
                "random_splits",
            )?;
            if !random_ok {
                return Err(cx
                    .src
                    .error(raw.method.span(), "this analysis has no random-splits mode")
                    .with_help(
                        "kind = \"ridge_cv\" and kind = \"pls\" fit every split of random_splits",
                    ));
            }
            let n_splits = raw.n_splits.as_ref().map_or(5, |k| *k.get_ref());
            if n_splits == 0 {
                let sp = raw.n_splits.as_ref().map_or(span, |s| s.span());
                return Err(cx.src.error(sp, "n_splits must be ≥ 1"));
            }
            let Some(n_test) = raw.n_test.as_ref() else {
                return Err(cx
                    .src
                    .error(span, "random_splits needs `n_test`, the stimuli scored per split")
                    .with_help("the Kay V4 project: split = { method = \"random_splits\", n_splits = 5, n_test = 250, seed = 0 }"));
            };
            if *n_test.get_ref() == 0 {
                return Err(cx.src.error(n_test.span(), "n_test must be ≥ 1"));
            }
            SplitSpec::RandomSplits {
                n_splits,
                n_test: *n_test.get_ref(),
                seed,
            }
        }
        other => {
            return Err(cx
                .src
                .error(raw.method.span(), format!("unknown split method `{other}`"))
                .with_help("method = \"given\" (the subject's splits), \"holdout\" (train_percent, seed), \"kfold\" (k, seed), \"val_holdout\" (column, holdout_fraction, seed: Lab08's) or \"random_splits\" (n_splits, n_test, seed: Kay V4's)"));
        }
    };
    Ok(Some(spec))
}

impl SplitSpec {
    /// The split node's method for one fold (holdout and given have one).
    pub fn method(&self, given: &SplitMethod, fold: usize) -> SplitMethod {
        match self {
            SplitSpec::Given => given.clone(),
            SplitSpec::Holdout {
                train_percent,
                seed,
            } => SplitMethod::Holdout {
                train_percent: *train_percent,
                seed: *seed,
            },
            SplitSpec::KFold { k, seed } => SplitMethod::KFold {
                k: *k,
                fold,
                seed: *seed,
            },
            SplitSpec::ValHoldout {
                column,
                holdout_fraction,
                seed,
            } => {
                // The subject's own seed and counts, when it has them.
                let (own_seed, sizes) = match given {
                    SplitMethod::ValHoldout { seed, sizes, .. } => (*seed, *sizes),
                    _ => (0, (0, 0)),
                };
                SplitMethod::ValHoldout {
                    column: column.clone(),
                    holdout_fraction: *holdout_fraction,
                    seed: seed.unwrap_or(own_seed),
                    sizes,
                }
            }
            SplitSpec::RandomSplits {
                n_splits,
                n_test,
                seed,
            } => {
                // The subject's fit stimuli are drawn from; its scored ones
                // stay out of every split, as vim-1's validation images.
                let (pool, validation) = match given {
                    SplitMethod::Given { fit, score } => (fit.clone(), score.clone()),
                    _ => (vec![], vec![]),
                };
                SplitMethod::RandomSplits {
                    n_splits: *n_splits,
                    n_test: *n_test,
                    seed: *seed,
                    split: fold,
                    pool,
                    validation,
                }
            }
        }
    }
    pub fn folds(&self) -> usize {
        match self {
            SplitSpec::KFold { k, .. } => *k,
            SplitSpec::RandomSplits { n_splits, .. } => *n_splits,
            _ => 1,
        }
    }
}

/// `reduce = { method = "incremental_pca" | "pca", n_components, batch_size }`
/// or `{ method = "subsample", n_columns, seed, after_splits }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReduce {
    pub method: Spanned<String>,
    pub n_components: Option<Spanned<usize>>,
    /// incremental_pca: stimuli per `partial_fit` (devkit: 100).
    pub batch_size: Option<Spanned<usize>>,
    /// subsample: feature columns kept (Kay V4: 5000 of 75,264).
    pub n_columns: Option<Spanned<usize>>,
    /// subsample: numpy RandomState seed (Kay V4: 0, the splits' state).
    pub seed: Option<Spanned<u32>>,
    /// subsample: permutations of the training stimuli drawn from the same
    /// state before the columns (Kay V4: its 5 splits).
    pub after_splits: Option<Spanned<usize>>,
}

pub fn reduce(
    cx: &ParseCx,
    raw: Option<Spanned<RawReduce>>,
) -> Result<Option<crate::nodes::reduce::Reduce>> {
    use crate::nodes::reduce::Reduce;
    let Some(raw) = raw else { return Ok(None) };
    let span = raw.span();
    let raw = raw.into_inner();
    let method = raw.method.get_ref().as_str();
    let only = |key: &str, sp: Option<Range<usize>>, m: &str| -> Result<()> {
        match sp {
            Some(sp) => Err(cx
                .src
                .error(sp, format!("`{key}` does not apply to method \"{m}\""))),
            None => Ok(()),
        }
    };
    if method == "subsample" {
        only(
            "n_components",
            raw.n_components.as_ref().map(|s| s.span()),
            method,
        )?;
        only(
            "batch_size",
            raw.batch_size.as_ref().map(|s| s.span()),
            method,
        )?;
        let Some(n) = raw.n_columns else {
            return Err(cx
                .src
                .error(span, "subsample needs `n_columns`")
                .with_help("the Kay V4 project: reduce = { method = \"subsample\", n_columns = 5000, seed = 0, after_splits = 5 }"));
        };
        if *n.get_ref() == 0 {
            return Err(cx.src.error(n.span(), "n_columns must be ≥ 1"));
        }
        return Ok(Some(Reduce::Subsample {
            n_columns: n.into_inner(),
            seed: raw.seed.map_or(0, Spanned::into_inner),
            after_splits: raw.after_splits.map_or(0, Spanned::into_inner),
            pool: 0,
        }));
    }
    for (key, sp) in [
        ("n_columns", raw.n_columns.as_ref().map(|s| s.span())),
        ("seed", raw.seed.as_ref().map(|s| s.span())),
        ("after_splits", raw.after_splits.as_ref().map(|s| s.span())),
    ] {
        only(key, sp, method)?;
    }
    let Some(n_components) = raw.n_components else {
        return Err(cx.src.error(span, format!("{method} needs `n_components`")));
    };
    let k = *n_components.get_ref();
    if k == 0 {
        return Err(cx
            .src
            .error(n_components.span(), "n_components must be ≥ 1"));
    }
    match method {
        "incremental_pca" => {
            let b = raw.batch_size.as_ref().map_or(100, |b| *b.get_ref());
            if b == 0 {
                return Err(cx
                    .src
                    .error(raw.batch_size.unwrap().span(), "batch_size must be ≥ 1"));
            }
            Ok(Some(Reduce::IncrementalPca {
                n_components: k,
                batch_size: b,
            }))
        }
        "pca" => {
            if let Some(b) = raw.batch_size {
                return Err(cx.src.error(
                    b.span(),
                    "batch_size is incremental_pca's; pca fits all training rows at once",
                ));
            }
            Ok(Some(Reduce::Pca { n_components: k }))
        }
        other => Err(cx
            .src
            .error(raw.method.span(), format!("unknown reduction `{other}`"))
            .with_help("method = \"incremental_pca\" (the Algonauts devkit), \"pca\" or \"subsample\" (n_columns, seed, after_splits: Kay V4's)")),
    }
}
