//! `kind = "rsa"`: representational similarity analysis (seed 004). Every
//! feature layer's representational dissimilarity matrix (RDM) over the
//! stimuli is compared with the neural RDM of each ROI, with a bootstrap
//! over stimuli for an interval on each comparison.
//!
//! - RDM: `correlation` (the seed's: 1 − Pearson r between stimulus
//!   patterns, each pattern z-scored across units with ddof 0) or
//!   `euclidean` (scipy's `pdist`, not squared).
//! - Comparison on the off-diagonal upper triangle: `pearson` (the
//!   neuromatch tutorial the seed links), `spearman`, `kendall_tau_a`
//!   (rsatoolbox's rank measures). See `numerics::rsa`.
//!
//! Nodes: an `rdm` per subject × ROI (neurons) and per subject × source ×
//! layer (units), then an `rsa` per layer × ROI writing a record: metric
//! `rdm_<comparison>`, aggregates `value`, `ci_low`, `ci_high`. The RDM
//! nodes do not depend on the comparison, so changing it re-runs only the
//! `rsa` nodes. A stimulus whose pattern is constant (its correlation
//! distance is undefined) is left out of that comparison and said.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;
use toml::de::DeValue;

use super::expand::{Artifact, Expand, SharedSubject};
use super::{Analysis, ParseCx};
use crate::error::{Error, Result};
use crate::node::{Ctx, FeatureRef, NodeKind, as_indices};
use crate::nodes::split::SplitMethod;
use crate::nodes::table::Labels;
use crate::numerics::rsa::{self, Compare, RdmMethod};
use crate::record::Record;
use crate::vocab::Aggregate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    /// "correlation" (default) or "euclidean".
    rdm: Option<Spanned<String>>,
    /// One comparison or several: "pearson" (default), "spearman", "kendall_tau_a".
    compare: Option<Spanned<OneOrMany>>,
    features: Option<Spanned<Vec<String>>>,
    rois: Option<Spanned<Vec<String>>>,
    /// "all" (default: every stimulus with a response), "train" or "test"
    /// (the subject's own split, NSD).
    stimuli: Option<Spanned<String>>,
    /// Bootstrap samples over stimuli (0: no interval); default 1000.
    bootstrap: Option<Spanned<usize>>,
    /// The bootstrap's seed.
    seed: Option<u64>,
    /// Coverage of the percentile interval (default 0.95).
    ci: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Which stimuli the RDMs span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stimuli {
    All,
    Train,
    Test,
}

impl Stimuli {
    pub fn name(self) -> &'static str {
        match self {
            Stimuli::All => "all",
            Stimuli::Train => "train",
            Stimuli::Test => "test",
        }
    }
}

#[derive(Debug)]
pub struct Rsa {
    pub rdm: RdmMethod,
    pub compare: Vec<Compare>,
    pub features: Vec<String>,
    pub rois: Vec<String>,
    pub stimuli: Stimuli,
    pub bootstrap: usize,
    pub seed: u64,
    pub ci: f64,
}

const COMPARE_HELP: &str = "compare = \"pearson\" (the seed's tutorial: Pearson r of the upper triangles), \"spearman\" or \"kendall_tau_a\" (rsatoolbox's rank correlations), or a list of them";

