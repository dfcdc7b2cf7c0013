//! The shared words of an experiment: how voxels are picked, what is scored
//! and how it is summarised, where a net runs and how its images are
//! prepared. Config, nodes and analyses all speak these; none of them owns them.

use serde::Serialize;

/// Picks voxels by the labels in one column of the voxel table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Selector {
    pub column: String,
    pub labels: Vec<String>,
    #[serde(rename = "match")]
    pub match_: LabelMatch,
}

/// HW2 matches by substring ('V4' matches 'hV4', 'ventral' matches
/// 'midventral'); the file must say which rule it means.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LabelMatch {
    Exact,
    Substring,
}

impl Selector {
    pub fn matches(&self, label: &str) -> bool {
        self.labels.iter().any(|want| match self.match_ {
            LabelMatch::Exact => label == want,
            LabelMatch::Substring => label.contains(want.as_str()),
        })
    }
}

/// How images are prepared before the net: a torchvision pipeline over
/// image files, or the Kay V4 project's TensorFlow one over vim-1 stimuli.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PreprocessKind {
    /// HW2: Resize((256, 256)), CenterCrop(224), ToTensor, Normalize(ImageNet).
    Hw2,
    /// Algonauts devkit: Resize((224, 224)), ToTensor, Normalize(ImageNet).
    Algonauts,
    /// Kay V4 project: vim-1's float grayscale stimuli `+ .5`, tiled to three
    /// channels, TF1 `tf.image.resize_images` to 224×224 (bilinear, legacy
    /// mapping, float32); no crop, no normalisation.
    /// See [`crate::preprocess::vim1_tensor`].
    Vim1,
}

impl PreprocessKind {
    /// The torchvision pipeline for image files; `None` for [`Vim1`](Self::Vim1),
    /// whose input is vim-1's float stimuli, not `u8` images.
    pub fn pipeline(self) -> Option<crate::preprocess::Preprocess> {
        match self {
            PreprocessKind::Hw2 => Some(crate::preprocess::Preprocess::hw2()),
            PreprocessKind::Algonauts => Some(crate::preprocess::Preprocess::algonauts()),
            PreprocessKind::Vim1 => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A GPU when the build and the machine have one, else the CPU.
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    R2,
    R2OverNc,
    PearsonR,
    /// The squared Pearson r (`scipy.stats.linregress(p, a).rvalue**2`, the
    /// Kay V4 project's "r-squared"): never negative, unlike R².
    PearsonR2,
}

impl Metric {
    /// The default of analyses that score everything (HW2's three).
    pub const ALL: [Metric; 3] = [Metric::R2, Metric::R2OverNc, Metric::PearsonR];
    pub const KNOWN: [Metric; 4] = [
        Metric::R2,
        Metric::R2OverNc,
        Metric::PearsonR,
        Metric::PearsonR2,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Metric::R2 => "r2",
            Metric::R2OverNc => "r2_over_nc",
            Metric::PearsonR => "pearson_r",
            Metric::PearsonR2 => "pearson_r2",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Metric::R2 => "R²",
            Metric::R2OverNc => "R² / noise ceiling",
            Metric::PearsonR => "Pearson r",
            Metric::PearsonR2 => "Pearson r²",
        }
    }
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::KNOWN.into_iter().find(|m| m.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Mean,
    Median,
    /// Lab08 prints the min, max and median R² of each layer.
    Min,
    Max,
    /// The spread over voxels (numpy's `np.std`, ddof 0): the Kay V4
    /// project's error bars.
    Std,
}

impl Aggregate {
    pub const ALL: [Aggregate; 5] = [
        Aggregate::Mean,
        Aggregate::Median,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Std,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Median => "median",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Std => "std",
        }
    }
    pub fn parse(s: &str) -> Option<Aggregate> {
        Aggregate::ALL.into_iter().find(|a| a.name() == s)
    }
    /// Over one ROI's voxel values, NaN ignored (NaN when none is left).
    pub fn of(self, xs: &[f64]) -> f64 {
        use crate::numerics::metrics;
        match self {
            Aggregate::Mean => metrics::mean(xs),
            Aggregate::Median => metrics::median(xs),
            Aggregate::Min => xs
                .iter()
                .copied()
                .filter(|x| !x.is_nan())
                .reduce(f64::min)
                .unwrap_or(f64::NAN),
            Aggregate::Max => xs
                .iter()
                .copied()
                .filter(|x| !x.is_nan())
                .reduce(f64::max)
                .unwrap_or(f64::NAN),
            Aggregate::Std => metrics::std(xs),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Svg => "svg",
        }
    }
}
