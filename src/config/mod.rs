//! Stage two: a checked experiment. Paths are resolved against the TOML file's
//! directory, names are checked, references between tables are resolved, and
//! every problem is reported at its `file:line:col`.

mod raw;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_spanned::Spanned;

use crate::error::{IoContext, Result};
pub use crate::source::Source;
use crate::vocab::{DeviceChoice, ImageFormat, LabelMatch, Metric, PreprocessKind, Selector};

#[derive(Debug, Clone)]
pub struct Experiment {
    pub source: Source,
    /// The experiment file's directory (absolute): relative paths start here.
    pub base_dir: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// Cache directory from the file, if it names one (the CLI may override).
    pub cache_dir: Option<PathBuf>,
    pub results_dir: PathBuf,
    pub subjects: Vec<Subject>,
    pub models: Vec<ModelSpec>,
    pub features: Vec<FeatureSource>,
    pub rois: Vec<Roi>,
    /// `[analyses.NAME]`, in file order.
    pub analyses: Vec<(String, std::sync::Arc<dyn crate::analyses::Analysis>)>,
    pub plots: Vec<PlotSpec>,
}

#[derive(Debug, Clone)]
pub struct Subject {
    pub name: String,
    pub path: PathBuf,
    pub path_span: Range<usize>,
    pub format: SubjectFormat,
    pub hemis: Vec<String>,
}

/// The layout of a subject's directory, and what only that layout has.
#[derive(Debug, Clone)]
pub enum SubjectFormat {
    /// runner's NSD layout (HW2's data; see README).
    Nsd {
        train_splits: Vec<String>,
        test_splits: Vec<String>,
        voxel_mask: Selector,
        /// Voxels with ncsnr <= min_ncsnr are dropped (NSD: ncsnr > 0).
        min_ncsnr: f64,
    },
    /// The Algonauts 2023 challenge's subject directory, as distributed.
    Algonauts2023,
    /// Lab08's NSD volume files (`S<n>_betas_avg_bigmask.hdf5`,
    /// `S<n>_image_info.csv`, `S<n>_voxel_roi_info.npy`), as the lab ships them.
    Lab08,
    /// vim-1 (Kay et al. 2008) as CRCNS distributes it: subject `id` (`S1`)
    /// of `EstimatedResponses.mat`, stimuli in `Stimuli.mat`.
    Vim1 { id: String },
    /// One `.npz` of responses (stimuli × neurons) and a stimulus variable
    /// (Stringer et al.'s `W3D4_stringer_oribinned1.npz`: `resp`, `stimuli`);
    /// the neurons are the units, every one in one group.
    NpzResponses(NpzSelect),
}

/// Which arrays of an `.npz` and which of its rows, as seed 004's
/// `load_data`: bin, then keep a stimulus range, then shift the stimulus.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NpzSelect {
    pub responses: String,
    pub stimulus: String,
    pub bin_width: Option<f64>,
    pub stimulus_min: Option<f64>,
    pub stimulus_max: Option<f64>,
    pub stimulus_offset: f64,
    /// Per-neuron label arrays (ROI columns).
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FeatureSource {
    /// Shown as `model` in tables and plots.
    pub name: String,
    pub kind: FeatureKind,
    pub layers: Vec<String>,
    pub subjects: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum FeatureKind {
    /// One `<layer>.npy` per layer, rows = the subject's images in split order.
    Npy { dir: String, dir_span: Range<usize> },
    /// One HDF5 file per layer (`path` with `{subject}` and `{layer}`), the
    /// matrix in `datasets`, stacked by rows in their order (Lab08:
    /// `S1_Conv1_pca100.hdf5`, `features`; Kay V4:
    /// `alexnet_conv3_features.h5`, `train` then `val`). N-D datasets are
    /// flattened in C order (NHWC conv maps: h, w, c).
    Hdf5 {
        path: String,
        path_span: Range<usize>,
        datasets: Vec<String>,
    },
    /// Activations of a `[models.*]` net on the subject's images; layers are taps.
    Extract {
        model: String,
        preprocess: PreprocessKind,
        batch_size: usize,
        device: DeviceChoice,
        /// Seed 004: gratings rendered at each stimulus's orientation instead
        /// of image files.
        gratings: bool,
    },
}

/// A net declared in `[models.NAME]`.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub arch: ModelArch,
    pub weights: Weights,
}

#[derive(Debug, Clone)]
pub enum ModelArch {
    AlexNet(crate::model::alexnet::AlexNetConfig),
    /// A small net declared layer by layer (seed 004's grating CNN).
    Sequential(crate::model::sequential::SequentialConfig),
}

/// What runner trains a net on.
#[derive(Debug, Clone)]
pub enum Training {
    /// HW2's Barcode task (AlexNet).
    Barcode(crate::train::spec::TrainSpec),
    /// Seed 004's: is a grating tilted right of vertical?
    GratingTilt(crate::train::grating::GratingTrainSpec),
}

#[derive(Debug, Clone)]
pub enum Weights {
    Random {
        seed: u64,
    },
    Checkpoint {
        path: PathBuf,
        span: Range<usize>,
    },
    /// Trained by runner from a random init with this seed.
    Trained {
        seed: u64,
        train: Training,
    },
}

