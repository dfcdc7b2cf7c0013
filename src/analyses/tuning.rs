//! `kind = "tuning_curves"`: response against the stimulus variable
//! (orientation) for chosen neurons and model units, neural and model side
//! by side (seed 004, part e1).
//!
//! Units are chosen by index (`neurons = [..]`, `units = [..]`) or as the
//! `top_k` most orientation-selective, by the orientation selectivity index
//! OSI = |Σᵢ (rᵢ − min r) e^{2iθᵢ}| / Σᵢ (rᵢ − min r) (one minus the circular
//! variance of the response shifted to be non-negative; period 180°): 1 for
//! a response at one orientation only, 0 for a flat one.
//!
//! Nodes: a `tuning` per subject × ROI (neurons) and per subject × source ×
//! layer (units), each writing `curves.npy` (units × stimuli, stimuli sorted
//! by orientation), `orientations.npy` (sorted) and `tuning.json`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;
use toml::de::DeValue;

use super::expand::{Artifact, Expand};
use super::rsa::RdmOf;
use super::{Analysis, ParseCx};
use crate::error::{Error, Result};
use crate::node::{Ctx, NodeKind, as_indices};
use crate::vocab::Aggregate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)]
    kind: String,
    /// Neurons by column of the responses (default: the top_k most selective of each ROI).
    neurons: Option<Spanned<Vec<usize>>>,
    /// Units of every layer by index in its flattened output (default: top_k).
    units: Option<Spanned<Vec<usize>>>,
    /// How many of the most selective to draw (default 4).
    top_k: Option<Spanned<usize>>,
    features: Option<Spanned<Vec<String>>>,
    rois: Option<Spanned<Vec<String>>>,
}

/// Which units a tuning node draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    Indices(Vec<usize>),
    TopK(usize),
}

#[derive(Debug)]
pub struct Tuning {
    pub neurons: Pick,
    pub units: Pick,
    pub features: Vec<String>,
    pub rois: Vec<String>,
}

pub fn parse(_name: &str, value: Spanned<DeValue<'_>>, cx: &ParseCx) -> Result<Arc<dyn Analysis>> {
    let raw: Raw = super::deserialize(value, cx.src)?;
    let k = match &raw.top_k {
        None => 4,
        Some(k) if *k.get_ref() > 0 => *k.get_ref(),
        Some(k) => return Err(cx.src.error(k.span(), "top_k must be ≥ 1")),
    };
    let pick = |list: Option<Spanned<Vec<usize>>>, what: &str| -> Result<Pick> {
        match list {
            None => Ok(Pick::TopK(k)),
            Some(l) if l.get_ref().is_empty() => {
                Err(cx.src.error(l.span(), format!("{what} must not be empty")))
            }
            Some(l) => Ok(Pick::Indices(l.into_inner())),
        }
    };
    Ok(Arc::new(Tuning {
        neurons: pick(raw.neurons, "neurons")?,
        units: pick(raw.units, "units")?,
        features: super::pick(cx, raw.features, &cx.features, "feature source")?,
        rois: super::pick(cx, raw.rois, &cx.rois, "ROI")?,
    }))
}

impl Analysis for Tuning {
    fn metrics(&self) -> Vec<String> {
        vec![]
    }
    fn aggregate(&self) -> Aggregate {
        Aggregate::Mean
    }
    fn family(&self) -> &'static str {
        "tuning"
    }
    fn expand(&self, cx: &mut Expand) -> Result<()> {
        let handles: Vec<_> = cx.shared.handles_of(&self.features).cloned().collect();
        for subject in &cx.shared.subjects {
            if !handles.iter().any(|h| h.subject == subject.name) {
                continue;
            }
            if subject.format != crate::npz_responses::FORMAT {
                return Err(Error::usage(format!(
                    "analyses.{}: tuning curves plot responses against the stimulus variable, and subject `{}` ({}) has none",
                    cx.name, subject.name, subject.format
                ))
                .with_help("tuning_curves needs an npz_responses subject (its `stimulus` array, e.g. orientation)"));
            }
            for roi_name in &self.rois {
                let roi = subject.roi(roi_name);
                if let Pick::Indices(ix) = &self.neurons
                    && let Some(&bad) = ix.iter().find(|&&i| i >= subject.n_voxels)
                {
                    return Err(Error::usage(format!(
                        "analyses.{}: neuron {bad} does not exist; subject `{}` has {} neurons (0 … {})",
                        cx.name,
                        subject.name,
                        subject.n_voxels,
                        subject.n_voxels - 1
                    )));
                }
                let node = cx.g.add(
                    format!("tuning/{}/{}/{roi_name}", cx.name, subject.name),
                    TuningTask {
                        pick: self.neurons.clone(),
                        of: RdmOf::Neurons,
                        sizes: (subject.n_stimuli, roi.n_voxels),
                    },
                    vec![
                        ("subject".to_string(), subject.node),
                        ("roi".to_string(), roi.node),
                    ],
                    BTreeMap::new(),
                );
                cx.artifacts.push(Artifact {
                    kind: "tuning",
                    subject: subject.name.clone(),
                    source: String::new(),
                    layer: String::new(),
                    layer_index: 0,
                    roi: roi_name.clone(),
                    node,
                    stimulus_node: Some(subject.node),
                });
            }
        }
        for h in handles {
            let subject = cx.shared.subject(&h.subject);
            if let Pick::Indices(ix) = &self.units
                && let Some(&bad) = ix.iter().find(|&&i| i as u64 >= h.width)
            {
                return Err(Error::usage(format!(
                    "analyses.{}: unit {bad} does not exist; layer `{}` of `{}` has {} units",
                    cx.name, h.layer, h.source, h.width
                )));
            }
            let mut upstream = vec![("subject".to_string(), subject.node)];
            let mut inputs = BTreeMap::new();
            h.attach(&mut upstream, &mut inputs);
            let node = cx.g.add(
                format!("tuning/{}/{}", cx.name, h.id()),
                TuningTask {
                    pick: self.units.clone(),
                    of: RdmOf::Features(h.features.clone()),
                    sizes: (subject.n_stimuli, h.width as usize),
                },
                upstream,
                inputs,
            );
            cx.artifacts.push(Artifact {
                kind: "tuning",
                subject: h.subject.clone(),
                source: h.source.clone(),
                layer: h.layer.clone(),
                layer_index: h.layer_index,
                roi: String::new(),
                node,
                stimulus_node: Some(subject.node),
            });
        }
        Ok(())
    }
}

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct TuningTask {
    pub pick: Pick,
    pub of: RdmOf,
    #[serde(skip)]
    pub sizes: (usize, usize),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuningOut {
    /// Neurons: columns of the responses; units: positions in the layer.
    pub units: Vec<usize>,
    pub osi: Vec<f64>,
    pub n_candidates: usize,
}

/// The orientation selectivity index of one curve (θ in degrees).
pub fn osi(theta_deg: &[f64], r: &[f64]) -> f64 {
    let m = r.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut re, mut im, mut sum) = (0.0, 0.0, 0.0);
    for (&t, &x) in theta_deg.iter().zip(r) {
        let w = x - m;
        let a = 2.0 * t.to_radians();
        re += w * a.cos();
        im += w * a.sin();
        sum += w;
    }
    if sum > 0.0 { re.hypot(im) / sum } else { 0.0 }
}

