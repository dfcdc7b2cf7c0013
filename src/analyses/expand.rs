//! What an analysis expands on: the shared nodes of the experiment (its
//! subjects with their ROIs, and a feature handle per subject × source ×
//! layer), and helpers to add the nodes analyses have in common (splits,
//! reductions) and to register scoring nodes for the results table.

use std::collections::BTreeMap;
use std::path::PathBuf;

use petgraph::graph::NodeIndex;

use super::SplitSpec;
use crate::error::{Error, Result};
use crate::node::FeatureRef;
use crate::nodes::reduce::{Reduce, ReduceTask};
use crate::nodes::split::{SplitMethod, SplitTask};
use crate::nodes::table::Labels;
use crate::plan::Graph;

/// One ROI of one subject, as the plan knows it before anything runs.
pub struct SharedRoi {
    pub name: String,
    pub node: NodeIndex,
    pub n_voxels: usize,
    /// Why it is empty and which labels exist, when it is.
    pub empty: Option<(String, String)>,
}

pub struct SharedSubject {
    pub name: String,
    pub node: NodeIndex,
    /// Stimuli 0..n_responses have responses; the rest are only predicted.
    pub n_responses: usize,
    pub n_stimuli: usize,
    pub n_voxels: usize,
    pub noise_ceiling: bool,
    pub hemis: Vec<String>,
    /// The subject's own split (NSD), or None (Algonauts: no test responses).
    pub given: Option<SplitMethod>,
    pub rois: Vec<SharedRoi>,
    pub format: &'static str,
    /// The directory's name (the challenge's `subjNN` folder of a submission).
    pub folder: String,
    /// Algonauts: results can be written back into fsaverage space.
    pub fsaverage: bool,
    /// Lab08: the voxels sit in a brain volume (maps can be drawn).
    pub volume: bool,
    /// Lab08: each voxel's noise ceiling comes with the data.
    pub nc_given: bool,
    /// Lab08: per boolean image column, (flagged, other) image rows (over
    /// every row, as the lab's split counts them).
    pub flag_counts: BTreeMap<String, (usize, usize)>,
}

impl SharedSubject {
    pub fn roi(&self, name: &str) -> &SharedRoi {
        self.rois
            .iter()
            .find(|r| r.name == name)
            .expect("validated ROI name")
    }
}

/// A feature matrix of one subject: a layer of a source, as stored, or a
/// reduction of one.
#[derive(Clone)]
pub struct Handle {
    pub subject: String,
    pub source: String,
    pub layer: String,
    pub layer_index: usize,
    pub features: FeatureRef,
    /// The node holding the file, or the external file's blake3.
    pub upstream: Option<NodeIndex>,
    pub hash: Option<String>,
    pub width: u64,
}

impl Handle {
    /// Adds this matrix as the `features` input of a node being built.
    pub fn attach(
        &self,
        upstream: &mut Vec<(String, NodeIndex)>,
        inputs: &mut BTreeMap<String, String>,
    ) {
        if let Some(ix) = self.upstream {
            upstream.push(("features".into(), ix));
        }
        if let Some(h) = &self.hash {
            inputs.insert("features".into(), h.clone());
        }
    }

    /// Like [`Handle::attach`], under `role` (one of several matrices).
    pub fn attach_as(
        &self,
        role: &str,
        upstream: &mut Vec<(String, NodeIndex)>,
        inputs: &mut BTreeMap<String, String>,
    ) {
        if let Some(ix) = self.upstream {
            upstream.push((role.to_string(), ix));
        }
        if let Some(h) = &self.hash {
            inputs.insert(role.to_string(), h.clone());
        }
    }

    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.subject, self.source, self.layer)
    }
}

pub struct Shared {
    pub subjects: Vec<SharedSubject>,
    pub handles: Vec<Handle>,
}

impl Shared {
    pub fn subject(&self, name: &str) -> &SharedSubject {
        self.subjects
            .iter()
            .find(|s| s.name == name)
            .expect("validated subject")
    }
    /// The handles of the given sources, in source then layer order.
    pub fn handles_of<'a>(&'a self, sources: &'a [String]) -> impl Iterator<Item = &'a Handle> {
        sources
            .iter()
            .flat_map(move |src| self.handles.iter().filter(move |h| &h.source == src))
    }
}

