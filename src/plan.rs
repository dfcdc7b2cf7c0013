//! From a checked experiment to a DAG of keyed nodes.
//!
//! Granularity is chosen so that the usual edits reuse everything else:
//! adding a layer adds one `decompose` and its fits; adding an ROI adds one
//! `roi` and its fits; changing the α grid re-runs fits, scores, the table and
//! plots, never a decomposition.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::cache::Cache;
use crate::config::{Experiment, FeatureKind};
use crate::error::{Error, Result};
use crate::key::{KeyComponents, hash_file};
use crate::nodes::{self, Task};
use crate::npy;
use crate::nsd::{SubjectDir, VoxelTable};

pub struct Node {
    pub id: String,
    pub task: Task,
    pub components: KeyComponents,
    pub key: String,
    /// Rough peak memory, so the executor does not run two giants at once.
    pub mem_bytes: u64,
}

pub struct Plan {
    pub experiment: Experiment,
    /// Edges point from an upstream node to the node reading it; the weight is the role.
    pub graph: DiGraph<Node, String>,
    pub by_id: HashMap<String, NodeIndex>,
    /// Nodes whose files are the experiment's results, copied to
    /// `results_dir` with a file-name prefix (a trained model's name).
    pub outputs: Vec<(NodeIndex, String)>,
    /// Things that are probably mistakes but not errors, said by plan and exec.
    pub warnings: Vec<String>,
}

/// Freshness of a node against the cache, with the reason when stale.
#[derive(Debug, Clone, PartialEq)]
pub enum Freshness {
    Fresh,
    Stale(String),
}