pub fn parse(_name: &str, value: Spanned<DeValue<'_>>, cx: &ParseCx) -> Result<Arc<dyn Analysis>> {
    let raw: Raw = super::deserialize(value, cx.src)?;
    let rdm = match &raw.rdm {
        None => RdmMethod::Correlation,
        Some(r) => RdmMethod::parse(r.get_ref()).ok_or_else(|| {
            cx.src
                .error(r.span(), format!("unknown rdm `{}`", r.get_ref()))
                .with_help("rdm = \"correlation\" (1 − Pearson r between stimulus patterns, the seed's) or \"euclidean\"")
        })?,
    };
    let compare = match raw.compare {
        None => vec![Compare::Pearson],
        Some(c) => {
            let span = c.span();
            let names = match c.into_inner() {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            };
            if names.is_empty() {
                return Err(cx.src.error(span, "compare must not be empty"));
            }
            let mut out = Vec::new();
            for n in names {
                let Some(m) = Compare::parse(&n) else {
                    return Err(cx
                        .src
                        .error(span, format!("unknown comparison `{n}`"))
                        .with_help(COMPARE_HELP));
                };
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            out
        }
    };
    let stimuli = match raw.stimuli.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("all") => Stimuli::All,
        Some("train") => Stimuli::Train,
        Some("test") => Stimuli::Test,
        Some(other) => {
            return Err(cx
                .src
                .error(raw.stimuli.as_ref().unwrap().span(), format!("unknown stimuli `{other}`"))
                .with_help("stimuli = \"all\" (every stimulus with a response), \"train\" or \"test\" (the subject's own split)"));
        }
    };
    let ci = raw.ci.as_ref().map_or(0.95, |c| *c.get_ref());
    if !(ci > 0.0 && ci < 1.0) {
        return Err(cx.src.error(
            raw.ci.unwrap().span(),
            "ci is the interval's coverage, between 0 and 1 (0.95)",
        ));
    }
    Ok(Arc::new(Rsa {
        rdm,
        compare,
        features: super::pick(cx, raw.features, &cx.features, "feature source")?,
        rois: super::pick(cx, raw.rois, &cx.rois, "ROI")?,
        stimuli,
        bootstrap: raw.bootstrap.map_or(1000, Spanned::into_inner),
        seed: raw.seed.unwrap_or(0),
        ci,
    }))
}

/// The metric name of a comparison in records and tables.
pub fn metric_name(c: Compare) -> String {
    format!("rdm_{}", c.name())
}

impl Rsa {
    /// The stimulus rows the RDMs span, as (start, len) ranges.
    fn rows(&self, name: &str, s: &SharedSubject) -> Result<Vec<(usize, usize)>> {
        let all = vec![(0, s.n_responses)];
        let (fit, score) = match &s.given {
            Some(SplitMethod::Given { fit, score }) => (fit.clone(), score.clone()),
            _ if self.stimuli == Stimuli::All => return Ok(all),
            _ => {
                return Err(Error::usage(format!(
                    "analyses.{name}: stimuli = \"{}\" needs the subject's own split, and subject `{}` ({}) has none",
                    self.stimuli.name(),
                    s.name,
                    s.format
                ))
                .with_help("use stimuli = \"all\""));
            }
        };
        let rows = match self.stimuli {
            Stimuli::All => all,
            Stimuli::Train => fit,
            Stimuli::Test => score,
        };
        if rows.iter().map(|r| r.1).sum::<usize>() < 3 {
            return Err(Error::usage(format!(
                "analyses.{name}: subject `{}` has fewer than 3 {} stimuli; an RDM comparison needs at least 3",
                s.name,
                self.stimuli.name()
            )));
        }
        Ok(rows)
    }
}

impl Analysis for Rsa {
    fn metrics(&self) -> Vec<String> {
        self.compare.iter().map(|&c| metric_name(c)).collect()
    }

    fn aggregate(&self) -> Aggregate {
        Aggregate::Mean
    }