impl FeatureSource {
    /// The file holding `layer` for `subject`, resolved against the experiment file.
    pub fn layer_file(&self, base: &Path, subject: &str, layer: &str) -> PathBuf {
        match &self.kind {
            FeatureKind::Npy { dir, .. } => normalize(
                &base
                    .join(dir.replace("{subject}", subject))
                    .join(format!("{layer}.npy")),
            ),
            FeatureKind::Hdf5 { path, .. } => {
                normalize(&base.join(path.replace("{subject}", subject).replace("{layer}", layer)))
            }
            // Extracted taps live in the extract node's cache entry, by this name.
            FeatureKind::Extract { .. } => PathBuf::from(format!("{layer}.npy")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Roi {
    pub name: String,
    /// None: every voxel (`all = true`).
    pub selector: Option<Selector>,
    /// HW2 keeps voxels with ncsnr > 0.2 in every ROI.
    pub min_ncsnr: Option<f64>,
    pub hemis: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlotKind {
    /// HW2: one grid per feature source, layers × ROIs.
    Heatmap,
    /// The Algonauts devkit: ROI aggregates, left vs right hemisphere.
    RoiBars,
    /// Kay V4: mean ± std over voxels per set (train, test, validation),
    /// analyses side by side.
    SetBars,
    /// Kay V4: predicted vs measured ROI-mean response per stimulus.
    Scatter,
    /// Seed 004: the neural RDM and every layer's, side by side on one scale.
    Rdms,
    /// Seed 004: each layer's RDM similarity to the neural RDM, with its interval.
    RsaBars,
    /// Seed 004: response against orientation, neurons and model units.
    TuningCurves,
}

#[derive(Debug, Clone)]
pub struct PlotSpec {
    pub kind: PlotKind,
    pub analysis: String,
    pub metric: Metric,
    pub formats: Vec<ImageFormat>,
    pub title: Option<String>,
    /// Explicit column order; by default ROIs are sorted by name (V1 < V2 < V10 < ventral),
    /// so that reordering `[rois.*]` tables changes no key.
    pub rois: Option<Vec<String>>,
    /// set_bars: the analyses drawn side by side.
    pub analyses: Vec<String>,
    /// set_bars: the split drawn (None: the first, "0", or the only one).
    pub split: Option<String>,
    /// scatter: the set drawn.
    pub set: String,
    /// rsa_bars: the comparison drawn (`rdm_pearson`, …).
    pub measure: Option<String>,
}

/// Reads and checks an experiment file.
pub fn load(path: &Path) -> Result<Experiment> {
    let len = std::fs::metadata(path).at(path)?.len();
    if len > MAX_FILE_BYTES {
        // Parsing a 20 MB grid alone takes seconds and hundreds of MB.
        return Err(crate::error::Error::data(
            path,
            format!(
                "is {len} bytes; an experiment file is at most {MAX_FILE_BYTES} (they are a few KB)"
            ),
        )
        .with_help("generate long lists (α grids, layers) with fewer values"));
    }
    let text = std::fs::read_to_string(path).at(path)?;
    parse(path, text)
}

pub fn parse(path: &Path, text: String) -> Result<Experiment> {
    let src = Source::new(path, text);
    let raw: raw::RawExperiment = toml::from_str(&src.text).map_err(|e| src.from_toml(e))?;
    // Analyses are parsed again, each by its kind, from the same text with
    // its spans (the first pass only checked the file is TOML).
    let doc = toml::de::DeTable::parse(&src.text).map_err(|e| src.from_toml(e))?;
    let analyses: Vec<(String, toml::Spanned<toml::de::DeValue<'_>>)> = doc
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref() == "analyses")
        .and_then(|(_, v)| v.get_ref().as_table().cloned())
        .map(|t| {
            t.into_iter()
                .map(|(k, v)| (k.into_inner().to_string(), v))
                .collect()
        })
        .unwrap_or_default();
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let base = std::path::absolute(&base).at(&base)?;
    let base = normalize(&base);
    Validator { src: &src, base }.experiment(raw, analyses)
}

/// `a/b/../c` → `a/c`, lexically (the directories need not exist yet), so
/// that paths in messages read the way the user would write them.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

struct Validator<'a> {
    src: &'a Source,
    base: PathBuf,
}

/// An experiment file is a few KB; beyond this it is not one.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Names become file-name parts (results, plots): at most this many bytes.
pub const MAX_NAME_LEN: usize = 64;

pub fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
}

impl Validator<'_> {
    /// A path from the file, relative to the file's directory.
    fn resolve(&self, p: &Path) -> PathBuf {
        normalize(&self.base.join(p))
    }

    fn err<T>(&self, span: Range<usize>, msg: impl Into<String>) -> Result<T> {
        Err(self.src.error(span, msg))
    }

    fn check_name(&self, what: &str, name: &str, span: Range<usize>) -> Result<()> {
        if name_ok(name) {
            Ok(())
        } else {
            Err(self
                .src
                .error(
                    span,
                    format!("{what} name `{name}` is not usable in file names"),
                )
                .with_help(format!(
                    "use letters, digits, `_`, `-` and `.` only, at most {MAX_NAME_LEN} characters, not starting with `.`"
                )))
        }
    }

    fn experiment(
        &self,
        raw: raw::RawExperiment,
        analyses: Vec<(String, toml::Spanned<toml::de::DeValue<'_>>)>,
    ) -> Result<Experiment> {
        if let Some(old) = raw.fit.as_ref().or(raw.score.as_ref()) {
            return Err(self.old_fit_score(old.span(), raw.fit.as_ref(), raw.score.as_ref()));
        }
        let name = raw.experiment.name.get_ref().clone();
        self.check_name("experiment", &name, raw.experiment.name.span())?;
        let cache_dir = raw.experiment.cache.map(|p| self.resolve(p.get_ref()));
        let results_dir = raw
            .experiment
            .results
            .map(|p| self.resolve(p.get_ref()))
            .unwrap_or_else(|| self.base.join("results").join(&name));

        if raw.subjects.is_empty() {
            return self
                .err(0..0, "the experiment declares no subject")
                .map_err(|e| e.with_help("add a [subjects.NAME] table with `path = \"...\"`"));
        }
        let subjects = raw
            .subjects
            .into_iter()
            .map(|(n, s)| self.subject(n, s))
            .collect::<Result<Vec<_>>>()?;
        let subject_names: Vec<String> = subjects.iter().map(|s| s.name.clone()).collect();
        let models = raw
            .models
            .into_iter()
            .map(|(n, m)| self.model(n, m))
            .collect::<Result<Vec<_>>>()?;

        if raw.features.is_empty() {
            return self
                .err(0..0, "the experiment declares no feature source")
                .map_err(|e| e.with_help("add a [features.NAME] table with kind = \"npy\""));
        }
        let features = raw
            .features
            .into_iter()
            .map(|(n, f)| self.features(n, f, &subject_names, &models))
            .collect::<Result<Vec<_>>>()?;

        if raw.rois.is_empty() {
            return self
                .err(0..0, "the experiment declares no ROI")
                .map_err(|e| e.with_help("add a [rois.NAME] table with column, labels and match"));
        }
        let rois = raw
            .rois
            .into_iter()
            .map(|(n, r)| self.roi(n, r))
            .collect::<Result<Vec<_>>>()?;

        if analyses.is_empty() {
            return self.err(0..0, "the experiment declares no analysis").map_err(|e| {
                e.with_help("add an [analyses.NAME] table with kind = \"ridge_cv\" (HW2) or \"linear\" (Algonauts)")
            });
        }
        let cx = crate::analyses::ParseCx {
            src: self.src,
            features: features.iter().map(|f| f.name.clone()).collect(),
            rois: rois.iter().map(|r| r.name.clone()).collect(),
            subjects: subject_names.clone(),
        };
        let mut parsed = Vec::new();
        for (name, value) in analyses {
            self.check_name("analysis", &name, value.span())?;
            let a = crate::analyses::parse(&name, value, &cx)?;
            parsed.push((name, a));
        }
        let plots = raw
            .plots
            .into_iter()
            .map(|p| self.plot(p, &parsed, &rois))
            .collect::<Result<Vec<_>>>()?;

        Ok(Experiment {
            source: self.src.clone(),
            base_dir: self.base.clone(),
            name,
            description: raw.experiment.description,
            cache_dir,
            results_dir,
            subjects,
            models,
            features,
            rois,
            analyses: parsed,
            plots,
        })
    }

    fn strings(
        &self,
        v: Option<Spanned<Vec<String>>>,
        default: &[&str],
        what: &str,
    ) -> Result<Vec<String>> {
        match v {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(v) => {
                let span = v.span();
                let v = v.into_inner();
                if v.is_empty() {
                    return self.err(span, format!("{what} must not be empty"));
                }
                // A split named twice would enter the training set twice (and
                // leak into the leave-one-out choice of α).
                if let Some(d) = v
                    .iter()
                    .enumerate()
                    .find_map(|(i, d)| v[..i].contains(d).then_some(d))
                {
                    return self.err(span, format!("{what} names `{d}` twice"));
                }
                Ok(v)
            }
        }
    }

    /// Refuses the keys given (`Some(span)`) that a subject format has no use for.
    fn not_for(
        &self,
        format: &str,
        keys: &[(&str, Option<Range<usize>>)],
        help: &str,
    ) -> Result<()> {
        match keys.iter().find_map(|(k, sp)| sp.clone().map(|sp| (k, sp))) {
            Some((key, sp)) => Err(self
                .src
                .error(sp, format!("`{key}` does not apply to format \"{format}\""))
                .with_help(help)),
            None => Ok(()),
        }
    }

    fn subject(&self, name: String, raw: Spanned<raw::RawSubject>) -> Result<Subject> {
        let span = raw.span();
        self.check_name("subject", &name, span.clone())?;
        let raw = raw.into_inner();
        let path_span = raw.path.span();
        let path = self.resolve(raw.path.get_ref());
        let volume = raw.format.as_ref().is_some_and(|f| {
            f.get_ref() == "lab08" || f.get_ref() == "vim1" || f.get_ref() == "npz_responses"
        });
        if raw
            .format
            .as_ref()
            .is_none_or(|f| f.get_ref() != "npz_responses")
        {
            for (key, sp) in [
                ("responses", raw.responses.as_ref().map(|v| v.span())),
                ("stimulus", raw.stimulus.as_ref().map(|v| v.span())),
                ("bin_width", raw.bin_width.as_ref().map(|v| v.span())),
                ("stimulus_min", raw.stimulus_min.as_ref().map(|v| v.span())),
                ("stimulus_max", raw.stimulus_max.as_ref().map(|v| v.span())),
                (
                    "stimulus_offset",
                    raw.stimulus_offset.as_ref().map(|v| v.span()),
                ),
                ("labels", raw.labels.as_ref().map(|v| v.span())),
            ] {
                if let Some(sp) = sp {
                    return self.err(
                        sp,
                        format!("`{key}` applies to format \"npz_responses\" only"),
                    );
                }
            }
        }
        if let Some(id) = &raw.id
            && raw.format.as_ref().is_none_or(|f| f.get_ref() != "vim1")
        {
            return self.err(id.span(), "`id` applies to format \"vim1\" only");
        }
        let hemis = if volume {
            // Volume voxels: one group, summarised as both hemispheres.
            vec![crate::record::BOTH.to_string()]
        } else {
            self.strings(raw.hemis.clone(), &["lh", "rh"], "hemis")?
        };
        let format = match raw.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("runner-nsd-v1") => {
                let voxel_mask = match raw.voxel_mask {
                    Some(sel) => self.selector(sel.into_inner())?,
                    None => Selector {
                        column: "nsdgeneral".into(),
                        labels: vec!["nsdgeneral".into()],
                        match_: LabelMatch::Exact,
                    },
                };
                let min_ncsnr = self.finite(raw.min_ncsnr, 0.0)?;
                let train_splits =
                    self.strings(raw.train_splits, &["train", "val"], "train_splits")?;
                let test_splits = self.strings(raw.test_splits, &["test"], "test_splits")?;
                if let Some(s) = train_splits.iter().find(|s| test_splits.contains(s)) {
                    return self.err(
                        span,
                        format!("split `{s}` is both a train and a test split"),
                    );
                }
                SubjectFormat::Nsd {
                    train_splits,
                    test_splits,
                    voxel_mask,
                    min_ncsnr,
                }
            }
            Some("algonauts2023") => {
                // The challenge ships no noise ceiling and no named splits:
                // an analysis's `split` says how stimuli divide.
                self.not_for(
                    "algonauts2023",
                    &[
                    ("train_splits", raw.train_splits.as_ref().map(|v| v.span())),
                    ("test_splits", raw.test_splits.as_ref().map(|v| v.span())),
                    ("voxel_mask", raw.voxel_mask.as_ref().map(|v| v.span())),
                    ("min_ncsnr", raw.min_ncsnr.as_ref().map(|v| v.span())),
                    ],
                    "Algonauts subjects have every challenge vertex, no noise ceiling, and split by an analysis's `split`",
                )?;
                SubjectFormat::Algonauts2023
            }
            Some("lab08") => {
                // Volume voxels with the lab's own noise ceiling and split:
                // nothing to choose here; analyses pick ROIs and splits.
                self.not_for(
                    "lab08",
                    &[
                    ("train_splits", raw.train_splits.as_ref().map(|v| v.span())),
                    ("test_splits", raw.test_splits.as_ref().map(|v| v.span())),
                    ("voxel_mask", raw.voxel_mask.as_ref().map(|v| v.span())),
                    ("min_ncsnr", raw.min_ncsnr.as_ref().map(|v| v.span())),
                    ("hemis", raw.hemis.as_ref().map(|v| v.span())),
                    ],
                    "Lab08 subjects are the volume voxels of the lab's bigmask, with the lab's noise ceiling; the split is an analysis's `split` (default: the lab's shared1000 validation and 10 % holdout)",
                )?;
                SubjectFormat::Lab08
            }
            Some("vim1") => {
                self.not_for(
                    "vim1",
                    &[
                    ("train_splits", raw.train_splits.as_ref().map(|v| v.span())),
                    ("test_splits", raw.test_splits.as_ref().map(|v| v.span())),
                    ("voxel_mask", raw.voxel_mask.as_ref().map(|v| v.span())),
                    ("min_ncsnr", raw.min_ncsnr.as_ref().map(|v| v.span())),
                    ("hemis", raw.hemis.as_ref().map(|v| v.span())),
                    ],
                    "vim-1 subjects are the voxels of EstimatedResponses.mat (repeat-averaged, no noise ceiling), its 1750 training images fit and 120 validation images score; an analysis's `split` draws other splits",
                )?;
                let id = raw.id.map_or_else(|| name.clone(), Spanned::into_inner);
                SubjectFormat::Vim1 { id }
            }
            Some("npz_responses") => {
                self.not_for(
                    "npz_responses",
                    &[
                    ("train_splits", raw.train_splits.as_ref().map(|v| v.span())),
                    ("test_splits", raw.test_splits.as_ref().map(|v| v.span())),
                    ("voxel_mask", raw.voxel_mask.as_ref().map(|v| v.span())),
                    ("min_ncsnr", raw.min_ncsnr.as_ref().map(|v| v.span())),
                    ("hemis", raw.hemis.as_ref().map(|v| v.span())),
                    ],
                    "npz_responses subjects are one .npz: responses (stimuli × neurons) and a stimulus variable; choose rows with bin_width, stimulus_min, stimulus_max, stimulus_offset",
                )?;
                let key = |v: Option<Spanned<String>>, default: &str| -> Result<String> {
                    match v {
                        None => Ok(default.to_string()),
                        Some(k) if !k.get_ref().is_empty() => Ok(k.into_inner()),
                        Some(k) => self.err(k.span(), "an array name must not be empty"),
                    }
                };
                let bin_width = match raw.bin_width {
                    None => None,
                    Some(b) if b.get_ref().is_finite() && *b.get_ref() > 0.0 => {
                        Some(*b.get_ref()).filter(|&w| w > 1.0)
                    }
                    Some(b) => return self.err(b.span(), "bin_width must be > 0"),
                };
                let bound = |v: Option<Spanned<f64>>| -> Result<Option<f64>> {
                    match v {
                        None => Ok(None),
                        Some(v) if v.get_ref().is_finite() => Ok(Some(*v.get_ref())),
                        Some(v) => self.err(v.span(), "must be a finite number"),
                    }
                };
                let (lo_span, hi_span) = (
                    raw.stimulus_min.as_ref().map(|s| s.span()),
                    raw.stimulus_max.as_ref().map(|s| s.span()),
                );
                let stimulus_min = bound(raw.stimulus_min)?;
                let stimulus_max = bound(raw.stimulus_max)?;
                if let (Some(lo), Some(hi)) = (stimulus_min, stimulus_max)
                    && lo > hi
                {
                    return self.err(
                        hi_span.or(lo_span).unwrap_or(span),
                        format!("stimulus_max ({hi}) is below stimulus_min ({lo})"),
                    );
                }
                let labels = match raw.labels {
                    None => vec![],
                    Some(l) => self.strings(Some(l), &[], "labels")?,
                };
                SubjectFormat::NpzResponses(NpzSelect {
                    responses: key(raw.responses, "resp")?,
                    stimulus: key(raw.stimulus, "stimuli")?,
                    bin_width,
                    stimulus_min,
                    stimulus_max,
                    stimulus_offset: self.finite(raw.stimulus_offset, 0.0)?,
                    labels,
                })
            }
            Some(other) => {
                return Err(self
                    .src
                    .error(
                        raw.format.as_ref().unwrap().span(),
                        format!("unknown subject format `{other}`"),
                    )
                    .with_help(
                        "format = \"runner-nsd-v1\" (default; HW2's NSD data), \"algonauts2023\", \"lab08\", \"vim1\" or \"npz_responses\" (one .npz of stimuli × neurons)",
                    ));
            }
        };
        Ok(Subject {
            name,
            path,
            path_span,
            format,
            hemis,
        })
    }

    fn finite(&self, v: Option<Spanned<f64>>, default: f64) -> Result<f64> {
        match v {
            None => Ok(default),
            Some(v) if v.get_ref().is_finite() => Ok(*v.get_ref()),
            Some(v) => self.err(v.span(), "must be a finite number"),
        }
    }

    fn selector(&self, raw: raw::RawSelector) -> Result<Selector> {
        let labels_span = raw.labels.span();
        let labels = raw.labels.into_inner();
        if labels.is_empty() || labels.iter().any(String::is_empty) {
            return self.err(
                labels_span,
                "labels must be a non-empty list of non-empty strings",
            );
        }
        let match_ = match raw.match_.get_ref().as_str() {
            "exact" => LabelMatch::Exact,
            "substring" => LabelMatch::Substring,
            other => {
                return Err(self
                    .src
                    .error(raw.match_.span(), format!("unknown match rule `{other}`"))
                    .with_help(
                        "use match = \"exact\" or match = \"substring\" (HW2 uses substring)",
                    ));
            }
        };
        Ok(Selector {
            column: raw.column.into_inner(),
            labels,
            match_,
        })
    }

    fn model(&self, name: String, raw: Spanned<raw::RawModel>) -> Result<ModelSpec> {
        use crate::model::alexnet::AlexNetConfig;
        let span = raw.span();
        self.check_name("model", &name, span.clone())?;
        let raw = raw.into_inner();
        match raw.arch.get_ref().as_str() {
            "alexnet" => {}
            "sequential" => return self.sequential_model(name, span, raw),
            other => {
                return Err(self
                    .src
                    .error(raw.arch.span(), format!("unknown arch `{other}`"))
                    .with_help("arch = \"alexnet\" (torchvision's layout) or \"sequential\" (layers declared in `layers`)"));
            }
        }
        for (key, sp) in [
            ("input", raw.input.as_ref().map(|v| v.span())),
            ("layers", raw.layers.as_ref().map(|v| v.span())),
        ] {
            if let Some(sp) = sp {
                return self.err(sp, format!("`{key}` applies to arch = \"sequential\" only"));
            }
        }
        let mut config = match raw.layout.as_ref().map(|l| l.get_ref().as_str()) {
            None | Some("torchvision") => AlexNetConfig::torchvision(),
            Some("hw") => AlexNetConfig::hw(),
            Some(other) => {
                return Err(self
                    .src
                    .error(raw.layout.as_ref().unwrap().span(), format!("unknown layout `{other}`"))
                    .with_help("layout = \"torchvision\" (64,192,384,256,256) or \"hw\" (64,192,384,384,256)"));
            }
        };
        if let Some(w) = raw.widths {
            let ws = w.get_ref();
            if ws.len() != 5 || ws.contains(&0) {
                return self.err(w.span(), "widths must be five positive conv widths");
            }
            config.widths = [ws[0], ws[1], ws[2], ws[3], ws[4]];
        }
        config.hidden = raw.hidden.unwrap_or(config.hidden);
        config.num_classes = raw.num_classes.unwrap_or(config.num_classes);
        config.dropout = raw.dropout.unwrap_or(config.dropout);
        if config.hidden == 0 || config.num_classes == 0 || !(0.0..1.0).contains(&config.dropout) {
            return self.err(
                span,
                "hidden and num_classes must be > 0 and dropout in [0, 1)",
            );
        }
        if let Some(t) = raw.train {
            if let Some(c) = &raw.checkpoint {
                return self.err(
                    c.span(),
                    "a trained model starts from a random init: give `seed`, not `checkpoint` (fine-tuning is not supported)",
                );
            }
            let train = Training::Barcode(self.train(&name, t, &config)?);
            return Ok(ModelSpec {
                name,
                arch: ModelArch::AlexNet(config),
                weights: Weights::Trained {
                    seed: raw.seed.map_or(0, |s| *s.get_ref()),
                    train,
                },
            });
        }
        let weights = self.plain_weights(raw.checkpoint, raw.seed)?;
        Ok(ModelSpec {
            name,
            arch: ModelArch::AlexNet(config),
            weights,
        })
    }

    /// Weights of a net runner does not train: a checkpoint, or a random init.
    fn plain_weights(
        &self,
        checkpoint: Option<Spanned<PathBuf>>,
        seed: Option<Spanned<u64>>,
    ) -> Result<Weights> {
        Ok(match (checkpoint, seed) {
            (Some(c), None) => Weights::Checkpoint {
                span: c.span(),
                path: self.resolve(c.get_ref()),
            },
            (None, seed) => Weights::Random {
                seed: seed.map_or(0, |s| *s.get_ref()),
            },
            (Some(_), Some(s)) => {
                return self.err(
                    s.span(),
                    "a model has either a checkpoint or a random-init seed, not both",
                );
            }
        })
    }

    /// `arch = "sequential"`: the layers as declared, checked to chain.
    fn sequential_model(
        &self,
        name: String,
        span: Range<usize>,
        raw: raw::RawModel,
    ) -> Result<ModelSpec> {
        use crate::model::sequential::{ConvInit, LayerSpec, Op, SequentialConfig};
        for (key, sp) in [
            ("layout", raw.layout.as_ref().map(|v| v.span())),
            ("widths", raw.widths.as_ref().map(|v| v.span())),
        ] {
            if let Some(sp) = sp {
                return self.err(
                    sp,
                    format!("`{key}` is AlexNet's; a sequential net lists its `layers`"),
                );
            }
        }
        if raw.hidden.is_some() || raw.num_classes.is_some() || raw.dropout.is_some() {
            return self.err(
                span,
                "hidden, num_classes and dropout are AlexNet's; a sequential net lists its `layers`",
            );
        }
        let input = match &raw.input {
            None => {
                let (h, w) = crate::gratings::GratingSpec::default().size();
                [1, h, w]
            }
            Some(i) => match i.get_ref()[..] {
                [c, h, w] if c > 0 && h > 0 && w > 0 => [c, h, w],
                _ => return self.err(i.span(), "input is [channels, height, width], each ≥ 1"),
            },
        };
        let Some(layers_raw) = raw.layers else {
            return Err(self
                .src
                .error(span, format!("models.{name}: arch = \"sequential\" needs `layers`"))
                .with_help("layers = [{ name = \"conv\", type = \"conv2d\", in_channels = 1, out_channels = 6, kernel_size = 7, padding = 3 }, { type = \"relu\" }, …]; types: conv2d, maxpool2d, relu, sigmoid, flatten, linear"));
        };
        let list_span = layers_raw.span();
        let layers_raw = layers_raw.into_inner();
        if layers_raw.is_empty() {
            return self.err(list_span, "layers must not be empty");
        }
        let mut layers = Vec::new();
        let mut spans = Vec::new();
        for (i, l) in layers_raw.into_iter().enumerate() {
            let lspan = l.span();
            let l = l.into_inner();
            let ty = l.type_.get_ref().as_str();
            let name = match &l.name {
                Some(n) => n.get_ref().clone(),
                None => format!("{ty}{i}"),
            };
            if let Some(n) = &l.name {
                if !name_ok(&name) {
                    return self.err(
                        n.span(),
                        format!("layer name `{name}` is not usable in file names"),
                    );
                }
                if layers.iter().any(|x: &LayerSpec| x.name == name) {
                    return self.err(n.span(), format!("layer name `{name}` is used twice"));
                }
            }
            let allowed: &[&str] = match ty {
                "conv2d" => &[
                    "in_channels",
                    "out_channels",
                    "kernel_size",
                    "stride",
                    "padding",
                    "bias",
                    "init",
                    "sigma",
                ],
                "maxpool2d" => &["kernel_size", "stride"],
                "linear" => &["in_features", "out_features", "bias"],
                "relu" | "sigmoid" | "flatten" => &[],
                other => {
                    return Err(self
                        .src
                        .error(l.type_.span(), format!("unknown layer type `{other}`"))
                        .with_help("types: conv2d, maxpool2d, relu, sigmoid, flatten, linear"));
                }
            };
            let given: [(&str, Option<Range<usize>>); 10] = [
                ("in_channels", l.in_channels.as_ref().map(|v| v.span())),
                ("out_channels", l.out_channels.as_ref().map(|v| v.span())),
                ("kernel_size", l.kernel_size.as_ref().map(|v| v.span())),
                ("stride", l.stride.as_ref().map(|v| v.span())),
                ("padding", l.padding.as_ref().map(|v| v.span())),
                ("in_features", l.in_features.as_ref().map(|v| v.span())),
                ("out_features", l.out_features.as_ref().map(|v| v.span())),
                ("bias", l.bias.as_ref().map(|v| v.span())),
                ("init", l.init.as_ref().map(|v| v.span())),
                ("sigma", l.sigma.as_ref().map(|v| v.span())),
            ];
            for (key, sp) in &given {
                if let Some(sp) = sp
                    && !allowed.contains(key)
                {
                    return self.err(sp.clone(), format!("layer `{name}` ({ty}) has no `{key}`"));
                }
            }
            let need = |v: &Option<Spanned<usize>>, key: &str| -> Result<usize> {
                match v {
                    Some(x) if *x.get_ref() > 0 => Ok(*x.get_ref()),
                    Some(x) => self.err(x.span(), format!("{key} must be ≥ 1")),
                    None => self.err(
                        lspan.clone(),
                        format!("layer `{name}` ({ty}) needs `{key}`"),
                    ),
                }
            };
            let bias = l.bias.as_ref().is_none_or(|b| *b.get_ref());
            let op = match ty {
                "conv2d" => {
                    let init = match l.init.as_ref().map(|s| s.get_ref().as_str()) {
                        None | Some("default") => {
                            if let Some(s) = &l.sigma {
                                return self.err(
                                    s.span(),
                                    "sigma applies to init = \"center_surround_gabor\"",
                                );
                            }
                            ConvInit::Default
                        }
                        Some("center_surround_gabor") => {
                            let sigma = l.sigma.as_ref().map_or(1.1, |s| *s.get_ref());
                            if !(sigma.is_finite() && sigma > 0.0) {
                                return self
                                    .err(l.sigma.as_ref().unwrap().span(), "sigma must be > 0");
                            }
                            ConvInit::CenterSurroundGabor { sigma }
                        }
                        Some(other) => {
                            return Err(self
                                .src
                                .error(l.init.as_ref().unwrap().span(), format!("unknown init `{other}`"))
                                .with_help("init = \"default\" (PyTorch's kaiming uniform) or \"center_surround_gabor\" (seed 004: 2 centre-surround + Gabor filters)"));
                        }
                    };
                    Op::Conv2d {
                        in_channels: need(&l.in_channels, "in_channels")?,
                        out_channels: need(&l.out_channels, "out_channels")?,
                        kernel_size: need(&l.kernel_size, "kernel_size")?,
                        stride: l
                            .stride
                            .as_ref()
                            .map_or(Ok(1), |_| need(&l.stride, "stride"))?,
                        padding: l.padding.as_ref().map_or(0, |p| *p.get_ref()),
                        bias,
                        init,
                    }
                }
                "maxpool2d" => {
                    let k = need(&l.kernel_size, "kernel_size")?;
                    Op::MaxPool2d {
                        kernel_size: k,
                        stride: l
                            .stride
                            .as_ref()
                            .map_or(Ok(k), |_| need(&l.stride, "stride"))?,
                    }
                }
                "linear" => Op::Linear {
                    in_features: need(&l.in_features, "in_features")?,
                    out_features: need(&l.out_features, "out_features")?,
                    bias,
                },
                "relu" => Op::Relu,
                "sigmoid" => Op::Sigmoid,
                _ => Op::Flatten,
            };
            layers.push(LayerSpec { name, op });
            spans.push(lspan);
        }
        let config = SequentialConfig { input, layers };
        if let Err(e) = config.shapes() {
            return Err(self
                .src
                .error(spans[e.index].clone(), format!("models.{name}: {e}"))
                .with_help("each layer takes what the one before gives: conv2d in_channels = the channels coming in, linear in_features = the flattened size (channels × height × width)"));
        }
        let weights = match raw.train {
            Some(t) => {
                if let Some(c) = &raw.checkpoint {
                    return self.err(
                        c.span(),
                        "a trained model starts from a random init: give `seed`, not `checkpoint` (fine-tuning is not supported)",
                    );
                }
                Weights::Trained {
                    seed: raw.seed.map_or(0, |s| *s.get_ref()),
                    train: Training::GratingTilt(self.grating_train(&name, t, &config)?),
                }
            }
            None => self.plain_weights(raw.checkpoint, raw.seed)?,
        };
        Ok(ModelSpec {
            name,
            arch: ModelArch::Sequential(config),
            weights,
        })
    }

    fn device(&self, raw: Option<&Spanned<String>>) -> Result<DeviceChoice> {
        match raw.map(|d| d.get_ref().as_str()) {
            None | Some("auto") => Ok(DeviceChoice::Auto),
            Some("cpu") => Ok(DeviceChoice::Cpu),
            Some("cuda") => Ok(DeviceChoice::Cuda),
            Some(other) => self.err(
                raw.unwrap().span(),
                format!("unknown device `{other}` (auto, cpu, cuda)"),
            ),
        }
    }

    fn train(
        &self,
        model: &str,
        raw: Spanned<raw::RawTrain>,
        config: &crate::model::alexnet::AlexNetConfig,
    ) -> Result<crate::train::spec::TrainSpec> {
        use crate::train::spec::{BarcodeData, TrainSpec};
        let span = raw.span();
        let raw = raw.into_inner();
        if let Some(t) = &raw.task
            && t.get_ref() != "barcode"
        {
            let help = if t.get_ref() == "grating_tilt" {
                "grating_tilt trains a small net on 48×64 gratings: declare it with arch = \"sequential\" (see experiments/rsa_v1.toml)"
            } else {
                "task = \"barcode\" (HW2's Barcode dataset, AlexNet) or \"grating_tilt\" (seed 004, a sequential net)"
            };
            return self
                .err(
                    t.span(),
                    format!("unknown training task `{}` for an AlexNet", t.get_ref()),
                )
                .map_err(|e| e.with_help(help));
        }
        for (key, sp) in [
            ("n_train", raw.n_train.as_ref().map(|v| v.span())),
            ("n_val", raw.n_val.as_ref().map(|v| v.span())),
        ] {
            if let Some(sp) = sp {
                return self.err(sp, format!("`{key}` is task \"grating_tilt\"'s; the Barcode task has train_length and val_length"));
            }
        }
        if config.num_classes != crate::barcode::BITS {
            return self.err(
                span,
                format!(
                    "models.{model}: the Barcode task has 32 outputs (one per bit) but num_classes = {}",
                    config.num_classes
                ),
            )
            .map_err(|e| e.with_help("set num_classes = 32"));
        }
        let positive = |v: &Option<Spanned<u64>>, default: u64, what: &str| -> Result<u64> {
            match v {
                None => Ok(default),
                Some(x) if *x.get_ref() > 0 => Ok(*x.get_ref()),
                Some(x) => self.err(x.span(), format!("{what} must be ≥ 1")),
            }
        };
        let train_length = positive(&raw.train_length, 1_000_000, "train_length")?;
        let val_length = positive(
            &raw.val_length
                .as_ref()
                .map(|v| Spanned::new(v.span(), *v.get_ref() as u64)),
            50_000,
            "val_length",
        )? as usize;
        // The validation integers are drawn without replacement from 2³².
        if val_length > 100_000_000 {
            let sp = raw.val_length.as_ref().map_or(span.clone(), |x| x.span());
            return self.err(sp, "val_length must be ≤ 100,000,000");
        }
        let batch_size = positive(
            &raw.batch_size
                .as_ref()
                .map(|v| Spanned::new(v.span(), *v.get_ref() as u64)),
            128,
            "batch_size",
        )? as usize;
        let dataset = BarcodeData {
            train_length,
            val_length,
            seed: raw.data_seed.unwrap_or(1110),
            val_seed: raw.val_seed.unwrap_or(2025),
        };
        let steps_per_epoch = train_length.div_ceil(batch_size as u64);
        let steps = match (&raw.epochs, &raw.steps) {
            (Some(e), None) => positive(&Some(e.clone()), 1, "epochs")? * steps_per_epoch,
            (None, Some(s)) => positive(&Some(s.clone()), 1, "steps")?,
            (None, None) => {
                return self.err(span, format!("models.{model}.train needs `epochs` or `steps`"))
                    .map_err(|e| e.with_help("HW2 trains for a number of epochs of 1,000,000 samples; a CPU run can set steps = N"));
            }
            (Some(_), Some(s)) => return self.err(s.span(), "give `epochs` or `steps`, not both"),
        };
        // HW1's optimizer: momentum 0.9, weight decay 5e-4.
        let (lr, optimizer, schedule) = self.optim(&raw, span.clone(), (0.9, 5e-4))?;
        let eval_every = positive(&raw.eval_every, steps_per_epoch, "eval_every")?;
        let checkpoint_every = positive(&raw.checkpoint_every, eval_every, "checkpoint_every")?;
        Ok(TrainSpec {
            dataset,
            batch_size,
            steps,
            lr,
            optimizer,
            schedule,
            eval_every,
            checkpoint_every,
            device: self.device(raw.device.as_ref())?,
        })
    }

    /// `[models.*.train] task = "grating_tilt"`: seed 004's recipe by default
    /// (1000 gratings, batch 100, SGD without weight decay).
    fn grating_train(
        &self,
        model: &str,
        raw: Spanned<raw::RawTrain>,
        config: &crate::model::sequential::SequentialConfig,
    ) -> Result<crate::train::grating::GratingTrainSpec> {
        let span = raw.span();
        let raw = raw.into_inner();
        match raw.task.as_ref().map(|t| t.get_ref().as_str()) {
            Some("grating_tilt") => {}
            None => {
                return Err(self
                    .src
                    .error(span, format!("models.{model}.train needs a `task`"))
                    .with_help("a sequential net trains on task = \"grating_tilt\" (seed 004)"));
            }
            Some(other) => {
                return Err(self
                    .src
                    .error(raw.task.as_ref().unwrap().span(), format!("unknown training task `{other}` for a sequential net"))
                    .with_help("task = \"grating_tilt\" (seed 004: is the grating tilted right of vertical?); the Barcode task trains an AlexNet"));
            }
        }
        for (key, sp) in [
            ("train_length", raw.train_length.as_ref().map(|v| v.span())),
            ("val_length", raw.val_length.as_ref().map(|v| v.span())),
            ("steps", raw.steps.as_ref().map(|v| v.span())),
        ] {
            if let Some(sp) = sp {
                return self.err(sp, format!("`{key}` is the Barcode task's; grating_tilt takes n_train, n_val and epochs"));
            }
        }
        let (h, w) = crate::gratings::GratingSpec::default().size();
        if config.input != [1, h, w] {
            return self.err(
                span,
                format!(
                    "models.{model}: grating_tilt feeds 1 × {h} × {w} gratings but the net's input is {}",
                    config.input.map(|x| x.to_string()).join(" × ")
                ),
            ).map_err(|e| e.with_help(format!("set input = [1, {h}, {w}] (the default)")));
        }
        let shapes = config.shapes().expect("checked before");
        let last = shapes.last().cloned().unwrap_or_default();
        let ends_sigmoid = matches!(
            config.layers.last().map(|l| &l.op),
            Some(crate::model::sequential::Op::Sigmoid)
        );
        if last != [1] || !ends_sigmoid {
            return self.err(
                span,
                format!(
                    "models.{model}: grating_tilt trains with binary cross-entropy on one probability; the net ends in {} with output {:?}",
                    config.layers.last().map_or("nothing".into(), |l| format!("`{}`", l.name)),
                    last
                ),
            ).map_err(|e| e.with_help("end the net with a linear layer of out_features = 1 and a sigmoid, as seed 004's CNN"));
        }
        let count = |v: &Option<Spanned<usize>>, default: usize, what: &str| -> Result<usize> {
            match v {
                None => Ok(default),
                Some(x) if *x.get_ref() > 0 => Ok(*x.get_ref()),
                Some(x) => self.err(x.span(), format!("{what} must be ≥ 1")),
            }
        };
        let n_train = count(&raw.n_train, 1000, "n_train")?;
        let n_val = count(&raw.n_val, 500, "n_val")?;
        let batch_size = count(&raw.batch_size, 100, "batch_size")?;
        let epochs = match &raw.epochs {
            None => 25,
            Some(e) if *e.get_ref() > 0 => *e.get_ref(),
            Some(e) => return self.err(e.span(), "epochs must be ≥ 1"),
        };
        let steps_per_epoch = n_train.div_ceil(batch_size) as u64;
        let every = |v: &Option<Spanned<u64>>, default: u64, what: &str| -> Result<u64> {
            match v {
                None => Ok(default),
                Some(x) if *x.get_ref() > 0 => Ok(*x.get_ref()),
                Some(x) => self.err(x.span(), format!("{what} must be ≥ 1")),
            }
        };
        let eval_every = every(&raw.eval_every, steps_per_epoch, "eval_every")?;
        let checkpoint_every = every(&raw.checkpoint_every, eval_every, "checkpoint_every")?;
        // Seed 004: optim.SGD(lr, momentum) — no weight decay.
        let (lr, optimizer, schedule) = self.optim(&raw, span.clone(), (0.0, 0.0))?;
        Ok(crate::train::grating::GratingTrainSpec {
            n_train,
            n_val,
            data_seed: raw.data_seed.unwrap_or(12),
            val_seed: raw.val_seed.unwrap_or(2025),
            grating: crate::gratings::GratingSpec::default(),
            batch_size,
            epochs,
            lr,
            optimizer,
            schedule,
            eval_every,
            checkpoint_every,
            device: self.device(raw.device.as_ref())?,
        })
    }

    /// The optimizer and learning-rate schedule of a `[models.*.train]`
    /// table (both tasks read them the same way).
    fn optim(
        &self,
        raw: &raw::RawTrain,
        span: Range<usize>,
        (default_momentum, default_weight_decay): (f64, f64),
    ) -> Result<(
        f64,
        crate::train::spec::Optimizer,
        crate::train::spec::Schedule,
    )> {
        use crate::train::spec::{Optimizer, Schedule};
        let at = |s: &Option<Spanned<f64>>| s.as_ref().map_or(span.clone(), |x| x.span());
        let positive = |v: &Option<Spanned<u64>>, default: u64, what: &str| -> Result<u64> {
            match v {
                None => Ok(default),
                Some(x) if *x.get_ref() > 0 => Ok(*x.get_ref()),
                Some(x) => self.err(x.span(), format!("{what} must be ≥ 1")),
            }
        };
        let lr = *raw.lr.get_ref();
        if !(lr.is_finite() && lr > 0.0) {
            return self.err(raw.lr.span(), "lr must be a positive number");
        }
        let unit =
            |v: &Option<Spanned<f64>>, default: f64, what: &str, hi_open: bool| -> Result<f64> {
                let x = v.as_ref().map_or(default, |x| *x.get_ref());
                let ok = x.is_finite() && x >= 0.0 && if hi_open { x < 1.0 } else { true };
                if ok {
                    Ok(x)
                } else {
                    self.err(
                        at(v),
                        format!(
                            "{what} must be {}",
                            if hi_open { "in [0, 1)" } else { "≥ 0" }
                        ),
                    )
                }
            };
        let weight_decay = unit(
            &raw.weight_decay,
            default_weight_decay,
            "weight_decay",
            false,
        )?;
        let optimizer = match raw.optimizer.as_ref().map(|o| o.get_ref().as_str()) {
            None | Some("sgd") => {
                if let Some(b) = &raw.betas {
                    return self.err(b.span(), "betas are Adam's; this optimizer is SGD");
                }
                Optimizer::Sgd {
                    momentum: unit(&raw.momentum, default_momentum, "momentum", true)?,
                    weight_decay,
                    nesterov: raw.nesterov.unwrap_or(false),
                }
            }
            Some("adam") => {
                if let Some(m) = &raw.momentum {
                    return self.err(m.span(), "momentum is SGD's; Adam takes betas = [b1, b2]");
                }
                let (beta1, beta2) = match &raw.betas {
                    None => (0.9, 0.999),
                    Some(b) => match b.get_ref()[..] {
                        [b1, b2] if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) => {
                            (b1, b2)
                        }
                        _ => return self.err(b.span(), "betas must be two numbers in [0, 1)"),
                    },
                };
                let eps = raw.eps.as_ref().map_or(1e-8, |e| *e.get_ref());
                if !(eps.is_finite() && eps > 0.0) {
                    return self.err(at(&raw.eps), "eps must be > 0");
                }
                Optimizer::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
            }
            Some(other) => {
                return self.err(
                    raw.optimizer.as_ref().unwrap().span(),
                    format!("unknown optimizer `{other}` (sgd, adam)"),
                );
            }
        };
        let schedule = match raw.schedule.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("constant") => Schedule::Constant,
            Some("step") => Schedule::Step {
                every_epochs: positive(&raw.lr_step_epochs, 30, "lr_step_epochs")?,
                gamma: unit(&raw.lr_gamma, 0.1, "lr_gamma", false)?,
            },
            Some("cosine") => {
                let min_lr = unit(&raw.min_lr, 0.0, "min_lr", false)?;
                if min_lr > lr || lr > 1.0 {
                    return self.err(at(&raw.min_lr), "cosine needs 0 ≤ min_lr ≤ lr ≤ 1");
                }
                Schedule::Cosine { min_lr }
            }
            Some(other) => {
                return self.err(
                    raw.schedule.as_ref().unwrap().span(),
                    format!("unknown schedule `{other}` (constant, step, cosine)"),
                );
            }
        };
        Ok((lr, optimizer, schedule))
    }