fn natural_key(s: &str) -> (String, u64, String) {
    // "V10" sorts after "V2": split a trailing/leading number out.
    let prefix: String = s.chars().take_while(|c| !c.is_ascii_digit()).collect();
    let digits: String = s[prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let rest = s[prefix.len() + digits.len()..].to_string();
    (prefix, digits.parse().unwrap_or(0), rest)
}

struct Builder {
    graph: DiGraph<Node, String>,
    by_id: HashMap<String, NodeIndex>,
}

impl Builder {
    fn add(
        &mut self,
        id: String,
        task: Task,
        upstream: Vec<(String, NodeIndex)>,
        inputs: BTreeMap<String, String>,
        mem_bytes: u64,
    ) -> NodeIndex {
        let components = KeyComponents {
            kind: task.kind().to_string(),
            code_version: task.code_version(),
            params: serde_json::to_value(&task).expect("task serializes"),
            upstream: upstream
                .iter()
                .map(|(role, ix)| (role.clone(), self.graph[*ix].key.clone()))
                .collect(),
            inputs,
        };
        let key = components.key();
        let ix = self.graph.add_node(Node {
            id: id.clone(),
            task,
            components,
            key,
            mem_bytes,
        });
        for (role, up) in upstream {
            self.graph.add_edge(up, ix, role);
        }
        self.by_id.insert(id, ix);
        ix
    }
}

pub fn build(exp: &Experiment) -> Result<Plan> {
    let src = &exp.source;
    let base = &exp.base_dir;
    let mut b = Builder {
        graph: DiGraph::new(),
        by_id: HashMap::new(),
    };

    // Nets runner trains come first: nothing upstream, and every extract of
    // the model reads the entry as its checkpoint.
    let mut train_nodes = HashMap::new();
    for m in &exp.models {
        if let crate::config::Weights::Trained { seed, train } = &m.weights {
            let task = nodes::train::TrainTask {
                arch: "alexnet".into(),
                model: m.config.clone(),
                seed: *seed,
                train: train.clone(),
            };
            let mem = task.mem_bytes();
            let ix = b.add(
                format!("train/{}", m.name),
                Task::Train(task),
                vec![],
                BTreeMap::new(),
                mem,
            );
            train_nodes.insert(m.name.clone(), ix);
        }
    }

    let mut subject_nodes = HashMap::new();
    let mut roi_nodes = HashMap::new();
    let mut roi_sizes: HashMap<(String, String), usize> = HashMap::new();
    let mut subject_dirs = HashMap::new();
    let mut warnings = Vec::new();
    for s in &exp.subjects {
        if !s.path.is_dir() {
            return Err(src
                .error(s.path_span.clone(), format!("subject directory {} does not exist", s.path.display()))
                .with_help("paths are relative to the experiment file; make a synthetic subject with `runner synth DIR`"));
        }
        let dir = SubjectDir::open(&s.path)?;
        let splits: Vec<String> = s
            .train_splits
            .iter()
            .chain(&s.test_splits)
            .cloned()
            .collect();
        dir.check_splits(&splits)?;
        let task = nodes::subject::SubjectTask {
            dir: s.path.clone(),
            train_splits: s.train_splits.clone(),
            test_splits: s.test_splits.clone(),
            hemis: s.hemis.clone(),
            voxel_mask: s.voxel_mask.clone(),
            min_ncsnr: s.min_ncsnr,
        };
        if let Some(h) = s.hemis.iter().find(|h| !dir.meta.hemis.contains(h)) {
            return Err(Error::data(
                dir.dir.join("subject.json"),
                format!(
                    "subject `{}` asks for hemisphere `{h}`; this subject has {}",
                    s.name,
                    dir.meta.hemis.join(", ")
                ),
            ));
        }
        let folder = dir.dir.file_name().map(|n| n.to_string_lossy().to_string());
        if folder.as_deref().is_some_and(|f| f != dir.meta.subject) {
            warnings.push(format!(
                "subject `{}`: {} says subject `{}` but its directory is `{}`; check that the path points at the subject you mean",
                s.name,
                dir.dir.join("subject.json").display(),
                dir.meta.subject,
                folder.unwrap_or_default()
            ));
        }
        // Read the voxel table now: label errors surface before anything runs,
        // and ROI sizes let the executor budget memory.
        let table = VoxelTable::read_csv(&dir.voxels_file())?;
        let per_hemi = |h: &str| table.hemi.iter().filter(|x| *x == h).count();
        dir.check_brain(&splits, &s.hemis, &per_hemi)?;
        let mut inputs = BTreeMap::new();
        for f in dir.brain_inputs(&splits, &s.hemis) {
            if !f.is_file() {
                return Err(Error::data(&f, "missing file in the subject directory"));
            }
            let rel = f
                .strip_prefix(&dir.dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .to_string();
            inputs.insert(rel, hash_file(&f)?);
        }
        let kept = task.kept_voxels(&table, &dir)?;
        let kept_table = table.select(&kept);
        let n_imgs = dir.n_images() as u64;
        let mem = n_imgs
            .saturating_mul(table.len() as u64)
            .saturating_mul(4 * (dir.meta.repeats as u64 + 2));
        let ix = b.add(
            format!("subject/{}", s.name),
            Task::Subject(task),
            vec![],
            inputs,
            mem,
        );
        subject_nodes.insert(s.name.clone(), ix);

        for roi in &exp.rois {
            let task = nodes::roi::RoiTask {
                selector: roi.selector.clone(),
                min_ncsnr: roi.min_ncsnr,
                hemis: roi.hemis.clone(),
            };
            match task.select(&kept_table) {
                None => {
                    return Err(Error::data(
                        dir.voxels_file(),
                        format!(
                            "ROI `{}` reads label column `{}`, which the voxel table lacks",
                            roi.name, roi.selector.column
                        ),
                    )
                    .with_help(format!(
                        "label columns present: {}",
                        kept_table
                            .labels
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                Some((idx, _)) => roi_sizes.insert((s.name.clone(), roi.name.clone()), idx.len()),
            };
            let rix = b.add(
                format!("roi/{}/{}", s.name, roi.name),
                Task::Roi(task),
                vec![("subject".into(), ix)],
                BTreeMap::new(),
                kept.len() as u64 * 200,
            );
            roi_nodes.insert((s.name.clone(), roi.name.clone()), rix);
        }
        subject_dirs.insert(s.name.clone(), dir);
    }

    let mut rows = Vec::new();
    let mut table_upstream = Vec::new();
    for f in &exp.features {
        for sname in &f.subjects {
            let dir = &subject_dirs[sname];
            let subj = exp.subjects.iter().find(|s| &s.name == sname).unwrap();
            let spans = |splits: &[String]| -> Vec<(String, usize, usize)> {
                let mut start = 0;
                let mut offsets = HashMap::new();
                for (name, &n) in &dir.meta.splits {
                    offsets.insert(name.clone(), (start, n));
                    start += n;
                }
                splits
                    .iter()
                    .map(|s| (s.clone(), offsets[s].0, offsets[s].1))
                    .collect()
            };
            let (train, test) = (spans(&subj.train_splits), spans(&subj.test_splits));
            let n_train: usize = train.iter().map(|t| t.2).sum();
            let n_test: usize = test.iter().map(|t| t.2).sum();
            let extract = match &f.kind {
                FeatureKind::Npy { .. } => None,
                FeatureKind::Extract {
                    model,
                    preprocess,
                    batch_size,
                    device,
                } => Some(add_extract(
                    &mut b,
                    &train_nodes,
                    exp,
                    dir,
                    sname,
                    &f.name,
                    model,
                    *preprocess,
                    *batch_size,
                    *device,
                    &f.layers,
                )?),
            };
            for (li, layer) in f.layers.iter().enumerate() {
                let file = f.layer_file(base, sname, layer);
                let (dec_task_file, upstream, inputs, p) = match (&f.kind, extract) {
                    (FeatureKind::Extract { model, .. }, Some(ex)) => {
                        let spec = exp
                            .models
                            .iter()
                            .find(|m| &m.name == model)
                            .expect("validated");
                        let module = crate::model::alexnet::resolve_tap(layer).expect("validated");
                        (
                            Some(format!("{layer}.npy")),
                            vec![("features".to_string(), ex)],
                            BTreeMap::new(),
                            spec.config.tap_width(module) as u64,
                        )
                    }
                    _ => {
                        let (shape, hash) = npy_layer(src, f, &file, layer, dir, sname)?;
                        (
                            None,
                            vec![],
                            BTreeMap::from([("features".to_string(), hash)]),
                            shape,
                        )
                    }
                };
                let (nt, ne) = (n_train as u64, n_test as u64);
                let mem = 8 * (nt * p + ne * p + 4 * nt * nt + ne * nt) + 4 * (nt + ne) * p;
                let dec = b.add(
                    format!("decompose/{sname}/{}/{layer}", f.name),
                    Task::Decompose(nodes::decompose::DecomposeTask {
                        file: file.clone(),
                        upstream_file: dec_task_file,
                        train: train.clone(),
                        test: test.clone(),
                        fit_intercept: exp.fit.fit_intercept,
                    }),
                    upstream,
                    inputs,
                    mem,
                );
                for roi in &exp.rois {
                    let rix = roi_nodes[&(sname.clone(), roi.name.clone())];
                    let six = subject_nodes[sname];
                    let v = roi_sizes[&(sname.clone(), roi.name.clone())] as u64;
                    let id = format!("{sname}/{}/{layer}/{}", f.name, roi.name);
                    let fit = b.add(
                        format!("fit/{id}"),
                        Task::Fit(nodes::fit::FitTask {
                            alpha_grid: exp.fit.alpha_grid.clone(),
                            alpha_per_voxel: exp.fit.alpha_per_voxel,
                        }),
                        vec![
                            ("decompose".into(), dec),
                            ("subject".into(), six),
                            ("roi".into(), rix),
                        ],
                        BTreeMap::new(),
                        8 * (3 * nt * nt + ne * nt + 5 * nt * v) + 4 * nt * 1000,
                    );
                    let score = b.add(
                        format!("score/{id}"),
                        Task::Score(nodes::score::ScoreTask {
                            nc_repeats: exp.score.nc_repeats,
                        }),
                        vec![
                            ("fit".into(), fit),
                            ("subject".into(), six),
                            ("roi".into(), rix),
                        ],
                        BTreeMap::new(),
                        8 * ne * v * 4,
                    );
                    let row = nodes::table::TableRow {
                        subject: sname.clone(),
                        model: f.name.clone(),
                        layer_index: li,
                        layer: layer.clone(),
                        roi: roi.name.clone(),
                    };
                    table_upstream.push((format!("fit:{}", row.id()), fit));
                    table_upstream.push((format!("score:{}", row.id()), score));
                    table_upstream.push((format!("roi:{}", row.id()), rix));
                    rows.push(row);
                }
            }
        }
    }
    for (name, ix) in &subject_nodes {
        table_upstream.push((format!("subject:{name}"), *ix));
    }
    rows.sort_by(|a, b| {
        (&a.subject, &a.model, a.layer_index, natural_key(&a.roi)).cmp(&(
            &b.subject,
            &b.model,
            b.layer_index,
            natural_key(&b.roi),
        ))
    });
    table_upstream.sort_by(|a, b| a.0.cmp(&b.0));
    let table = b.add(
        "table".into(),
        Task::Table(nodes::table::TableTask {
            rows,
            aggregate: exp.score.aggregate,
            metrics: exp.score.metrics.clone(),
        }),
        table_upstream,
        BTreeMap::new(),
        64 << 20,
    );
    let mut outputs: Vec<(NodeIndex, String)> = train_nodes
        .iter()
        .map(|(name, &ix)| (ix, format!("{name}_")))
        .collect();
    outputs.sort();
    outputs.push((table, String::new()));

    let mut roi_names: Vec<String> = exp.rois.iter().map(|r| r.name.clone()).collect();
    roi_names.sort_by_key(|r| natural_key(r));
    let mut panels: Vec<nodes::plot::Panel> = Vec::new();
    for f in &exp.features {
        for s in &f.subjects {
            panels.push(nodes::plot::Panel {
                subject: s.clone(),
                model: f.name.clone(),
                layers: f.layers.clone(),
            });
        }
    }
    panels.sort_by(|a, b| (&a.subject, &a.model).cmp(&(&b.subject, &b.model)));
    for p in &exp.plots {
        let id = format!("plot/heatmap/{}", p.metric.name());
        if b.by_id.contains_key(&id) {
            continue;
        }
        let ix = b.add(
            id,
            Task::Plot(nodes::plot::PlotTask {
                metric: p.metric,
                aggregate: exp.score.aggregate,
                formats: p.formats.clone(),
                title: p.title.clone(),
                panels: panels.clone(),
                rois: p.rois.clone().unwrap_or_else(|| roi_names.clone()),
                name_subject: exp.subjects.len() > 1,
            }),
            vec![("table".into(), table)],
            BTreeMap::new(),
            256 << 20,
        );
        outputs.push((ix, String::new()));
    }

    Ok(Plan {
        experiment: exp.clone(),
        graph: b.graph,
        by_id: b.by_id,
        outputs,
        warnings,
    })
}

/// Checks a precomputed feature file against the subject; returns its width and blake3.
fn npy_layer(
    src: &crate::config::Source,
    f: &crate::config::FeatureSource,
    file: &std::path::Path,
    layer: &str,
    dir: &SubjectDir,
    sname: &str,
) -> Result<(u64, String)> {
    let FeatureKind::Npy { dir_span, .. } = &f.kind else {
        unreachable!("only npy sources read files")
    };
    if !file.is_file() {
        return Err(src
            .error(
                dir_span.clone(),
                format!(
                    "features.{}: no file {} for layer `{layer}`",
                    f.name,
                    file.display()
                ),
            )
            .with_help(
                "each layer needs <dir>/<layer>.npy, rows = the subject's images in split order",
            ));
    }
    let (shape, _) = npy::read_header(file)
        .map_err(|e| Error::data(file, format!("not a readable .npy: {e}")))?;
    let rows_in_file = shape.first().copied().unwrap_or(0);
    if rows_in_file != dir.n_images() {
        return Err(Error::data(
            file,
            format!(
                "has {rows_in_file} rows but subject `{sname}` has {} images ({})",
                dir.n_images(),
                dir.meta
                    .splits
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_help(
            "rows must be every image of the subject, splits stacked in subject.json order",
        ));
    }
    let width: usize = shape.iter().skip(1).product();
    if width == 0 || shape.len() < 2 {
        return Err(Error::data(
            file,
            format!("shape {shape:?} has no feature columns; expected images × features"),
        ));
    }
    Ok((width as u64, hash_file(file)?))
}

/// One extract node: a model's taps on a subject's images (every split, stimulus order).
#[allow(clippy::too_many_arguments)]
fn add_extract(
    b: &mut Builder,
    train_nodes: &HashMap<String, NodeIndex>,
    exp: &Experiment,
    dir: &SubjectDir,
    sname: &str,
    source: &str,
    model: &str,
    preprocess: crate::config::PreprocessKind,
    batch_size: usize,
    device: crate::config::DeviceChoice,
    taps: &[String],
) -> Result<NodeIndex> {
    let spec = exp
        .models
        .iter()
        .find(|m| m.name == model)
        .expect("validated");
    // Shapes and counts against subject.json (and that every file is there).
    dir.check_images()?;
    let images: Vec<std::path::PathBuf> =
        dir.meta.splits.keys().map(|s| dir.images_file(s)).collect();
    let mut inputs = BTreeMap::new();
    for f in &images {
        let rel = f
            .strip_prefix(&dir.dir)
            .unwrap_or(f)
            .to_string_lossy()
            .to_string();
        inputs.insert(rel, hash_file(f)?);
    }
    let mut upstream = vec![];
    let (seed, checkpoint) = match &spec.weights {
        crate::config::Weights::Random { seed } => (Some(*seed), None),
        crate::config::Weights::Trained { .. } => {
            upstream.push(("weights".to_string(), train_nodes[model]));
            (None, None)
        }
        crate::config::Weights::Checkpoint { path, span } => {
            if !path.is_file() {
                return Err(exp
                    .source
                    .error(
                        span.clone(),
                        format!("models.{model}: no checkpoint at {}", path.display()),
                    )
                    .with_help("paths are relative to the experiment file"));
            }
            inputs.insert("checkpoint".to_string(), hash_file(path)?);
            (None, Some(path.clone()))
        }
    };
    let widest = taps
        .iter()
        .filter_map(|t| crate::model::alexnet::resolve_tap(t))
        .map(|m| spec.config.tap_width(m))
        .sum::<usize>() as u64;
    let image_bytes = (dir.meta.splits.values().max().copied().unwrap_or(0)
        * dir.meta.image_shape.iter().product::<usize>()) as u64;
    let mem = image_bytes + batch_size as u64 * 4 * (3 * 224 * 224 + 2 * widest + 2_000_000);
    Ok(b.add(
        format!("extract/{sname}/{source}"),
        Task::Extract(nodes::extract::ExtractTask {
            arch: "alexnet".into(),
            model: spec.config.clone(),
            seed,
            checkpoint,
            preprocess,
            taps: taps.to_vec(),
            images,
            batch_size,
            device,
        }),
        upstream,
        inputs,
        mem,
    ))
}

impl Plan {
    /// Nodes in an order where every node comes after its inputs.
    pub fn topo(&self) -> Vec<NodeIndex> {
        // Nodes are added after their inputs, so insertion order is topological
        // (and reads naturally: subject, rois, then each layer's chain).
        debug_assert!(!petgraph::algo::is_cyclic_directed(&self.graph));
        self.graph.node_indices().collect()
    }

    pub fn upstream(&self, ix: NodeIndex) -> Vec<(String, NodeIndex)> {
        let mut v: Vec<(String, NodeIndex)> = self
            .graph
            .edges_directed(ix, petgraph::Direction::Incoming)
            .map(|e| (e.weight().clone(), e.source()))
            .collect();
        v.sort();
        v
    }

    /// Is the node's entry in the cache, and if not, why not? Cheap: no hashing.
    pub fn freshness(&self, cache: &Cache, ix: NodeIndex) -> Freshness {
        let node = &self.graph[ix];
        if cache.present(&node.key) {
            return Freshness::Fresh;
        }
        match cache.last_components(&self.experiment.name, &node.id) {
            None => Freshness::Stale("never computed".into()),
            Some(old) => {
                let d = node.components.diff(&old);
                if d.is_empty() {
                    Freshness::Stale("entry was removed from the cache".into())
                } else {
                    Freshness::Stale(d.join("; "))
                }
            }
        }
    }

    /// Looks a node up by id, or lists near matches.
    pub fn find(&self, id: &str) -> Result<NodeIndex> {
        if let Some(ix) = self.by_id.get(id) {
            return Ok(*ix);
        }
        let mut near: Vec<&String> = self.by_id.keys().filter(|k| k.contains(id)).collect();
        near.sort();
        let help = if near.is_empty() {
            "run `runner plan FILE` to list node ids".to_string()
        } else {
            format!(
                "did you mean: {}",
                near.iter()
                    .take(8)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(Error::usage(format!("no node `{id}` in this experiment")).with_help(help))
    }
}

#[cfg(test)]
mod tests {
    use super::natural_key;

    #[test]
    fn natural_order_of_roi_names() {
        let mut v = vec!["ventral", "V10", "V2", "V1", "lateral", "V4"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["V1", "V2", "V4", "V10", "lateral", "ventral"]);
    }
}