    fn family(&self) -> &'static str {
        "rsa"
    }

    fn expand(&self, cx: &mut Expand) -> Result<()> {
        let handles: Vec<_> = cx.shared.handles_of(&self.features).cloned().collect();
        // Neural RDMs, one per subject × ROI.
        let mut neural: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        let mut neural_nodes = BTreeMap::new();
        for subject in &cx.shared.subjects {
            if !handles.iter().any(|h| h.subject == subject.name) {
                continue;
            }
            let rows = self.rows(cx.name, subject)?;
            for roi_name in &self.rois {
                let roi = subject.roi(roi_name);
                if let Some((why, help)) = &roi.empty {
                    return Err(Error::usage(format!(
                        "analyses.{}: ROI `{roi_name}` of subject `{}` {why}",
                        cx.name, subject.name
                    ))
                    .with_help(help.clone()));
                }
                let n: usize = rows.iter().map(|r| r.1).sum();
                let ix = cx.g.add(
                    format!("rdm/{}/{}/{roi_name}", cx.name, subject.name),
                    RdmTask {
                        method: self.rdm,
                        rows: rows.clone(),
                        of: RdmOf::Neurons,
                        sizes: (n, roi.n_voxels),
                    },
                    vec![
                        ("subject".to_string(), subject.node),
                        ("roi".to_string(), roi.node),
                    ],
                    BTreeMap::new(),
                );
                neural.insert((subject.name.clone(), roi_name.clone()), (n, roi.n_voxels));
                neural_nodes.insert((subject.name.clone(), roi_name.clone()), ix);
                cx.artifacts.push(Artifact {
                    kind: "rdm",
                    subject: subject.name.clone(),
                    source: String::new(),
                    layer: String::new(),
                    layer_index: 0,
                    roi: roi_name.clone(),
                    node: ix,
                    stimulus_node: Some(subject.node),
                });
            }
        }
        for h in handles {
            let subject = cx.shared.subject(&h.subject);
            let rows = self.rows(cx.name, subject)?;
            let n: usize = rows.iter().map(|r| r.1).sum();
            let mut upstream = vec![];
            let mut inputs = BTreeMap::new();
            h.attach(&mut upstream, &mut inputs);
            let model_rdm = cx.g.add(
                format!("rdm/{}/{}", cx.name, h.id()),
                RdmTask {
                    method: self.rdm,
                    rows: rows.clone(),
                    of: RdmOf::Features(h.features.clone()),
                    sizes: (n, h.width as usize),
                },
                upstream,
                inputs,
            );
            cx.artifacts.push(Artifact {
                kind: "rdm",
                subject: h.subject.clone(),
                source: h.source.clone(),
                layer: h.layer.clone(),
                layer_index: h.layer_index,
                roi: String::new(),
                node: model_rdm,
                stimulus_node: Some(subject.node),
            });
            for roi_name in &self.rois {
                let key = (h.subject.clone(), roi_name.clone());
                let (n, n_neurons) = neural[&key];
                let node = cx.g.add(
                    format!("rsa/{}/{}/{roi_name}", cx.name, h.id()),
                    RsaTask {
                        compare: self.compare.clone(),
                        bootstrap: self.bootstrap,
                        seed: self.seed,
                        ci: self.ci,
                        roi: roi_name.clone(),
                        n_neurons,
                        n_stimuli: n,
                    },
                    vec![
                        ("neural".to_string(), neural_nodes[&key]),
                        ("model".to_string(), model_rdm),
                    ],
                    BTreeMap::new(),
                );
                let labels = Labels {
                    analysis: cx.name.to_string(),
                    subject: h.subject.clone(),
                    source: h.source.clone(),
                    layer: h.layer.clone(),
                    layer_index: h.layer_index,
                    part: String::new(),
                    split: String::new(),
                    set: self.stimuli.name().to_string(),
                };
                cx.score_as_roi(node, labels, roi_name);
            }
        }
        Ok(())
    }
}

pub const RDM_VERSION: u32 = 1;

/// Whose patterns an RDM compares.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RdmOf {
    /// The ROI's neurons (voxels) of the subject's responses.
    Neurons,
    /// A feature matrix's units.
    Features(FeatureRef),
}

