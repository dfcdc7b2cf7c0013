//! Stage one: the TOML file as serde sees it. Every table rejects unknown keys,
//! and values that later checks must point at are wrapped in `Spanned`.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_spanned::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    pub experiment: RawHeader,
    #[serde(default)]
    pub subjects: IndexMap<String, Spanned<RawSubject>>,
    #[serde(default)]
    pub models: IndexMap<String, Spanned<RawModel>>,
    #[serde(default)]
    pub features: IndexMap<String, Spanned<RawFeatures>>,
    #[serde(default)]
    pub rois: IndexMap<String, Spanned<RawRoi>>,
    /// Each `[analyses.NAME]` is parsed by its kind's own parser (see
    /// `crate::analyses`); here only that the table is there.
    #[serde(default)]
    #[allow(dead_code)]
    pub analyses: IndexMap<String, serde::de::IgnoredAny>,
    /// The spelling before analyses: refused with the new one shown.
    pub fit: Option<Spanned<toml::Table>>,
    pub score: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub plots: Vec<Spanned<RawPlot>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    pub name: Spanned<String>,
    pub description: Option<String>,
    /// Cache directory, relative to this file. The `--cache` flag overrides it.
    pub cache: Option<Spanned<PathBuf>>,
    /// Where tables and plots are written, relative to this file.
    pub results: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubject {
    /// "runner-nsd-v1" (default; see README), "algonauts2023", "lab08" or "vim1".
    pub format: Option<Spanned<String>>,
    /// vim1: the subject's suffix in the files (`S1` of `dataTrnS1`);
    /// default: the subject's table name.
    pub id: Option<Spanned<String>>,
    /// The subject's directory, in that layout.
    pub path: Spanned<PathBuf>,
    pub train_splits: Option<Spanned<Vec<String>>>,
    pub test_splits: Option<Spanned<Vec<String>>>,
    pub hemis: Option<Spanned<Vec<String>>>,
    /// Which voxels enter at all (HW2: nsdgeneral).
    pub voxel_mask: Option<Spanned<RawSelector>>,
    /// Voxels with ncsnr <= this are dropped before any ROI is built.
    pub min_ncsnr: Option<Spanned<f64>>,
    /// npz_responses: the array of responses, stimuli × neurons (seed 004: `resp`).
    pub responses: Option<Spanned<String>>,
    /// npz_responses: the 1-D stimulus variable, one value per row (seed 004:
    /// `stimuli`, orientation in degrees).
    pub stimulus: Option<Spanned<String>>,
    /// npz_responses: average rows whose stimulus falls in bins this wide
    /// (`np.digitize` over 0, w, 2w, … 360), before any selection.
    pub bin_width: Option<Spanned<f64>>,
    /// npz_responses: keep rows with stimulus ≤ this (seed 004: 180).
    pub stimulus_max: Option<Spanned<f64>>,
    /// npz_responses: keep rows with stimulus ≥ this.
    pub stimulus_min: Option<Spanned<f64>>,
    /// npz_responses: added to the stimulus after selection (seed 004: −90,
    /// so that 0 is vertical and + is tilted right).
    pub stimulus_offset: Option<Spanned<f64>>,
    /// npz_responses: per-neuron label arrays, usable as ROI columns.
    pub labels: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    pub column: Spanned<String>,
    pub labels: Spanned<Vec<String>>,
    #[serde(rename = "match")]
    pub match_: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// "alexnet" or "sequential" (a small net declared layer by layer).
    pub arch: Spanned<String>,
    /// sequential: input channels, height, width (default: the grating's 1 × 48 × 64).
    pub input: Option<Spanned<Vec<usize>>>,
    /// sequential: the layers in order.
    pub layers: Option<Spanned<Vec<Spanned<RawLayer>>>>,
    /// "torchvision" (64,192,384,256,256) or "hw" (64,192,384,384,256).
    pub layout: Option<Spanned<String>>,
    /// Explicit conv widths; overrides `layout`.
    pub widths: Option<Spanned<Vec<usize>>>,
    pub hidden: Option<usize>,
    pub num_classes: Option<usize>,
    pub dropout: Option<f64>,
    /// A .pt/.pth (zip) or .safetensors file; without it the weights are random.
    pub checkpoint: Option<Spanned<PathBuf>>,
    /// Seed of the random initialisation (no checkpoint).
    pub seed: Option<Spanned<u64>>,
    /// Train the net here (on HW2's Barcode task) instead of loading weights.
    pub train: Option<Spanned<RawTrain>>,
}

/// One layer of a sequential net: `type` and that type's sizes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub type_: Spanned<String>,
    pub in_channels: Option<Spanned<usize>>,
    pub out_channels: Option<Spanned<usize>>,
    pub kernel_size: Option<Spanned<usize>>,
    pub stride: Option<Spanned<usize>>,
    pub padding: Option<Spanned<usize>>,
    pub in_features: Option<Spanned<usize>>,
    pub out_features: Option<Spanned<usize>>,
    pub bias: Option<Spanned<bool>>,
    /// conv2d: "default" (PyTorch's) or "center_surround_gabor" (seed 004's filters).
    pub init: Option<Spanned<String>>,
    /// conv2d, center_surround_gabor: the filters' σ (seed 004: 1.1).
    pub sigma: Option<Spanned<f64>>,
}

