//! From a checked experiment to the plan: first the nodes every analysis
//! shares (nets runner trains, subjects, ROIs, extractions, and a feature
//! handle per subject × source × layer), then each analysis expands on top of
//! them, then the results table and the plots over every analysis's records.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use petgraph::graph::NodeIndex;

use crate::analyses::expand::{Expand, Handle, Scored, Shared, SharedRoi, SharedSubject};
use crate::config::{Experiment, FeatureKind, ModelArch, SubjectFormat, Training, Weights};
use crate::error::{Error, Result};
use crate::key::hash_file;
use crate::node::FeatureRef;
use crate::nodes;
use crate::nodes::split::SplitMethod;
use crate::npy;
use crate::nsd::{SubjectDir, VoxelTable};
use crate::plan::{Graph, Plan, natural_key};

pub fn compile(exp: &Experiment) -> Result<Plan> {
    let mut g = Graph::default();
    let mut warnings = Vec::new();

    // Nets runner trains come first: nothing upstream, and every extract of
    // the model reads the entry as its checkpoint.
    let mut train_nodes = HashMap::new();
    for m in &exp.models {
        if let Weights::Trained { seed, train } = &m.weights {
            let id = format!("train/{}", m.name);
            let ix = match (&m.arch, train) {
                (ModelArch::AlexNet(config), Training::Barcode(train)) => g.add(
                    id,
                    nodes::train::TrainTask {
                        arch: "alexnet".into(),
                        model: config.clone(),
                        seed: *seed,
                        train: train.clone(),
                    },
                    vec![],
                    BTreeMap::new(),
                ),
                (ModelArch::Sequential(config), Training::GratingTilt(train)) => g.add(
                    id,
                    nodes::train::GratingTrainTask {
                        arch: "sequential".into(),
                        model: config.clone(),
                        seed: *seed,
                        train: train.clone(),
                    },
                    vec![],
                    BTreeMap::new(),
                ),
                _ => unreachable!("the config pairs each task with its arch"),
            };
            train_nodes.insert(m.name.clone(), ix);
        }
    }

    let mut subjects = Vec::new();
    let mut images: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let mut check_images: HashMap<String, SubjectDir> = HashMap::new();
    // Lab08 subjects: rows of the image table (and of every feature file).
    let mut image_rows: HashMap<String, usize> = HashMap::new();
    // vim-1 subjects: the MATLAB variable of each stimulus file.
    let mut mat_vars: HashMap<String, Vec<String>> = HashMap::new();
    // npz_responses subjects: their node, which writes each stimulus's orientation.
    let mut stimulus_nodes: HashMap<String, NodeIndex> = HashMap::new();
    for s in &exp.subjects {
        if let SubjectFormat::NpzResponses(_) = &s.format {
            if !s.path.is_file() {
                return Err(exp
                    .source
                    .error(s.path_span.clone(), format!("no file {}", s.path.display()))
                    .with_help("path names the .npz itself (seed 004: W3D4_stringer_oribinned1.npz), relative to the experiment file; make a synthetic one with `runner synth --layout npz_responses DIR`"));
            }
        } else if !s.path.is_dir() {
            return Err(exp
                .source
                .error(s.path_span.clone(), format!("subject directory {} does not exist", s.path.display()))
                .with_help("paths are relative to the experiment file; make a synthetic subject with `runner synth DIR`"));
        }
        let (shared, table, imgs) = match &s.format {
            SubjectFormat::Nsd { .. } => {
                let (shared, table, dir) = nsd_subject(&mut g, exp, s, &mut warnings)?;
                let imgs = dir
                    .meta
                    .splits
                    .keys()
                    .map(|sp| dir.images_file(sp))
                    .collect();
                check_images.insert(s.name.clone(), dir);
                (shared, table, imgs)
            }
            SubjectFormat::Algonauts2023 => algonauts_subject(&mut g, s)?,
            SubjectFormat::Lab08 => {
                let (shared, table, rows) = lab08_subject(&mut g, s)?;
                image_rows.insert(s.name.clone(), rows);
                (shared, table, Vec::new())
            }
            SubjectFormat::Vim1 { id } => {
                let (shared, table, stimuli) = vim1_subject(&mut g, s, id)?;
                let (files, vars) = stimuli.into_iter().unzip();
                mat_vars.insert(s.name.clone(), vars);
                (shared, table, files)
            }
            SubjectFormat::NpzResponses(select) => {
                let (shared, table) = npz_subject(&mut g, s, select)?;
                stimulus_nodes.insert(s.name.clone(), shared.node);
                (shared, table, Vec::new())
            }
        };
        let mut shared = shared;
        for roi in &exp.rois {
            let task = nodes::roi::RoiTask {
                selector: roi.selector.clone(),
                min_ncsnr: roi.min_ncsnr,
                hemis: roi.hemis.clone(),
                n_voxels: table.len(),
            };
            if let Some(m) = roi.min_ncsnr
                && !shared.noise_ceiling
            {
                return Err(Error::usage(format!(
                    "ROI `{}` keeps voxels with ncsnr > {m}, but subject `{}` ({}) has no noise ceiling",
                    roi.name, s.name, shared.format
                ))
                .with_help("remove min_ncsnr from the ROI"));
            }
            let (idx, _) = task.select(&table).ok_or_else(|| {
                let sel = roi.selector.as_ref().expect("only selectors name columns");
                Error::data(
                    &s.path,
                    format!(
                        "ROI `{}` reads label column `{}`, which subject `{}` lacks",
                        roi.name, sel.column, s.name
                    ),
                )
                .with_help(if shared.format == crate::npz_responses::FORMAT {
                    format!(
                        "an npz_responses subject's label columns are the arrays it names in `labels` (now: {}); add labels = [\"{}\"] to [subjects.{}]",
                        if table.labels.is_empty() { "none".to_string() } else { table.labels.keys().cloned().collect::<Vec<_>>().join(", ") },
                        sel.column,
                        s.name
                    )
                } else {
                    format!(
                        "label columns present: {}",
                        table.labels.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
            })?;
            let empty = idx.is_empty().then(|| nodes::roi::why_empty(&task, &table));
            let rix = g.add(
                format!("roi/{}/{}", s.name, roi.name),
                task,
                vec![("subject".into(), shared.node)],
                BTreeMap::new(),
            );
            shared.rois.push(SharedRoi {
                name: roi.name.clone(),
                node: rix,
                n_voxels: idx.len(),
                empty,
            });
        }
        images.insert(s.name.clone(), imgs);
        subjects.push(shared);
    }

    let mut handles = Vec::new();
    for f in &exp.features {
        for sname in &f.subjects {
            let subject = subjects
                .iter()
                .find(|s| &s.name == sname)
                .expect("validated");
            let extract = match &f.kind {
                FeatureKind::Npy { .. } | FeatureKind::Hdf5 { .. } => None,
                FeatureKind::Extract {
                    model,
                    batch_size,
                    device,
                    gratings: true,
                    ..
                } => {
                    let Some(&stim) = stimulus_nodes.get(sname) else {
                        return Err(Error::usage(format!(
                            "features.{}: gratings are rendered at each stimulus's orientation, and subject `{sname}` ({}) has none",
                            f.name, subject.format
                        ))
                        .with_help("stimuli = \"gratings\" needs an npz_responses subject (its stimulus variable is the orientation)"));
                    };
                    Some(add_grating_extract(
                        &mut g,
                        &train_nodes,
                        exp,
                        stim,
                        sname,
                        &f.name,
                        model,
                        *batch_size,
                        *device,
                        &f.layers,
                    )?)
                }
                FeatureKind::Extract {
                    model,
                    preprocess,
                    batch_size,
                    device,
                    gratings: false,
                } => {
                    if let Some(dir) = check_images.get(sname) {
                        dir.check_images()?;
                    }
                    if images[sname].is_empty() {
                        let help = if subject.format == crate::vim1::FORMAT {
                            "put Stimuli.mat (stimTrn, stimVal) next to EstimatedResponses.mat, or use the project's precomputed features: kind = \"hdf5\", datasets = [\"train\", \"val\"]"
                        } else {
                            "use the lab's precomputed features: kind = \"hdf5\" (S1_<layer>_pca100.hdf5) or kind = \"npy\""
                        };
                        return Err(Error::usage(format!(
                            "features.{}: subject `{sname}` ({}) ships no images to run `{model}` on",
                            f.name, subject.format
                        ))
                        .with_help(help));
                    }
                    let vars = mat_vars.get(sname).cloned().unwrap_or_default();
                    let vim1 = *preprocess == crate::vocab::PreprocessKind::Vim1;
                    if vim1 != !vars.is_empty() {
                        return Err(Error::usage(if vim1 {
                            format!(
                                "features.{}: preprocess = \"vim1\" is for vim-1 stimuli (.mat); subject `{sname}` is {}",
                                f.name, subject.format
                            )
                        } else {
                            format!(
                                "features.{}: subject `{sname}`'s stimuli are vim-1 grayscale arrays; they need preprocess = \"vim1\"",
                                f.name
                            )
                        })
                        .with_help("preprocess = \"vim1\": grayscale + 0.5, tiled to 3 channels, bilinear resize to 224 (TF1), no normalisation, as the Kay V4 project"));
                    }
                    Some(add_extract(
                        &mut g,
                        &train_nodes,
                        exp,
                        &images[sname],
                        &vars,
                        sname,
                        &f.name,
                        model,
                        *preprocess,
                        *batch_size,
                        *device,
                        &f.layers,
                    )?)
                }
            };
            for (li, layer) in f.layers.iter().enumerate() {
                let (features, upstream, hash, width) = match (&f.kind, extract) {
                    (FeatureKind::Extract { model, .. }, Some(ex)) => {
                        let spec = exp
                            .models
                            .iter()
                            .find(|m| &m.name == model)
                            .expect("validated");
                        let file = Some(format!("{layer}.npy"));
                        let width = match &spec.arch {
                            ModelArch::AlexNet(config) => {
                                let module =
                                    crate::model::alexnet::resolve_tap(layer).expect("validated");
                                config.tap_width(module) as u64
                            }
                            ModelArch::Sequential(config) => {
                                config.tap_width(layer).expect("validated") as u64
                            }
                        };
                        (
                            FeatureRef {
                                upstream_file: file,
                                path: PathBuf::new(),
                            },
                            Some(ex),
                            None,
                            width,
                        )
                    }
                    (FeatureKind::Hdf5 { .. }, _) | (FeatureKind::Npy { .. }, _)
                        if image_rows.contains_key(sname)
                            || matches!(f.kind, FeatureKind::Hdf5 { .. }) =>
                    {
                        let file = f.layer_file(&exp.base_dir, sname, layer);
                        let rows = image_rows.get(sname).copied();
                        let (ix, width) =
                            import_layer(&mut g, exp, f, &file, layer, subject, rows)?;
                        (
                            FeatureRef {
                                upstream_file: Some("features.npy".into()),
                                path: PathBuf::new(),
                            },
                            Some(ix),
                            None,
                            width,
                        )
                    }
                    _ => {
                        let file = f.layer_file(&exp.base_dir, sname, layer);
                        let (width, hash) = npy_layer(exp, f, &file, layer, subject)?;
                        (
                            FeatureRef {
                                upstream_file: None,
                                path: file,
                            },
                            None,
                            Some(hash),
                            width,
                        )
                    }
                };
                let handle = Handle {
                    subject: sname.clone(),
                    source: f.name.clone(),
                    layer: layer.clone(),
                    layer_index: li,
                    features,
                    upstream,
                    hash,
                    width,
                };
                handles.push(handle);
            }
        }
    }
    let shared = Shared { subjects, handles };

    let mut scored = Vec::new();
    let mut outputs = Vec::new();
    let mut artifacts = Vec::new();
    for (name, analysis) in &exp.analyses {
        let mut cx = Expand {
            name,
            g: &mut g,
            shared: &shared,
            scored: Vec::new(),
            artifacts: Vec::new(),
            outputs: Vec::new(),
            warnings: Vec::new(),
        };
        analysis.expand(&mut cx)?;
        scored.extend(cx.scored);
        artifacts.extend(cx.artifacts.into_iter().map(|a| (name.clone(), a)));
        outputs.extend(cx.outputs);
        warnings.extend(cx.warnings);
    }
    scored.sort_by(|a, b| {
        let k = |s: &Scored| {
            (
                s.labels.analysis.clone(),
                s.labels.subject.clone(),
                s.labels.source.clone(),
                s.labels.layer_index,
                natural_key(&s.sort_roi),
            )
        };
        k(a).cmp(&k(b))
    });
    let upstream: Vec<(String, NodeIndex)> = scored
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("score:{i:05}"), s.node))
        .collect();
    let table = g.add(
        "table".into(),
        nodes::table::TableTask {
            records: scored.iter().map(|s| s.labels.clone()).collect(),
        },
        upstream,
        BTreeMap::new(),
    );
    let mut all_outputs: Vec<(NodeIndex, String)> = train_nodes
        .iter()
        .map(|(name, &ix)| (ix, format!("{name}_")))
        .collect();
    all_outputs.sort();
    all_outputs.push((table, String::new()));
    all_outputs.extend(outputs);

    for p in &exp.plots {
        let ix = nodes::plot::add(&mut g, exp, p, &scored, table, &artifacts);
        if !all_outputs.iter().any(|(o, _)| *o == ix) {
            all_outputs.push((ix, String::new()));
        }
    }

    Ok(Plan {
        experiment: exp.clone(),
        graph: g.graph,
        by_id: g.by_id,
        outputs: all_outputs,
        warnings,
    })
}

/// An NSD-layout subject: its node, its kept voxels' table and its directory.
fn nsd_subject(
    g: &mut Graph,
    exp: &Experiment,
    s: &crate::config::Subject,
    warnings: &mut Vec<String>,
) -> Result<(SharedSubject, VoxelTable, SubjectDir)> {
    let SubjectFormat::Nsd {
        train_splits,
        test_splits,
        voxel_mask,
        min_ncsnr,
    } = &s.format
    else {
        unreachable!()
    };
    let _ = exp;
    let dir = SubjectDir::open(&s.path)?;
    let all_splits: Vec<String> = dir.meta.splits.keys().cloned().collect();
    let asked: Vec<String> = train_splits.iter().chain(test_splits).cloned().collect();
    dir.check_splits(&asked)?;
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
    dir.check_brain(&all_splits, &s.hemis, &per_hemi)?;
    let brain = dir.brain_inputs(&all_splits, &s.hemis);
    if let Some(f) = brain.iter().find(|f| !f.is_file()) {
        return Err(Error::data(f, "missing file in the subject directory"));
    }
    let inputs = hashed_inputs(&brain, &dir.dir)?;
    let task = nodes::subject::SubjectTask {
        dir: s.path.clone(),
        splits: all_splits.clone(),
        hemis: s.hemis.clone(),
        voxel_mask: voxel_mask.clone(),
        min_ncsnr: *min_ncsnr,
        sizes: (dir.n_images(), table.len(), dir.meta.repeats),
    };
    let kept = task.kept_voxels(&table, &dir)?;
    let kept_table = table.select(&kept);
    // Stimulus order is subject.json's split order.
    let mut offsets = HashMap::new();
    let mut start = 0;
    for (name, &n) in &dir.meta.splits {
        offsets.insert(name.clone(), (start, n));
        start += n;
    }
    let ranges = |splits: &[String]| splits.iter().map(|sp| offsets[sp]).collect();
    let given = SplitMethod::Given {
        fit: ranges(train_splits),
        score: ranges(test_splits),
    };
    let ix = g.add(format!("subject/{}", s.name), task, vec![], inputs);
    let n = dir.n_images();
    Ok((
        SharedSubject {
            name: s.name.clone(),
            node: ix,
            n_responses: n,
            n_stimuli: n,
            n_voxels: kept.len(),
            noise_ceiling: true,
            hemis: s.hemis.clone(),
            given: Some(given),
            rois: Vec::new(),
            format: "runner-nsd-v1",
            folder: folder_of(&s.path),
            fsaverage: false,
            volume: false,
            nc_given: false,
            flag_counts: BTreeMap::new(),
        },
        kept_table,
        dir,
    ))
}

/// An Algonauts 2023 subject directory, read as the challenge ships it.
fn algonauts_subject(
    g: &mut Graph,
    s: &crate::config::Subject,
) -> Result<(SharedSubject, VoxelTable, Vec<PathBuf>)> {
    let subj = crate::algonauts::AlgonautsSubject::open(&s.path)?;
    let have: Vec<&str> = subj.hemis.iter().map(|h| h.name.as_str()).collect();
    if let Some(h) = s.hemis.iter().find(|h| !have.contains(&h.as_str())) {
        return Err(Error::data(
            &s.path,
            format!(
                "subject `{}` asks for hemisphere `{h}`; this subject has {}",
                s.name,
                have.join(", ")
            ),
        ));
    }
    let inputs = hashed_inputs(&subj.input_files(), &s.path)?;
    let table = subj.voxel_table();
    let keep: Vec<usize> = (0..table.len())
        .filter(|&i| s.hemis.contains(&table.hemi[i]))
        .collect();
    let table = table.select(&keep);
    let n = subj.train_images.len();
    let task = nodes::subject::AlgonautsTask {
        format: crate::algonauts::FORMAT,
        dir: s.path.clone(),
        hemis: s.hemis.clone(),
        sizes: (n, table.len()),
    };
    let ix = g.add(format!("subject/{}", s.name), task, vec![], inputs);
    let images: Vec<PathBuf> = subj
        .train_images
        .iter()
        .chain(&subj.test_images)
        .cloned()
        .collect();
    Ok((
        SharedSubject {
            name: s.name.clone(),
            node: ix,
            n_responses: n,
            n_stimuli: images.len(),
            n_voxels: table.len(),
            noise_ceiling: false,
            hemis: s.hemis.clone(),
            given: None,
            rois: Vec::new(),
            format: "algonauts2023",
            folder: folder_of(&s.path),
            fsaverage: true,
            volume: false,
            nc_given: false,
            flag_counts: BTreeMap::new(),
        },
        table,
        images,
    ))
}

/// A Lab08 subject directory, read as the lab distributes it; with the rows
/// of its image table.
fn lab08_subject(
    g: &mut Graph,
    s: &crate::config::Subject,
) -> Result<(SharedSubject, VoxelTable, usize)> {
    let subj = crate::lab08::Lab08Subject::open(&s.path)?;
    let inputs = hashed_inputs(&subj.input_files(), &s.path)?;
    let table = subj.voxel_table();
    let (rows, v) = subj.betas_shape;
    let n = subj.responding_rows().len();
    let task = nodes::subject::Lab08Task {
        format: crate::lab08::FORMAT,
        dir: s.path.clone(),
        sizes: (rows, v),
    };
    let ix = g.add(format!("subject/{}", s.name), task, vec![], inputs);
    let flag_counts: BTreeMap<String, (usize, usize)> = subj
        .images
        .flags
        .iter()
        .map(|(k, f)| {
            let on = f.iter().filter(|x| **x).count();
            (k.clone(), (on, f.len() - on))
        })
        .collect();
    let seed = subj.default_seed().unwrap_or(crate::lab08::SEEDS[0]);
    let given = flag_counts
        .get("shared1000")
        .map(|&sizes| SplitMethod::ValHoldout {
            column: "shared1000".into(),
            holdout_fraction: 0.1,
            seed,
            sizes,
        });
    Ok((
        SharedSubject {
            name: s.name.clone(),
            node: ix,
            n_responses: n,
            n_stimuli: n,
            n_voxels: table.len(),
            noise_ceiling: false,
            hemis: s.hemis.clone(),
            given,
            rois: Vec::new(),
            format: crate::lab08::FORMAT,
            folder: folder_of(&s.path),
            fsaverage: false,
            volume: true,
            nc_given: true,
            flag_counts,
        },
        table,
        rows,
    ))
}

/// A vim-1 subject of an `EstimatedResponses.mat`; with its stimulus files
/// (file, variable), training then validation.
fn vim1_subject(
    g: &mut Graph,
    s: &crate::config::Subject,
    id: &str,
) -> Result<(SharedSubject, VoxelTable, Vec<(PathBuf, String)>)> {
    let subj = crate::vim1::Vim1Subject::open(&s.path, id)?;
    let inputs = hashed_inputs(&subj.input_files(), &s.path)?;
    let table = subj.voxel_table();
    let n = subj.n_train + subj.n_val;
    let task = nodes::subject::Vim1Task {
        format: crate::vim1::FORMAT,
        id: id.to_string(),
        file: subj.responses.clone(),
        sizes: (n, table.len()),
    };
    let ix = g.add(format!("subject/{}", s.name), task, vec![], inputs);
    let stimuli = subj
        .stimuli
        .as_ref()
        .map(|st| st.all().cloned().collect())
        .unwrap_or_default();
    Ok((
        SharedSubject {
            name: s.name.clone(),
            node: ix,
            n_responses: n,
            n_stimuli: n,
            // Before the NaN rule (the plan does not read the responses).
            n_voxels: table.len(),
            noise_ceiling: false,
            hemis: s.hemis.clone(),
            given: Some(SplitMethod::Given {
                fit: vec![(0, subj.n_train)],
                score: vec![(subj.n_train, subj.n_val)],
            }),
            rois: Vec::new(),
            format: crate::vim1::FORMAT,
            folder: folder_of(&s.path),
            fsaverage: false,
            volume: false,
            nc_given: false,
            flag_counts: BTreeMap::new(),
        },
        table,
        stimuli,
    ))
}

/// An import node for a precomputed file (HDF5, or `.npy` of a Lab08
/// subject, whose rows are its image table's); returns it and the width.
fn import_layer(
    g: &mut Graph,
    exp: &Experiment,
    f: &crate::config::FeatureSource,
    file: &std::path::Path,
    layer: &str,
    subject: &SharedSubject,
    image_rows: Option<usize>,
) -> Result<(NodeIndex, u64)> {
    let (span, datasets) = match &f.kind {
        FeatureKind::Hdf5 {
            path_span,
            datasets,
            ..
        } => (path_span.clone(), datasets.clone()),
        FeatureKind::Npy { dir_span, .. } => (dir_span.clone(), vec![]),
        FeatureKind::Extract { .. } => unreachable!("extracts are not imported"),
    };
    if !file.is_file() {
        return Err(exp
            .source
            .error(
                span,
                format!(
                    "features.{}: no file {} for layer `{layer}`",
                    f.name,
                    file.display()
                ),
            )
            .with_help(
                "paths are relative to the experiment file; {subject} and {layer} are replaced",
            ));
    }
    // Rows and flattened width of each dataset (C order over the rest).
    let mut shapes = Vec::new();
    if datasets.is_empty() {
        let shape = npy::read_header(file)
            .map_err(|e| Error::data(file, format!("not a readable .npy: {e}")))?
            .0;
        shapes.push((String::new(), shape));
    }
    for d in &datasets {
        shapes.push((format!("dataset `{d}` "), crate::hdf5::shape(file, d)?));
    }
    let mut rows = 0;
    let mut width = None;
    for (what, shape) in &shapes {
        let w: usize = shape.iter().skip(1).product();
        if shape.len() < 2 || w == 0 {
            return Err(Error::data(
                file,
                format!("{what}has shape {shape:?}; expected images × features"),
            ));
        }
        if width.is_some_and(|x| x != w) {
            return Err(Error::data(
                file,
                format!(
                    "{what}has {w} features per image but {}has {}",
                    shapes[0].0,
                    width.unwrap()
                ),
            ));
        }
        width = Some(w);
        rows += shape[0];
    }
    let width = width.expect("one dataset at least");
    let what = if datasets.len() > 1 {
        format!("datasets {} ", datasets.join(" + "))
    } else {
        shapes[0].0.clone()
    };
    let want = image_rows.unwrap_or(subject.n_stimuli);
    if rows != want {
        return Err(Error::data(
            file,
            format!(
                "{what}has {rows} rows but subject `{}` has {want} images",
                subject.name
            ),
        )
        .with_help(if image_rows.is_some() {
            "rows must be the images of the subject's image table (S<n>_image_info.csv), in its order"
        } else {
            "rows must be every image of the subject in stimulus order"
        }));
    }
    let mut inputs = BTreeMap::new();
    inputs.insert("features".to_string(), hash_file(file)?);
    let upstream = if image_rows.is_some() {
        vec![("subject".to_string(), subject.node)]
    } else {
        vec![]
    };
    let ix = g.add(
        format!("import/{}/{}/{layer}", subject.name, f.name),
        nodes::import::ImportTask {
            path: file.to_path_buf(),
            datasets,
            drop_rows: image_rows.is_some(),
            sizes: (rows, width),
        },
        upstream,
        inputs,
    );
    Ok((ix, width as u64))
}

/// Checks a precomputed feature file against the subject; returns its width and blake3.
fn npy_layer(
    exp: &Experiment,
    f: &crate::config::FeatureSource,
    file: &std::path::Path,
    layer: &str,
    subject: &SharedSubject,
) -> Result<(u64, String)> {
    let FeatureKind::Npy { dir_span, .. } = &f.kind else {
        unreachable!("only npy sources read files")
    };
    if !file.is_file() {
        return Err(exp
            .source
            .error(
                dir_span.clone(),
                format!(
                    "features.{}: no file {} for layer `{layer}`",
                    f.name,
                    file.display()
                ),
            )
            .with_help(
                "each layer needs <dir>/<layer>.npy, rows = the subject's images in stimulus order",
            ));
    }
    let (shape, _) = npy::read_header(file)
        .map_err(|e| Error::data(file, format!("not a readable .npy: {e}")))?;
    let rows_in_file = shape.first().copied().unwrap_or(0);
    if rows_in_file != subject.n_stimuli {
        return Err(Error::data(
            file,
            format!(
                "has {rows_in_file} rows but subject `{}` has {} images",
                subject.name, subject.n_stimuli
            ),
        )
        .with_help("rows must be every image of the subject in stimulus order (NSD layout: splits stacked in subject.json order; Algonauts: training then test images, sorted by name)"));
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

/// One extract node: a model's taps on a subject's images (stimulus order).
#[allow(clippy::too_many_arguments)]
fn add_extract(
    g: &mut Graph,
    train_nodes: &HashMap<String, NodeIndex>,
    exp: &Experiment,
    images: &[PathBuf],
    mat_vars: &[String],
    sname: &str,
    source: &str,
    model: &str,
    preprocess: crate::vocab::PreprocessKind,
    batch_size: usize,
    device: crate::vocab::DeviceChoice,
    taps: &[String],
) -> Result<NodeIndex> {
    let spec = exp
        .models
        .iter()
        .find(|m| m.name == model)
        .expect("validated");
    let mut inputs = BTreeMap::new();
    let base = exp
        .subjects
        .iter()
        .find(|s| s.name == sname)
        .map(|s| s.path.clone());
    for f in images {
        let rel = base
            .as_ref()
            .and_then(|b| f.strip_prefix(b).ok())
            .unwrap_or(f)
            .to_string_lossy()
            .to_string();
        inputs.insert(rel, hash_file(f)?);
    }
    let mut upstream = vec![];
    let (seed, checkpoint) = extract_weights(
        exp,
        train_nodes,
        model,
        &spec.weights,
        &mut upstream,
        &mut inputs,
    )?;
    let ModelArch::AlexNet(config) = &spec.arch else {
        return Err(Error::usage(format!(
            "features.{source}: model `{model}` is a sequential net; it runs on gratings (stimuli = \"gratings\")"
        )));
    };
    Ok(g.add(
        format!("extract/{sname}/{source}"),
        nodes::extract::ExtractTask {
            arch: "alexnet".into(),
            model: config.clone(),
            seed,
            checkpoint,
            preprocess,
            taps: taps.to_vec(),
            images: images.to_vec(),
            mat_vars: mat_vars.to_vec(),
            batch_size,
            device,
        },
        upstream,
        inputs,
    ))
}

/// A subject node's inputs: each file's blake3 by its path in the subject's
/// directory (so that moving the directory re-runs nothing).
fn hashed_inputs(files: &[PathBuf], base: &std::path::Path) -> Result<BTreeMap<String, String>> {
    let mut inputs = BTreeMap::new();
    for f in files {
        let rel = f
            .strip_prefix(base)
            .unwrap_or(f)
            .to_string_lossy()
            .to_string();
        inputs.insert(rel, hash_file(f)?);
    }
    Ok(inputs)
}

fn folder_of(p: &std::path::Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// An npz_responses subject: its node and its neurons' table.
fn npz_subject(
    g: &mut Graph,
    s: &crate::config::Subject,
    select: &crate::config::NpzSelect,
) -> Result<(SharedSubject, VoxelTable)> {
    let subj = crate::npz_responses::NpzSubject::open(&s.path, select)?;
    let mut inputs = BTreeMap::new();
    inputs.insert("responses".to_string(), hash_file(&s.path)?);
    let n = subj.n_stimuli();
    let task = nodes::subject::NpzResponsesTask {
        format: crate::npz_responses::FORMAT,
        select: select.clone(),
        file: s.path.clone(),
        sizes: (subj.rows, subj.n_neurons),
    };
    let ix = g.add(format!("subject/{}", s.name), task, vec![], inputs);
    Ok((
        SharedSubject {
            name: s.name.clone(),
            node: ix,
            n_responses: n,
            n_stimuli: n,
            n_voxels: subj.n_neurons,
            noise_ceiling: false,
            hemis: s.hemis.clone(),
            given: None,
            rois: Vec::new(),
            format: crate::npz_responses::FORMAT,
            folder: folder_of(&s.path),
            fsaverage: false,
            volume: false,
            nc_given: false,
            flag_counts: BTreeMap::new(),
        },
        subj.voxel_table(),
    ))
}

/// The weights of an extraction: a random-init seed, a checkpoint (hashed
/// into `inputs`), or the model's train node (an upstream `weights`).
fn extract_weights(
    exp: &Experiment,
    train_nodes: &HashMap<String, NodeIndex>,
    model: &str,
    weights: &Weights,
    upstream: &mut Vec<(String, NodeIndex)>,
    inputs: &mut BTreeMap<String, String>,
) -> Result<(Option<u64>, Option<PathBuf>)> {
    Ok(match weights {
        Weights::Random { seed } => (Some(*seed), None),
        Weights::Trained { .. } => {
            upstream.push(("weights".to_string(), train_nodes[model]));
            (None, None)
        }
        Weights::Checkpoint { path, span } => {
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
    })
}

/// One extract node of a sequential net on gratings at a subject's
/// stimulus orientations (read from the subject node).
#[allow(clippy::too_many_arguments)]
fn add_grating_extract(
    g: &mut Graph,
    train_nodes: &HashMap<String, NodeIndex>,
    exp: &Experiment,
    subject_node: NodeIndex,
    sname: &str,
    source: &str,
    model: &str,
    batch_size: usize,
    device: crate::vocab::DeviceChoice,
    taps: &[String],
) -> Result<NodeIndex> {
    let spec = exp
        .models
        .iter()
        .find(|m| m.name == model)
        .expect("validated");
    let ModelArch::Sequential(config) = &spec.arch else {
        unreachable!("the config sends only sequential nets to gratings")
    };
    let grating = crate::gratings::GratingSpec::default();
    let (h, w) = grating.size();
    if config.input != [1, h, w] {
        return Err(Error::usage(format!(
            "features.{source}: gratings are 1 × {h} × {w} but model `{model}` takes {}",
            config.input.map(|x| x.to_string()).join(" × ")
        ))
        .with_help(format!("set input = [1, {h}, {w}] in [models.{model}]")));
    }
    let mut upstream = vec![("subject".to_string(), subject_node)];
    let mut inputs = BTreeMap::new();
    let (seed, checkpoint) = extract_weights(
        exp,
        train_nodes,
        model,
        &spec.weights,
        &mut upstream,
        &mut inputs,
    )?;
    Ok(g.add(
        format!("extract/{sname}/{source}"),
        nodes::extract_gratings::GratingExtractTask {
            arch: "sequential".into(),
            model: config.clone(),
            seed,
            checkpoint,
            grating,
            taps: taps.to_vec(),
            batch_size,
            device,
        },
        upstream,
        inputs,
    ))
}