/// `rdm`: stimuli × stimuli dissimilarities (`rdm.npy`), and which stimuli
/// had a constant pattern (`rdm.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RdmTask {
    pub method: RdmMethod,
    /// Stimulus rows, as (start, len) ranges in stimulus order.
    pub rows: Vec<(usize, usize)>,
    pub of: RdmOf,
    #[serde(skip)]
    pub sizes: (usize, usize),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RdmOut {
    pub n_stimuli: usize,
    pub n_units: usize,
    /// Positions (in the RDM) of stimuli whose pattern is constant: their
    /// correlation distances are NaN.
    pub constant_patterns: Vec<usize>,
}

impl NodeKind for RdmTask {
    fn kind(&self) -> &'static str {
        "rdm"
    }
    fn version(&self) -> u32 {
        RDM_VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // The selected patterns (z-scored copy too) and the RDM.
        let (n, p) = self.sizes;
        8 * (3 * n * p + 2 * n * n) as u64
    }
    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let out: RdmOut = entry()?.read_json("rdm.json")?;
        Ok(if out.constant_patterns.is_empty() {
            vec![]
        } else {
            let shown: Vec<String> = out
                .constant_patterns
                .iter()
                .take(8)
                .map(|i| i.to_string())
                .collect();
            vec![format!(
                "{} of {} stimuli have a constant pattern over the {} units (correlation distance undefined): stimuli {}{}; comparisons leave them out",
                out.constant_patterns.len(),
                out.n_stimuli,
                out.n_units,
                shown.join(", "),
                if out.constant_patterns.len() > 8 {
                    ", …"
                } else {
                    ""
                }
            )]
        })
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let rows: Vec<usize> = self.rows.iter().flat_map(|&(s, n)| s..s + n).collect();
        let (x, p) = match &self.of {
            RdmOf::Neurons => {
                let y = ctx.input("subject")?.read_f64("y.npy")?;
                let v = y.rows_cols().1;
                let idx = as_indices(&ctx.input("roi")?.read_f64("indices.npy")?);
                let mut x = Vec::with_capacity(rows.len() * idx.len());
                for &r in &rows {
                    let row = &y.data[r * v..(r + 1) * v];
                    x.extend(idx.iter().map(|&j| row[j]));
                }
                (x, idx.len())
            }
            RdmOf::Features(f) => {
                let a = f.read_f64_as(ctx, "features")?;
                let (n_rows, p) = a.rows_cols();
                if let Some(&r) = rows.iter().find(|&&r| r >= n_rows) {
                    return Err(ctx.fail(format!(
                        "features have {n_rows} rows but stimulus {r} is asked for"
                    )));
                }
                let mut x = Vec::with_capacity(rows.len() * p);
                for &r in &rows {
                    x.extend_from_slice(&a.data[r * p..(r + 1) * p]);
                }
                (x, p)
            }
        };
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(ctx
                .fail(format!(
                    "stimulus {} unit {} is {}: an RDM needs finite patterns",
                    rows[i / p],
                    i % p,
                    x[i]
                ))
                .with_help("check the responses or the extraction"));
        }
        let n = rows.len();
        ctx.progress.set_message(format!(
            "{} RDM of {n} stimuli × {p} units",
            self.method.name()
        ));
        let r = rsa::rdm(&x, n, p, self.method);
        drop(x);
        ctx.out.write_npy("rdm.npy", &[n, n], &r.data)?;
        ctx.out.write_json(
            "rdm.json",
            &RdmOut {
                n_stimuli: n,
                n_units: p,
                constant_patterns: r.constant_patterns,
            },
        )
    }
}

pub const RSA_VERSION: u32 = 1;