/// `[models.NAME.train]`. Defaults are HW2's (1M/50k samples) and HW1's
/// optimizer (SGD, momentum 0.9, weight decay 5e-4).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrain {
    /// "barcode" (HW2's, the default) or "grating_tilt" (seed 004's).
    pub task: Option<Spanned<String>>,
    /// grating_tilt: training gratings (seed 004: 1000).
    pub n_train: Option<Spanned<usize>>,
    /// grating_tilt: held-out gratings for the learning curve.
    pub n_val: Option<Spanned<usize>>,
    pub train_length: Option<Spanned<u64>>,
    pub val_length: Option<Spanned<usize>>,
    /// The dataset's seed (training draws, validation shuffle).
    pub data_seed: Option<u64>,
    /// Seed of the fixed validation integers.
    pub val_seed: Option<u64>,
    pub batch_size: Option<Spanned<usize>>,
    pub epochs: Option<Spanned<u64>>,
    pub steps: Option<Spanned<u64>>,
    /// "sgd" or "adam".
    pub optimizer: Option<Spanned<String>>,
    pub lr: Spanned<f64>,
    pub momentum: Option<Spanned<f64>>,
    pub nesterov: Option<bool>,
    pub weight_decay: Option<Spanned<f64>>,
    pub betas: Option<Spanned<Vec<f64>>>,
    pub eps: Option<Spanned<f64>>,
    /// "constant", "step" or "cosine".
    pub schedule: Option<Spanned<String>>,
    pub lr_step_epochs: Option<Spanned<u64>>,
    pub lr_gamma: Option<Spanned<f64>>,
    pub min_lr: Option<Spanned<f64>>,
    /// Validate every N steps (default: every epoch).
    pub eval_every: Option<Spanned<u64>>,
    /// Save resumable state every N steps (default: at every validation).
    pub checkpoint_every: Option<Spanned<u64>>,
    /// "auto", "cpu" or "cuda".
    pub device: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeatures {
    /// Where features come from. `npy` today; extraction from a model plugs in here.
    pub kind: Spanned<String>,
    /// `npy`: directory holding `<layer>.npy`; `{subject}` is replaced by the subject name.
    pub dir: Option<Spanned<String>>,
    /// `hdf5`: the file of each layer, with `{subject}` and `{layer}`.
    pub path: Option<Spanned<String>>,
    /// `hdf5`: the dataset holding images × features (default: `features`).
    pub dataset: Option<Spanned<String>>,
    /// `hdf5`: several datasets stacked by rows (Kay V4: `["train", "val"]`).
    pub datasets: Option<Spanned<Vec<String>>>,
    pub layers: Spanned<Vec<String>>,
    /// Subjects these features are fitted to (default: all).
    pub subjects: Option<Spanned<Vec<String>>>,
    /// `extract`: the `[models.*]` table to run.
    pub model: Option<Spanned<String>>,
    /// `extract`: "hw2" (resize 256², crop 224), "algonauts" (resize 224²) or
    /// "vim1" (vim-1 float stimuli, TF1 bilinear 224², no normalisation).
    pub preprocess: Option<Spanned<String>>,
    pub batch_size: Option<Spanned<usize>>,
    /// `extract`: "auto", "cpu" or "cuda".
    pub device: Option<Spanned<String>>,
    /// `extract`: "images" (the subject's, default) or "gratings" (rendered at
    /// each stimulus's orientation, seed 004's `grating()`).
    pub stimuli: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoi {
    /// `all = true`: every voxel the subject keeps (Algonauts' "All vertices").
    pub all: Option<Spanned<bool>>,
    pub column: Option<Spanned<String>>,
    pub labels: Option<Spanned<Vec<String>>>,
    #[serde(rename = "match")]
    pub match_: Option<Spanned<String>>,
    pub min_ncsnr: Option<Spanned<f64>>,
    pub hemis: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlot {
    /// "heatmap" (HW2: layers × ROIs), "roi_bars" (Algonauts: ROI medians, lh
    /// vs rh), "set_bars" (Kay V4: train/test/validation per analysis) or
    /// "scatter" (Kay V4: predicted vs measured ROI mean).
    pub kind: Spanned<String>,
    /// The analysis whose records it draws (default: the only one).
    pub analysis: Option<Spanned<String>>,
    pub metric: Option<Spanned<String>>,
    pub formats: Option<Spanned<Vec<String>>>,
    pub title: Option<String>,
    /// Column order of the heatmap (HW2: V1..V4, ventral, parietal, lateral).
    pub rois: Option<Spanned<Vec<String>>>,
    /// set_bars: the analyses side by side (default: all).
    pub analyses: Option<Spanned<Vec<String>>>,
    /// set_bars: which split's scores (default "0", the project's).
    pub split: Option<Spanned<String>>,
    /// scatter: which stimuli (default "validation").
    pub set: Option<Spanned<String>>,
}