/// A scoring node and where its record sits in the experiment.
pub struct Scored {
    pub node: NodeIndex,
    pub labels: Labels,
    /// Sorts per-ROI records of one layer in natural ROI order.
    pub sort_roi: String,
}

/// A node whose entry a plot draws (an RDM, tuning curves), with where it
/// sits: `source` and `layer` empty for the neural side, `roi` empty for a
/// feature layer's.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub kind: &'static str,
    pub subject: String,
    pub source: String,
    pub layer: String,
    pub layer_index: usize,
    pub roi: String,
    pub node: NodeIndex,
    /// The subject node, whose `orientations.npy` (when it has one) labels
    /// the stimuli.
    pub stimulus_node: Option<NodeIndex>,
}

/// What an analysis expands into.
pub struct Expand<'a> {
    pub name: &'a str,
    pub g: &'a mut Graph,
    pub shared: &'a Shared,
    pub scored: Vec<Scored>,
    pub artifacts: Vec<Artifact>,
    pub outputs: Vec<(NodeIndex, String)>,
    pub warnings: Vec<String>,
}

impl Expand<'_> {
    /// The split node of a subject for an analysis's split (one fold of it),
    /// and how many stimuli it fits and scores.
    pub fn split(
        &mut self,
        subject: &SharedSubject,
        spec: &Option<SplitSpec>,
        fold: usize,
    ) -> Result<(NodeIndex, (u64, u64))> {
        let method = match (spec, &subject.given) {
            (None, Some(given)) | (Some(SplitSpec::Given), Some(given)) => given.clone(),
            (None, None) => SplitMethod::Holdout {
                train_percent: 90.0,
                seed: 4,
            },
            (Some(SplitSpec::Given), None) => {
                return Err(Error::usage(format!(
                    "analyses.{}: subject `{}` ({}) has no given test split with responses",
                    self.name, subject.name, subject.format
                ))
                .with_help("use split = { method = \"holdout\", train_percent = 90, seed = 4 } (the devkit's)"));
            }
            (
                Some(s @ SplitSpec::ValHoldout { .. }),
                Some(given @ SplitMethod::ValHoldout { .. }),
            ) => s.method(given, fold),
            (Some(SplitSpec::ValHoldout { .. }), _) => {
                return Err(Error::usage(format!(
                    "analyses.{}: split method \"val_holdout\" needs an image table with validation flags; subject `{}` is {}",
                    self.name, subject.name, subject.format
                ))
                .with_help("val_holdout is Lab08's split (format = \"lab08\" subjects)"));
            }
            (Some(s @ SplitSpec::RandomSplits { .. }), given) => {
                // Drawn from the subject's fit stimuli (every stimulus with
                // a response when it has no split of its own).
                let given = match given {
                    Some(g @ SplitMethod::Given { .. }) => g.clone(),
                    _ => SplitMethod::Given {
                        fit: vec![(0, subject.n_responses)],
                        score: vec![],
                    },
                };
                s.method(&given, fold)
            }
            (Some(s), _) => s.method(
                &SplitMethod::Given {
                    fit: vec![],
                    score: vec![],
                },
                fold,
            ),
        };
        // Lab08's counts depend on the column asked for; the plan knows them.
        let method = match method {
            SplitMethod::ValHoldout {
                column,
                holdout_fraction,
                seed,
                ..
            } => {
                let Some(sizes) = subject.flag_counts.get(&column).copied() else {
                    return Err(Error::usage(format!(
                        "analyses.{}: subject `{}` has no boolean image column `{column}`",
                        self.name, subject.name
                    ))
                    .with_help(format!(
                        "boolean columns of its image table: {}",
                        subject
                            .flag_counts
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                SplitMethod::ValHoldout {
                    column,
                    holdout_fraction,
                    seed,
                    sizes,
                }
            }
            m => m,
        };
        let label = match &method {
            SplitMethod::Given { .. } => "given".to_string(),
            SplitMethod::Holdout {
                train_percent,
                seed,
            } => format!("holdout-{train_percent}-seed{seed}"),
            SplitMethod::KFold { k, fold, seed } => format!("kfold{k}-{fold}-seed{seed}"),
            SplitMethod::ValHoldout {
                column,
                holdout_fraction,
                seed,
                ..
            } => format!("{column}-holdout{holdout_fraction}-seed{seed}"),
            SplitMethod::RandomSplits {
                n_splits,
                n_test,
                seed,
                split,
                ..
            } => format!("random{n_splits}x{n_test}-seed{seed}-{split}"),
        };
        let upstream = match &method {
            SplitMethod::ValHoldout { .. } => vec![("subject".to_string(), subject.node)],
            _ => vec![],
        };
        let task = SplitTask {
            method,
            n_responses: subject.n_responses,
            n_stimuli: subject.n_stimuli,
        };
        let (fit, score) = task.sizes();
        if let SplitMethod::RandomSplits { n_test, pool, .. } = &task.method {
            let n: usize = pool.iter().map(|r| r.1).sum();
            if *n_test >= n {
                return Err(Error::usage(format!(
                    "analyses.{}: random_splits scores n_test = {n_test} of the {n} training stimuli of subject `{}`, leaving none to fit",
                    self.name, subject.name
                ))
                .with_help("lower n_test (the Kay V4 project: 250 of 1750)"));
            }
        }
        if fit == 0 || score == 0 {
            return Err(Error::usage(format!(
                "analyses.{}: the split of subject `{}` fits {fit} and scores {score} stimuli",
                self.name, subject.name
            ))
            .with_help("both sides of a split need stimuli; check train_percent, k and the subject's splits"));
        }
        let ix = self.g.add(
            format!("split/{}/{label}", subject.name),
            task,
            upstream,
            BTreeMap::new(),
        );
        Ok((ix, (fit as u64, score as u64)))
    }

    /// The handle's features reduced (PCA fitted on the split's fit rows).
    pub fn reduced(&mut self, h: &Handle, split: NodeIndex, reduce: &Option<Reduce>) -> Handle {
        let Some(r) = reduce else { return h.clone() };
        let subject = self.shared.subject(&h.subject);
        let mut r = r.clone();
        if let Reduce::Subsample { pool, .. } = &mut r {
            // The earlier permutations are of the subject's training stimuli.
            *pool = match &subject.given {
                Some(SplitMethod::Given { fit, .. }) => fit.iter().map(|x| x.1).sum(),
                _ => subject.n_responses,
            };
        }
        let r = &r;
        let mut upstream = if r.needs_split() {
            vec![("split".to_string(), split)]
        } else {
            vec![]
        };
        let mut inputs = BTreeMap::new();
        h.attach(&mut upstream, &mut inputs);
        let ix = self.g.add(
            format!("reduce/{}/{}", h.id(), r.label()),
            ReduceTask {
                reduce: r.clone(),
                features: h.features.clone(),
                n_stimuli: subject.n_stimuli,
                width: h.width,
            },
            upstream,
            inputs,
        );
        Handle {
            features: FeatureRef {
                upstream_file: Some("features.npy".into()),
                path: PathBuf::new(),
            },
            upstream: Some(ix),
            hash: None,
            width: r.n_components() as u64,
            ..h.clone()
        }
    }

    pub fn score(&mut self, node: NodeIndex, h: &Handle, roi: &str) {
        self.scored.push(Scored {
            node,
            labels: Labels {
                analysis: self.name.to_string(),
                subject: h.subject.clone(),
                source: h.source.clone(),
                layer: h.layer.clone(),
                layer_index: h.layer_index,
                part: String::new(),
                split: String::new(),
                set: String::new(),
            },
            sort_roi: roi.to_string(),
        });
    }

    /// A record whose labels are not one handle's (a joint model's, a
    /// comparison across layers).
    pub fn score_as(&mut self, node: NodeIndex, labels: Labels) {
        self.score_as_roi(node, labels, "");
    }

    /// Like [`Expand::score_as`], sorted with the records of `roi`.
    pub fn score_as_roi(&mut self, node: NodeIndex, labels: Labels, roi: &str) {
        self.scored.push(Scored {
            node,
            labels,
            sort_roi: roi.to_string(),
        });
    }
}