    fn features(
        &self,
        name: String,
        raw: Spanned<raw::RawFeatures>,
        subjects: &[String],
        model_specs: &[ModelSpec],
    ) -> Result<FeatureSource> {
        let models: Vec<String> = model_specs.iter().map(|m| m.name.clone()).collect();
        let span = raw.span();
        self.check_name("feature source", &name, span.clone())?;
        let raw = raw.into_inner();
        let kind = match raw.kind.get_ref().as_str() {
            "npy" => {
                let Some(dir) = raw.dir else {
                    return Err(self
                        .src
                        .error(span, format!("features.{name}: kind \"npy\" needs `dir`"))
                        .with_help(
                            "dir = \"path/to/features\" holding one <layer>.npy per layer",
                        ));
                };
                FeatureKind::Npy {
                    dir_span: dir.span(),
                    dir: dir.into_inner(),
                }
            }
            "hdf5" => {
                let Some(path) = raw.path else {
                    return Err(self
                        .src
                        .error(span, format!("features.{name}: kind \"hdf5\" needs `path`"))
                        .with_help("path = \"data/{subject}/S1_{layer}_pca100.hdf5\": one file per layer, rows = the subject's images"));
                };
                if raw.dir.is_some() {
                    return self.err(
                        raw.dir.unwrap().span(),
                        "kind \"hdf5\" names each file with `path` (with {layer}), not `dir`",
                    );
                }
                let datasets = match (raw.dataset, raw.datasets) {
                    (Some(_), Some(d)) => {
                        return self.err(
                            d.span(),
                            "give `dataset` (one) or `datasets` (stacked by rows), not both",
                        );
                    }
                    (Some(d), None) => vec![d.into_inner()],
                    (None, Some(d)) => {
                        let sp = d.span();
                        let d = d.into_inner();
                        if d.is_empty() {
                            return self.err(sp, "datasets must not be empty");
                        }
                        d
                    }
                    (None, None) => vec!["features".into()],
                };
                FeatureKind::Hdf5 {
                    path_span: path.span(),
                    path: path.into_inner(),
                    datasets,
                }
            }
            "extract" => {
                let Some(model) = raw.model else {
                    return Err(self
                        .src
                        .error(
                            span,
                            format!("features.{name}: kind \"extract\" needs `model`"),
                        )
                        .with_help("model = \"NAME\" of a [models.NAME] table"));
                };
                if !models.contains(model.get_ref()) {
                    return Err(self
                        .src
                        .error(model.span(), format!("unknown model `{}`", model.get_ref()))
                        .with_help(format!("declared models: {}", models.join(", "))));
                }
                let preprocess = match raw.preprocess.as_ref().map(|p| p.get_ref().as_str()) {
                    None | Some("hw2") => PreprocessKind::Hw2,
                    Some("algonauts") => PreprocessKind::Algonauts,
                    Some("vim1") => PreprocessKind::Vim1,
                    Some(other) => {
                        return Err(self
                            .src
                            .error(raw.preprocess.as_ref().unwrap().span(), format!("unknown preprocess `{other}`"))
                            .with_help("\"hw2\" (resize 256×256, crop 224), \"algonauts\" (resize 224×224) or \"vim1\" (vim-1 stimuli, TF1 bilinear 224×224, no normalisation)"));
                    }
                };
                let batch_size = match raw.batch_size {
                    None => 32,
                    Some(b) if *b.get_ref() > 0 => *b.get_ref(),
                    Some(b) => return self.err(b.span(), "batch_size must be ≥ 1"),
                };
                let device = self.device(raw.device.as_ref())?;
                let spec = model_specs
                    .iter()
                    .find(|m| &m.name == model.get_ref())
                    .expect("checked above");
                let gratings = match raw.stimuli.as_ref().map(|s| s.get_ref().as_str()) {
                    None | Some("images") => false,
                    Some("gratings") => true,
                    Some(other) => {
                        return Err(self
                            .src
                            .error(raw.stimuli.as_ref().unwrap().span(), format!("unknown stimuli `{other}`"))
                            .with_help("stimuli = \"images\" (the subject's, default) or \"gratings\" (seed 004's grating at each stimulus's orientation)"));
                    }
                };
                match (&spec.arch, gratings) {
                    (ModelArch::Sequential(_), false) => {
                        return Err(self
                            .src
                            .error(model.span(), format!("model `{}` is a sequential net, which runs on gratings", model.get_ref()))
                            .with_help("add stimuli = \"gratings\": one grating per stimulus, at the subject's stimulus orientation (npz_responses subjects)"));
                    }
                    (ModelArch::AlexNet(_), true) => {
                        return Err(self
                            .src
                            .error(
                                raw.stimuli.as_ref().unwrap().span(),
                                "gratings are 1 × 48 × 64; an AlexNet takes 3 × 224 × 224 images",
                            )
                            .with_help("run gratings through an arch = \"sequential\" net"));
                    }
                    _ => {}
                }
                if gratings && let Some(p) = &raw.preprocess {
                    return self.err(p.span(), "gratings are rendered at the net's input size; `preprocess` is for image files");
                }
                FeatureKind::Extract {
                    model: model.into_inner(),
                    preprocess,
                    batch_size,
                    device,
                    gratings,
                }
            }
            other => {
                return Err(self
                    .src
                    .error(raw.kind.span(), format!("unknown feature kind `{other}`"))
                    .with_help(
                        "kind = \"npy\" or \"hdf5\" (precomputed features) or \"extract\" (a [models.*] net)",
                    ));
            }
        };
        if let FeatureKind::Extract { model, .. } = &kind
            && let Some(ModelArch::Sequential(cfg)) = model_specs
                .iter()
                .find(|m| &m.name == model)
                .map(|m| &m.arch)
        {
            let layers = raw.layers.get_ref();
            if let Some(bad) = layers.iter().find(|l| cfg.tap_width(l).is_none()) {
                let names: Vec<&str> = cfg.layers.iter().map(|l| l.name.as_str()).collect();
                return Err(self
                    .src
                    .error(
                        raw.layers.span(),
                        format!("`{bad}` is not a layer of model `{model}`"),
                    )
                    .with_help(format!("its layers: {}", names.join(", "))));
            }
        } else if let FeatureKind::Extract { .. } = kind {
            let layers = raw.layers.get_ref();
            if let Some(bad) = layers
                .iter()
                .find(|l| crate::model::alexnet::resolve_tap(l).is_none())
            {
                return Err(self
                    .src
                    .error(raw.layers.span(), format!("`{bad}` is not an AlexNet tap"))
                    .with_help("taps: conv_pool_after_layer2, conv_pool_after_layer_5, conv_pool_after_layer_12, fc1, fc2 (HW2), conv1 … conv5 (each conv after its ReLU), or a torchvision module name features.N / avgpool / classifier.N"));
            }
        }
        let layers_span = raw.layers.span();
        let layers = raw.layers.into_inner();
        if layers.is_empty() {
            return self.err(layers_span, "layers must not be empty");
        }
        for (i, l) in layers.iter().enumerate() {
            if !name_ok(l) {
                return self.err(
                    layers_span,
                    format!("layer name `{l}` is not usable in file names"),
                );
            }
            if layers[..i].contains(l) {
                return self.err(layers_span, format!("layer `{l}` is listed twice"));
            }
        }
        let subj = match raw.subjects {
            None => subjects.to_vec(),
            Some(list) => {
                let span = list.span();
                let list = list.into_inner();
                for s in &list {
                    if !subjects.contains(s) {
                        return Err(self
                            .src
                            .error(span, format!("unknown subject `{s}`"))
                            .with_help(format!("declared subjects: {}", subjects.join(", "))));
                    }
                }
                list
            }
        };
        Ok(FeatureSource {
            name,
            kind,
            layers,
            subjects: subj,
        })
    }