/// `rsa`: one layer's RDM against one ROI's, by each comparison, with a
/// bootstrap interval over stimuli.
#[derive(Debug, Clone, Serialize)]
pub struct RsaTask {
    pub compare: Vec<Compare>,
    pub bootstrap: usize,
    pub seed: u64,
    pub ci: f64,
    pub roi: String,
    /// Neurons in the ROI (the record's `n_voxels`).
    pub n_neurons: usize,
    #[serde(skip)]
    pub n_stimuli: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RsaOut {
    pub n_stimuli: usize,
    /// Stimuli left out for a constant pattern in either RDM.
    pub left_out: Vec<usize>,
    /// Per comparison: (name, value, ci_low, ci_high, bootstrap samples
    /// where it was undefined).
    pub comparisons: Vec<(String, Option<f64>, f64, f64, usize)>,
}

impl NodeKind for RsaTask {
    fn kind(&self) -> &'static str {
        "rsa"
    }
    fn version(&self) -> u32 {
        RSA_VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let n = self.n_stimuli as u64;
        // Both RDMs, their triangles, a bootstrap sample's per thread.
        8 * (2 * n * n + 2 * n * n / 2 * 4)
    }
    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let out: RsaOut = entry()?.read_json("rsa.json")?;
        let mut w = Vec::new();
        for (name, value, _, _, undefined) in &out.comparisons {
            if value.is_none() {
                w.push(format!(
                    "{}: {name} is undefined (an RDM is constant over the stimuli): NaN",
                    self.roi
                ));
            } else if *undefined > 0 {
                w.push(format!(
                    "{}: {name} was undefined in {undefined} of {} bootstrap samples (left out of the interval)",
                    self.roi, self.bootstrap
                ));
            }
        }
        Ok(w)
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let neural = ctx.input("neural")?;
        let model = ctx.input("model")?;
        let (a, b) = (neural.read_f64("rdm.npy")?, model.read_f64("rdm.npy")?);
        let (na, nb) = (a.rows_cols().0, b.rows_cols().0);
        if na != nb {
            return Err(ctx.fail(format!(
                "the neural RDM spans {na} stimuli but the model's {nb}"
            )));
        }
        let (ma, mb): (RdmOut, RdmOut) =
            (neural.read_json("rdm.json")?, model.read_json("rdm.json")?);
        let mut left_out: Vec<usize> = ma
            .constant_patterns
            .iter()
            .chain(&mb.constant_patterns)
            .copied()
            .collect();
        left_out.sort_unstable();
        left_out.dedup();
        let keep: Vec<usize> = (0..na)
            .filter(|i| left_out.binary_search(i).is_err())
            .collect();
        let (a, n) = rsa::keep(&a.data, na, &keep);
        let (b, _) = rsa::keep(&b.data, nb, &keep);
        let (ua, ub) = (rsa::upper(&a, n), rsa::upper(&b, n));
        let mut record = Record::default();
        let mut comparisons = Vec::new();
        for &c in &self.compare {
            ctx.progress
                .set_message(format!("{} ({} stimuli)", c.name(), n));
            let value = if n >= 3 {
                rsa::compare(&ua, &ub, c)
            } else {
                None
            };
            let (lo, hi, undefined) = if self.bootstrap > 0 && value.is_some() {
                // The same resamples for every comparison (the seed's stream).
                let bs = rsa::bootstrap(&a, &b, n, c, self.bootstrap, self.seed, self.ci);
                let file = format!("bootstrap.{}.npy", c.name());
                ctx.out.write_npy(&file, &[bs.values.len()], &bs.values)?;
                let (lo, hi) = bs.ci.unwrap_or((f64::NAN, f64::NAN));
                (lo, hi, bs.undefined)
            } else {
                (f64::NAN, f64::NAN, 0)
            };
            let metric = metric_name(c);
            let v = value.unwrap_or(f64::NAN);
            for (agg, x) in [("value", v), ("ci_low", lo), ("ci_high", hi)] {
                record.add_value(&self.roi, &metric, agg, x, self.n_neurons);
            }
            comparisons.push((c.name().to_string(), value, lo, hi, undefined));
        }
        record.write(ctx)?;
        ctx.out.write_json(
            "rsa.json",
            &RsaOut {
                n_stimuli: n,
                left_out,
                comparisons,
            },
        )
    }
}