impl NodeKind for TuningTask {
    fn kind(&self) -> &'static str {
        "tuning"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let (n, p) = self.sizes;
        16 * (n * p) as u64
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let theta = ctx.input("subject")?.read_f64("orientations.npy")?.data;
        let n = theta.len();
        // Candidate units as columns of a stimuli × p matrix, and their names.
        let (x, p, names): (Vec<f64>, usize, Vec<usize>) = match &self.of {
            RdmOf::Neurons => {
                let y = ctx.input("subject")?.read_f64("y.npy")?;
                let v = y.rows_cols().1;
                let idx = as_indices(&ctx.input("roi")?.read_f64("indices.npy")?);
                let mut x = Vec::with_capacity(n * idx.len());
                for r in 0..n {
                    let row = &y.data[r * v..(r + 1) * v];
                    x.extend(idx.iter().map(|&j| row[j]));
                }
                (x, idx.len(), idx)
            }
            RdmOf::Features(f) => {
                let a = f.read_f64_as(ctx, "features")?;
                let (rows, p) = a.rows_cols();
                if rows < n {
                    return Err(ctx.fail(format!(
                        "features have {rows} rows but the subject has {n} stimuli"
                    )));
                }
                (a.data[..n * p].to_vec(), p, (0..p).collect())
            }
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| theta[a].total_cmp(&theta[b]));
        let sorted_theta: Vec<f64> = order.iter().map(|&i| theta[i]).collect();
        let curve = |j: usize| -> Vec<f64> { order.iter().map(|&i| x[i * p + j]).collect() };
        let chosen: Vec<usize> = match &self.pick {
            Pick::Indices(ix) => {
                let mut out = Vec::new();
                for &u in ix {
                    match names.iter().position(|&nm| nm == u) {
                        Some(j) => out.push(j),
                        None => {
                            return Err(ctx
                                .fail(format!("unit {u} is not among the {p} of this ROI or layer"))
                                .with_help("neurons are columns of the responses that the ROI keeps; units index a layer's flattened output"));
                        }
                    }
                }
                out
            }
            Pick::TopK(k) => {
                let scores: Vec<f64> = (0..p).map(|j| osi(&sorted_theta, &curve(j))).collect();
                let mut js: Vec<usize> = (0..p).collect();
                js.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
                js.truncate(*k);
                js
            }
        };
        let mut curves = Vec::with_capacity(chosen.len() * n);
        let mut osis = Vec::new();
        for &j in &chosen {
            let c = curve(j);
            osis.push(osi(&sorted_theta, &c));
            curves.extend(c);
        }
        ctx.out
            .write_npy("curves.npy", &[chosen.len(), n], &curves)?;
        ctx.out.write_npy("orientations.npy", &[n], &sorted_theta)?;
        ctx.out.write_json(
            "tuning.json",
            &TuningOut {
                units: chosen.iter().map(|&j| names[j]).collect(),
                osi: osis,
                n_candidates: p,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::osi;

    #[test]
    fn osi_is_one_for_a_single_orientation_and_zero_when_flat() {
        let theta: Vec<f64> = (0..180).map(|i| i as f64 - 90.0).collect();
        let mut spike = vec![0.0; 180];
        spike[37] = 2.5;
        assert!((osi(&theta, &spike) - 1.0).abs() < 1e-12);
        assert_eq!(osi(&theta, &[1.0; 180]), 0.0);
        // A cos(2θ) curve shifted to be ≥ 0: |Σ (1 + cos 2θ) e^{2iθ}| / Σ (1 + cos 2θ) = 1/2.
        let c: Vec<f64> = theta.iter().map(|t| (2.0 * t.to_radians()).cos()).collect();
        assert!((osi(&theta, &c) - 0.5).abs() < 1e-12);
    }
}