    fn roi(&self, name: String, raw: Spanned<raw::RawRoi>) -> Result<Roi> {
        let span = raw.span();
        self.check_name("ROI", &name, span.clone())?;
        let raw = raw.into_inner();
        let selector = match (raw.all, raw.column, raw.labels, raw.match_) {
            (Some(all), None, None, None) if *all.get_ref() => None,
            (Some(all), ..) if !*all.get_ref() => {
                return self.err(all.span(), "write `all = true` or leave it out");
            }
            (None, Some(column), Some(labels), Some(match_)) => {
                Some(self.selector(raw::RawSelector {
                    column,
                    labels,
                    match_,
                })?)
            }
            (Some(all), ..) => {
                return self.err(
                    all.span(),
                    "an ROI is either `all = true` or column + labels + match, not both",
                );
            }
            (None, column, labels, match_) => {
                let missing = [
                    ("column", column.is_none()),
                    ("labels", labels.is_none()),
                    ("match", match_.is_none()),
                ]
                .into_iter()
                .filter(|(_, m)| *m)
                .map(|(k, _)| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
                return Err(self
                    .src
                    .error(span, format!("rois.{name} is missing {missing}"))
                    .with_help("an ROI picks voxels by label: column = \"prf-visualrois\", labels = [\"V1v\"], match = \"exact\"; or all = true for every voxel"));
            }
        };
        let hemis = match raw.hemis {
            None => None,
            Some(h) => Some(self.strings(Some(h), &[], "hemis")?),
        };
        let min_ncsnr = match raw.min_ncsnr {
            None => None,
            Some(m) => Some(self.finite(Some(m), 0.0)?),
        };
        Ok(Roi {
            name,
            selector,
            min_ncsnr,
            hemis,
        })
    }

    /// `[fit]` and `[score]` became `[analyses.NAME] kind = "ridge_cv"`: show
    /// the file's own values in the new spelling.
    fn old_fit_score(
        &self,
        span: Range<usize>,
        fit: Option<&Spanned<toml::Table>>,
        score: Option<&Spanned<toml::Table>>,
    ) -> crate::error::Error {
        let mut t = toml::Table::new();
        t.insert("kind".into(), toml::Value::String("ridge_cv".into()));
        for part in [fit, score].into_iter().flatten() {
            for (k, v) in part.get_ref() {
                if k != "method" {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        let body = toml::to_string(&t).unwrap_or_default();
        self.src
            .error(span, "[fit] and [score] are now one analysis table")
            .with_help(format!("replace them with\n\n[analyses.ridge]\n{body}"))
    }

    fn plot(
        &self,
        raw: Spanned<raw::RawPlot>,
        analyses: &[(String, std::sync::Arc<dyn crate::analyses::Analysis>)],
        rois: &[Roi],
    ) -> Result<PlotSpec> {
        let span = raw.span();
        let raw = raw.into_inner();
        let kind = match raw.kind.get_ref().as_str() {
            "heatmap" => PlotKind::Heatmap,
            "roi_bars" => PlotKind::RoiBars,
            "set_bars" => PlotKind::SetBars,
            "scatter" => PlotKind::Scatter,
            "rdms" => PlotKind::Rdms,
            "rsa_bars" => PlotKind::RsaBars,
            "tuning_curves" => PlotKind::TuningCurves,
            other => {
                return Err(self
                    .src
                    .error(raw.kind.span(), format!("unknown plot kind `{other}`"))
                    .with_help(
                        "use kind = \"heatmap\" (layers × ROIs), \"roi_bars\" (ROIs, lh vs rh), \"set_bars\" (train/test/validation per analysis), \"scatter\" (predicted vs measured ROI mean), \"rdms\" (RDMs side by side), \"rsa_bars\" (RDM similarity per layer) or \"tuning_curves\"",
                    ));
            }
        };
        let names: Vec<&str> = analyses.iter().map(|(n, _)| n.as_str()).collect();
        for (key, sp, ok) in [
            (
                "analyses",
                raw.analyses.as_ref().map(|a| a.span()),
                kind == PlotKind::SetBars,
            ),
            (
                "split",
                raw.split.as_ref().map(|a| a.span()),
                kind == PlotKind::SetBars,
            ),
            (
                "set",
                raw.set.as_ref().map(|a| a.span()),
                kind == PlotKind::Scatter,
            ),
        ] {
            if let (Some(sp), false) = (sp, ok) {
                return self.err(
                    sp,
                    format!(
                        "`{key}` does not apply to plot kind \"{}\"",
                        raw.kind.get_ref()
                    ),
                );
            }
        }
        let mut drawn: Vec<String> = Vec::new();
        if kind == PlotKind::SetBars {
            if let Some(a) = &raw.analysis {
                return self.err(
                    a.span(),
                    "set_bars draws several analyses: name them in `analyses`",
                );
            }
            drawn = match &raw.analyses {
                None => names.iter().map(|n| n.to_string()).collect(),
                Some(list) => {
                    for a in list.get_ref() {
                        if !names.contains(&a.as_str()) {
                            return Err(self
                                .src
                                .error(list.span(), format!("unknown analysis `{a}`"))
                                .with_help(format!("declared analyses: {}", names.join(", "))));
                        }
                    }
                    if list.get_ref().is_empty() {
                        return self.err(list.span(), "analyses must not be empty");
                    }
                    list.get_ref().clone()
                }
            };
        }
        let set = match &raw.set {
            None => "validation".to_string(),
            Some(s) if ["train", "test", "validation"].contains(&s.get_ref().as_str()) => {
                s.get_ref().clone()
            }
            Some(s) => {
                return self.err(
                    s.span(),
                    format!("unknown set `{}` (train, test, validation)", s.get_ref()),
                );
            }
        };
        let analysis = match &raw.analysis {
            None if kind == PlotKind::SetBars => drawn[0].clone(),
            Some(a) => {
                if !names.contains(&a.get_ref().as_str()) {
                    return Err(self
                        .src
                        .error(a.span(), format!("unknown analysis `{}`", a.get_ref()))
                        .with_help(format!("declared analyses: {}", names.join(", "))));
                }
                a.get_ref().clone()
            }
            None if names.len() == 1 => names[0].to_string(),
            None => {
                return Err(self
                    .src
                    .error(
                        span,
                        "this experiment has several analyses: say which one the plot draws",
                    )
                    .with_help(format!("analysis = one of {}", names.join(", "))));
            }
        };
        let reported = analyses
            .iter()
            .find(|(n, _)| *n == analysis)
            .map(|(_, a)| a.metrics())
            .unwrap_or_default();
        let family = analyses
            .iter()
            .find(|(n, _)| *n == analysis)
            .map_or("fit", |(_, a)| a.family());
        let wants = match kind {
            PlotKind::Rdms | PlotKind::RsaBars => "rsa",
            PlotKind::TuningCurves => "tuning",
            _ => "fit",
        };
        if family != wants {
            let at = raw
                .analysis
                .as_ref()
                .map(|a| a.span())
                .unwrap_or(span.clone());
            let what = |f: &str| match f {
                "rsa" => "an RSA (kind = \"rsa\")",
                "tuning" => "tuning curves (kind = \"tuning_curves\")",
                _ => "a fit's scores",
            };
            return Err(self
                .src
                .error(
                    at,
                    format!(
                        "plot kind \"{}\" draws {}, but analyses.{analysis} is {}",
                        raw.kind.get_ref(),
                        what(wants),
                        what(family)
                    ),
                )
                .with_help("name the analysis it draws: analysis = \"NAME\""));
        }
        let mut measure = None;
        if family != "fit" {
            if let (Some(m), PlotKind::RsaBars) = (&raw.metric, kind) {
                let name = if m.get_ref().starts_with("rdm_") {
                    m.get_ref().clone()
                } else {
                    format!("rdm_{}", m.get_ref())
                };
                if !reported.contains(&name) {
                    return Err(self
                        .src
                        .error(
                            m.span(),
                            format!("analyses.{analysis} does not compare by `{}`", m.get_ref()),
                        )
                        .with_help(format!(
                            "its comparisons: {}",
                            reported
                                .iter()
                                .map(|r| r.trim_start_matches("rdm_"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                }
                measure = Some(name);
            } else if let Some(m) = &raw.metric {
                return self.err(
                    m.span(),
                    format!(
                        "`metric` does not apply to plot kind \"{}\"",
                        raw.kind.get_ref()
                    ),
                );
            }
            if kind == PlotKind::RsaBars && measure.is_none() {
                measure = reported.first().cloned();
            }
        }
        if kind == PlotKind::Scatter
            && !analyses
                .iter()
                .any(|(n, a)| *n == analysis && a.predicts_roi_mean())
        {
            let at = raw
                .analysis
                .as_ref()
                .map(|a| a.span())
                .unwrap_or(span.clone());
            return Err(self
                .src
                .error(
                    at,
                    format!(
                        "analyses.{analysis} predicts voxels; a scatter plot draws an ROI-mean fit"
                    ),
                )
                .with_help(
                    "give the analysis target = \"roi_mean\" (the Kay V4 project's V4 average)",
                ));
        }
        let metric = match &raw.metric {
            _ if family != "fit" => Metric::PearsonR,
            None if reported.iter().any(|m| m == Metric::R2OverNc.name()) => Metric::R2OverNc,
            None => Metric::parse(&reported[0]).unwrap_or(Metric::PearsonR),
            Some(m) => Metric::parse(m.get_ref()).ok_or_else(|| {
                self.src
                    .error(m.span(), format!("unknown metric `{}`", m.get_ref()))
                    .with_help("metrics are r2, r2_over_nc, pearson_r and pearson_r2 (the squared Pearson r)")
            })?,
        };
        if family == "fit" && !reported.iter().any(|m| m == metric.name()) {
            let at = raw.metric.as_ref().map(|m| m.span()).unwrap_or(span);
            return self.err(
                at,
                format!(
                    "plot metric `{}` is not among analyses.{analysis}'s metrics ({})",
                    metric.name(),
                    reported.join(", ")
                ),
            );
        }
        let formats = match raw.formats {
            None => vec![ImageFormat::Png, ImageFormat::Svg],
            Some(f) => {
                let span = f.span();
                let mut out = Vec::new();
                for s in f.into_inner() {
                    out.push(match s.as_str() {
                        "png" => ImageFormat::Png,
                        "svg" => ImageFormat::Svg,
                        other => {
                            return self.err(span, format!("unknown format `{other}` (png, svg)"));
                        }
                    });
                }
                if out.is_empty() {
                    return self.err(span, "formats must not be empty");
                }
                out
            }
        };
        let order = match raw.rois {
            None => None,
            Some(list) => {
                let span = list.span();
                let list = list.into_inner();
                for r in &list {
                    if !rois.iter().any(|x| &x.name == r) {
                        return self.err(
                            span,
                            format!("plot names ROI `{r}`, which no [rois.*] table declares"),
                        );
                    }
                }
                if kind == PlotKind::Heatmap
                    && let Some(missing) = rois.iter().find(|x| !list.contains(&x.name))
                {
                    return Err(self
                        .src
                        .error(span, format!("plot rois leaves out ROI `{}`", missing.name))
                        .with_help("list every ROI once, in the column order you want"));
                }
                Some(list)
            }
        };
        Ok(PlotSpec {
            kind,
            analysis,
            metric,
            formats,
            title: raw.title,
            rois: order,
            analyses: drawn,
            split: raw.split.map(Spanned::into_inner),
            set,
            measure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[experiment]
name = "t"

[subjects.s1]
path = "data/s1"

[features.toy]
kind = "npy"
dir = "feats/{subject}"
layers = ["a", "b"]

[rois.V1]
column = "prf-visualrois"
labels = ["V1"]
match = "substring"
min_ncsnr = 0.2

[analyses.ridge]
kind = "ridge_cv"
alpha_grid = [0.1, 1.0, 10.0]
"#;

    fn parse_str(s: &str) -> Result<Experiment> {
        parse(Path::new("exp/t.toml"), s.to_string())
    }

    #[test]
    fn minimal_file_gets_hw2_defaults() {
        let e = parse_str(MINIMAL).unwrap();
        let SubjectFormat::Nsd {
            train_splits,
            voxel_mask,
            ..
        } = &e.subjects[0].format
        else {
            panic!("NSD is the default format")
        };
        assert_eq!(train_splits, &["train", "val"]);
        assert!(e.subjects[0].path.ends_with("exp/data/s1"));
        assert!(e.subjects[0].path.is_absolute());
        assert_eq!(voxel_mask.match_, LabelMatch::Exact);
        assert_eq!(e.analyses[0].0, "ridge");
        assert_eq!(e.analyses[0].1.metrics(), ["r2", "r2_over_nc", "pearson_r"]);
        assert!(
            e.features[0]
                .layer_file(&e.base_dir, "s1", "a")
                .ends_with("exp/feats/s1/a.npy")
        );
        let sel = e.rois[0].selector.as_ref().unwrap();
        assert!(!sel.matches("hV4"));
        assert!(sel.matches("V1v"));
    }

    #[test]
    fn unknown_key_names_file_line_col() {
        let bad = MINIMAL.replace("alpha_grid", "alpha_gird");
        let err = parse_str(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("exp/t.toml:21:1: unknown field `alpha_gird`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_key() {
        let bad = MINIMAL.replace("min_ncsnr = 0.2", "min_ncsnr = \"high\"");
        let err = parse_str(&bad).unwrap_err().to_string();
        assert!(err.starts_with("exp/t.toml:17:13:"), "{err}");
        assert!(err.contains("rois.V1.min_ncsnr"), "{err}");
    }

    #[test]
    fn bad_match_rule_points_at_value() {
        let bad = MINIMAL.replace("match = \"substring\"", "match = \"fuzzy\"");
        let err = parse_str(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("exp/t.toml:16:9: unknown match rule `fuzzy`"),
            "{err}"
        );
    }

    #[test]
    fn old_fit_table_shows_the_new_spelling() {
        let old = MINIMAL.replace(
            "[analyses.ridge]\nkind = \"ridge_cv\"\n",
            "[fit]\nmethod = \"ridge_cv\"\n",
        ) + "\n[score]\naggregate = \"median\"\n";
        let err = parse_str(&old).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("exp/t.toml:19:1: [fit] and [score] are now one analysis table"),
            "{text}"
        );
        let help = format!("{:?}", miette::Report::new(err));
        assert!(help.contains("[analyses.ridge]"), "{help}");
        assert!(help.contains("kind = \"ridge_cv\""), "{help}");
        assert!(help.contains("alpha_grid = [0.1, 1.0, 10.0]"), "{help}");
        assert!(help.contains("aggregate = \"median\""), "{help}");
    }

    #[test]
    fn unknown_analysis_kind_and_key_point_at_the_file() {
        let bad = MINIMAL.replace("kind = \"ridge_cv\"", "kind = \"svm\"");
        let err = parse_str(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("exp/t.toml:20:8: unknown analysis kind `svm`"),
            "{err}"
        );
        let bad = MINIMAL.replace("alpha_grid = [", "alpha_per_vox = true\nalpha_grid = [");
        let err = parse_str(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("exp/t.toml:21:1: unknown field `alpha_per_vox`"),
            "{err}"
        );
    }

    #[test]
    fn preprocess_vim1_is_accepted_and_listed() {
        let with = |p: &str| {
            MINIMAL.replace(
                "[features.toy]\nkind = \"npy\"\ndir = \"feats/{subject}\"\nlayers = [\"a\", \"b\"]\n",
                &format!(
                    "[models.alexnet]\narch = \"alexnet\"\nseed = 0\n\n\
                     [features.toy]\nkind = \"extract\"\nmodel = \"alexnet\"\npreprocess = \"{p}\"\n\
                     layers = [\"fc1\"]\n"
                ),
            )
        };
        let e = parse_str(&with("vim1")).unwrap();
        let FeatureKind::Extract { preprocess, .. } = &e.features[0].kind else {
            panic!("features.toy is an extract")
        };
        assert_eq!(*preprocess, PreprocessKind::Vim1);
        let err = parse_str(&with("tf1")).unwrap_err();
        let help = format!("{:?}", miette::Report::new(err));
        assert!(help.contains("unknown preprocess `tf1`"), "{help}");
        assert!(help.contains("\"vim1\""), "{help}");
    }

    #[test]
    fn negative_alpha_is_rejected() {
        let bad = MINIMAL.replace("[0.1, 1.0, 10.0]", "[0.1, -1.0]");
        let err = parse_str(&bad).unwrap_err().to_string();
        assert!(err.contains("every α must be finite and > 0"), "{err}");
    }
}
