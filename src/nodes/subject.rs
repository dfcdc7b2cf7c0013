//! `subject`: one subject's brain data, ready to fit.
//!
//! As HW2 does: keep nsdgeneral voxels (the configurable `voxel_mask`) with
//! ncsnr above `min_ncsnr` and average the repeats of each image. The
//! responses (`y.npy`) are every stimulus's, in the subject's stimulus order;
//! which of them fit and which score is a `split` node's business.

use std::path::PathBuf;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::{Ctx, NodeKind};
use crate::nsd::{self, SubjectDir, VoxelTable};
use crate::vocab::Selector;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct SubjectTask {
    #[serde(skip)]
    pub dir: PathBuf,
    /// Every split of subject.json, in its order: the stimulus order.
    pub splits: Vec<String>,
    pub hemis: Vec<String>,
    pub voxel_mask: Selector,
    pub min_ncsnr: f64,
    /// Sizes for the memory estimate: images, voxels in the table, repeats.
    #[serde(skip)]
    pub sizes: (usize, usize, usize),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectOut {
    /// Rows of `y.npy`: the first `n_responses` stimuli have responses.
    pub n_responses: usize,
    pub n_stimuli: usize,
    pub n_voxels: usize,
    pub repeats: usize,
    /// Whether `voxels.parquet`'s ncsnr holds a noise-ceiling SNR (NSD) or NaN.
    pub noise_ceiling: bool,
    /// Whether the data came with each voxel's noise ceiling itself
    /// (`noise_ceiling.npy`, a fraction; Lab08).
    #[serde(default)]
    pub nc_given: bool,
}

/// Each kept voxel's noise ceiling as a fraction of variance, when the
/// subject has one: given by the data (Lab08) or from ncsnr and the repeats
/// averaged (NSD, HW2's formula; `repeats` overrides the subject's count).
pub fn noise_ceiling(
    entry: &crate::cache::Entry,
    repeats: Option<u32>,
) -> Result<Option<Vec<f64>>> {
    let meta: SubjectOut = entry.read_json("subject.json")?;
    if meta.nc_given {
        return Ok(Some(entry.read_f64("noise_ceiling.npy")?.data));
    }
    if !meta.noise_ceiling {
        return Ok(None);
    }
    let k = repeats.unwrap_or(meta.repeats.max(1) as u32);
    let voxels = read_voxels(entry)?;
    Ok(Some(
        voxels
            .ncsnr
            .iter()
            .map(|&s| crate::numerics::metrics::noise_ceiling(s, k))
            .collect(),
    ))
}

impl SubjectTask {
    /// The voxels that enter the analysis, as indices into the voxel table.
    pub fn kept_voxels(&self, table: &VoxelTable, subject: &SubjectDir) -> Result<Vec<usize>> {
        let mask = table.matching(&self.voxel_mask, &subject.voxels_file())?;
        let keep: Vec<usize> = (0..table.len())
            .filter(|&i| {
                mask[i] && table.ncsnr[i] > self.min_ncsnr && self.hemis.contains(&table.hemi[i])
            })
            .collect();
        if keep.is_empty() {
            return Err(Error::data(
                subject.voxels_file(),
                format!(
                    "no voxel passes the voxel mask ({} {:?} in `{}`) with ncsnr > {}",
                    match self.voxel_mask.match_ {
                        crate::vocab::LabelMatch::Exact => "exactly",
                        crate::vocab::LabelMatch::Substring => "containing",
                    },
                    self.voxel_mask.labels,
                    self.voxel_mask.column,
                    self.min_ncsnr
                ),
            ));
        }
        Ok(keep)
    }
}

impl NodeKind for SubjectTask {
    fn kind(&self) -> &'static str {
        "subject"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // Every repeat of every image as f32, the averages, the table.
        let (n, v, r) = self.sizes;
        (n as u64)
            .saturating_mul(v as u64)
            .saturating_mul(4 * (r as u64 + 2))
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = SubjectDir::open(&self.dir)?;
        let table = VoxelTable::read_csv(&subject.voxels_file())?;
        let keep = self.kept_voxels(&table, &subject)?;
        ctx.progress.set_message("averaging repeats");
        let (n, y) = nsd::averaged_responses(&subject, &self.splits, &self.hemis, &table, &keep)?;
        let v = keep.len();
        ctx.out.write_npy("y.npy", &[n, v], &y)?;
        let mut df = table.select(&keep).to_dataframe()?;
        crate::record::write_parquet(ctx, "voxels.parquet", &mut df)?;
        ctx.out.write_json(
            "subject.json",
            &SubjectOut {
                n_responses: n,
                n_stimuli: n,
                n_voxels: v,
                repeats: subject.meta.repeats,
                noise_ceiling: true,
                nc_given: false,
            },
        )
    }
}

/// The kept voxels' table from a subject entry.
pub fn read_voxels(entry: &crate::cache::Entry) -> Result<VoxelTable> {
    let bytes = entry.read("voxels.parquet")?;
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| Error::data(entry.path("voxels.parquet"), e.to_string()))?;
    VoxelTable::from_dataframe(&df, &entry.path("voxels.parquet"))
}

/// An Algonauts 2023 subject: every challenge vertex of the chosen
/// hemispheres (lh first), the training images' responses as distributed (the
/// challenge averaged repeats already), no noise ceiling, and where each
/// vertex sits in fsaverage space (`fsaverage.json`) for maps.
#[derive(Debug, Clone, Serialize)]
pub struct AlgonautsTask {
    /// In the key, so that the two layouts' subject nodes never share one.
    pub format: &'static str,
    #[serde(skip)]
    pub dir: PathBuf,
    pub hemis: Vec<String>,
    /// Sizes for the memory estimate: training images, vertices.
    #[serde(skip)]
    pub sizes: (usize, usize),
}

/// Per hemisphere: the fsaverage mesh's vertex count and, for each challenge
/// vertex, its fsaverage vertex.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fsaverage {
    pub hemis: Vec<(String, usize, Vec<usize>)>,
}

impl NodeKind for AlgonautsTask {
    fn kind(&self) -> &'static str {
        "subject"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // Each hemisphere's array and the joined matrix.
        let (n, v) = self.sizes;
        (n * v * 8) as u64
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subj = crate::algonauts::AlgonautsSubject::open(&self.dir)?;
        let hemis: Vec<_> = subj
            .hemis
            .iter()
            .filter(|h| self.hemis.contains(&h.name))
            .collect();
        ctx.progress.set_message("reading fMRI");
        let n = subj.train_images.len();
        let arrays = hemis
            .iter()
            .map(|h| subj.read_fmri(h))
            .collect::<Result<Vec<_>>>()?;
        let v: usize = arrays.iter().map(|a| a.rows_cols().1).sum();
        let mut y = vec![0f32; n * v];
        let mut col0 = 0;
        for (a, h) in arrays.iter().zip(&hemis) {
            let (rows, w) = a.rows_cols();
            if rows != n {
                return Err(Error::data(
                    &h.fmri_file,
                    format!("has {rows} rows but there are {n} training images"),
                ));
            }
            if let Some(i) = a.data.iter().position(|x| !x.is_finite()) {
                return Err(Error::data(
                    &h.fmri_file,
                    format!("non-finite response at image {}, vertex {}", i / w, i % w),
                ));
            }
            for i in 0..n {
                y[i * v + col0..i * v + col0 + w].copy_from_slice(&a.data[i * w..(i + 1) * w]);
            }
            col0 += w;
        }
        ctx.out.write_npy("y.npy", &[n, v], &y)?;
        let table = subj.voxel_table();
        let keep: Vec<usize> = (0..table.len())
            .filter(|&i| self.hemis.contains(&table.hemi[i]))
            .collect();
        let mut df = table.select(&keep).to_dataframe()?;
        crate::record::write_parquet(ctx, "voxels.parquet", &mut df)?;
        ctx.out.write_json(
            "fsaverage.json",
            &Fsaverage {
                hemis: hemis
                    .iter()
                    .map(|h| (h.name.clone(), h.fsaverage_len, h.fsaverage_index.clone()))
                    .collect(),
            },
        )?;
        ctx.out.write_json(
            "subject.json",
            &SubjectOut {
                n_responses: n,
                n_stimuli: n + subj.test_images.len(),
                n_voxels: v,
                repeats: 0,
                noise_ceiling: false,
                nc_given: false,
            },
        )
    }
}

/// A Lab08 subject: the bigmask voxels' averaged betas of the images with
/// responses (rows whose betas are NaN are dropped, as the lab's
/// `good_values`), the lab's noise ceiling, the ROI label families, and what
/// splits and volume maps need (`images.json`, `volume.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Lab08Task {
    pub format: &'static str,
    #[serde(skip)]
    pub dir: PathBuf,
    /// Sizes for the memory estimate: image rows, voxels.
    #[serde(skip)]
    pub sizes: (usize, usize),
}

/// The image rows of a Lab08 subject, for splits and feature imports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab08Images {
    /// Rows of the image table (and of every feature file).
    pub n_rows: usize,
    /// The rows with responses, in order: stimulus i is image row `kept[i]`.
    pub kept: Vec<usize>,
    /// The image table's boolean columns (`shared1000`), over every row.
    pub flags: indexmap::IndexMap<String, Vec<bool>>,
    /// Rows dropped for NaN betas (images without repeats).
    pub dropped: Vec<usize>,
}

/// Where the voxels sit in the brain volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub shape: [usize; 3],
    /// Flat C-order positions of the kept voxels in `shape`.
    pub positions: Vec<usize>,
}

impl NodeKind for Lab08Task {
    fn kind(&self) -> &'static str {
        "subject"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let (n, v) = self.sizes;
        (n * v * 16) as u64
    }
    /// Said at every exec, not only when the betas are read.
    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let images: Lab08Images = entry()?.read_json("images.json")?;
        let d = &images.dropped;
        if d.is_empty() {
            return Ok(vec![]);
        }
        let shown: Vec<String> = d.iter().take(10).map(|r| r.to_string()).collect();
        let s = if d.len() == 1 { "" } else { "s" };
        Ok(vec![format!(
            "dropped {} image row{s} without responses (NaN betas, n_reps = 0) from the betas and every feature matrix: row{s} {}{}",
            d.len(),
            shown.join(", "),
            if d.len() > 10 { ", …" } else { "" }
        )])
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let subj = crate::lab08::Lab08Subject::open(&self.dir)?;
        let betas_file = subj.betas_file();
        ctx.progress.set_message("reading betas");
        let betas = crate::hdf5::read_f64(&betas_file, crate::lab08::BETAS_DATASET)?;
        let (n, v) = betas.rows_cols();
        let mut kept = Vec::with_capacity(n);
        let mut dropped = Vec::new();
        for i in 0..n {
            let row = &betas.data[i * v..(i + 1) * v];
            let nan = row.iter().filter(|x| x.is_nan()).count();
            let reps = subj.images.n_reps[i];
            if nan == v && v > 0 {
                dropped.push(i);
                continue;
            }
            if let Some(j) = row.iter().position(|x| !x.is_finite()) {
                return Err(Error::data(
                    &betas_file,
                    format!(
                        "image row {i}, voxel {j} is {}; only whole rows may be NaN (images without repeats)",
                        row[j]
                    ),
                ));
            }
            if reps == 0 {
                return Err(Error::data(
                    &betas_file,
                    format!("image row {i} has betas but the image table says n_reps = 0"),
                )
                .with_help("the lab's betas are NaN exactly where n_reps is 0; is the image table the subject's?"));
            }
            kept.push(i);
        }
        let mut y = Vec::with_capacity(kept.len() * v);
        for &i in &kept {
            y.extend_from_slice(&betas.data[i * v..(i + 1) * v]);
        }
        drop(betas);
        ctx.out.write_npy("y.npy", &[kept.len(), v], &y)?;
        ctx.out
            .write_npy("noise_ceiling.npy", &[v], &subj.rois.noise_ceiling)?;
        let mut df = subj.voxel_table().to_dataframe()?;
        crate::record::write_parquet(ctx, "voxels.parquet", &mut df)?;
        ctx.out.write_json(
            "images.json",
            &Lab08Images {
                n_rows: n,
                kept: kept.clone(),
                flags: subj.images.flags.clone(),
                dropped,
            },
        )?;
        ctx.out.write_json(
            "volume.json",
            &Volume {
                shape: subj.rois.shape,
                positions: (0..subj.rois.mask.len())
                    .filter(|&i| subj.rois.mask[i])
                    .collect(),
            },
        )?;
        ctx.out.write_json(
            "subject.json",
            &SubjectOut {
                n_responses: kept.len(),
                n_stimuli: kept.len(),
                n_voxels: v,
                repeats: 0,
                noise_ceiling: false,
                nc_given: true,
            },
        )
    }
}

/// A vim-1 subject: its voxels' repeat-averaged responses, the 1750
/// training images then the 120 validation images (`y.npy`), after the
/// project's rule that drops a voxel NaN in any training image (and, since
/// it cannot be scored, one NaN only in a validation image). No noise
/// ceiling: CRCNS ships the averages only.
#[derive(Debug, Clone, Serialize)]
pub struct Vim1Task {
    pub format: &'static str,
    /// `S1`: which subject of the file.
    pub id: String,
    #[serde(skip)]
    pub file: PathBuf,
    /// Sizes for the memory estimate: images, voxels in the file.
    #[serde(skip)]
    pub sizes: (usize, usize),
}

/// What the NaN rule dropped, per ROI (for the log).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vim1Dropped {
    /// (ROI name, voxels in the file, dropped for a training NaN, dropped
    /// for a NaN only in validation).
    pub rois: Vec<(String, usize, usize, usize)>,
}

impl NodeKind for Vim1Task {
    fn kind(&self) -> &'static str {
        "subject"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // Both response matrices as read, transposed once, and the kept copy.
        let (n, v) = self.sizes;
        (n * v * 8 * 3) as u64
    }
    /// Said at every exec: the counts a researcher checks against the
    /// project's (S1: 1550 → 1535 V4 voxels).
    fn warnings(&self, entry: &dyn Fn() -> Result<crate::cache::Entry>) -> Result<Vec<String>> {
        let d: Vim1Dropped = entry()?.read_json("dropped.json")?;
        Ok(d.rois
            .iter()
            .filter(|r| r.2 + r.3 > 0)
            .map(|(roi, all, trn, val)| {
                let mut s = format!(
                    "{}: {roi} keeps {} of {all} voxels: {trn} NaN in a training image (dropped, as the project does)",
                    self.id,
                    all - trn - val
                );
                if *val > 0 {
                    s.push_str(&format!(
                        ", {val} NaN only in a validation image (dropped: it cannot be scored)"
                    ));
                }
                s
            })
            .collect())
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        ctx.progress.set_message("reading EstimatedResponses.mat");
        let r = crate::vim1::read_responses(&self.file, &self.id)?;
        let (nt, v) = r.train.rows_cols();
        let nv = r.val.rows_cols().0;
        let mut y = r.train.data;
        y.extend_from_slice(&r.val.data);
        ctx.out.write_npy("y.npy", &[nt + nv, v], &y)?;
        drop(y);
        let mut labels = indexmap::IndexMap::new();
        labels.insert(
            "roi".to_string(),
            r.roi.iter().map(|&c| crate::vim1::roi_name(c)).collect(),
        );
        let table = VoxelTable {
            hemi: vec![crate::record::BOTH.to_string(); v],
            index: r.voxel.iter().map(|&j| j as u32).collect(),
            ncsnr: vec![f64::NAN; v],
            labels,
        };
        let mut df = table.to_dataframe()?;
        crate::record::write_parquet(ctx, "voxels.parquet", &mut df)?;
        // Per ROI code, in code order: voxels in the file and what was dropped.
        let codes = crate::vim1::read_responses_codes(&self.file, &self.id)?;
        let mut rois: Vec<(i64, usize, usize, usize)> = Vec::new();
        let train_nan: std::collections::HashSet<usize> =
            r.dropped[..r.dropped_train_nan].iter().copied().collect();
        for (j, &c) in codes.iter().enumerate() {
            let at = match rois.iter().position(|x| x.0 == c) {
                Some(at) => at,
                None => {
                    rois.push((c, 0, 0, 0));
                    rois.len() - 1
                }
            };
            rois[at].1 += 1;
            if train_nan.contains(&j) {
                rois[at].2 += 1;
            } else if r.dropped.contains(&j) {
                rois[at].3 += 1;
            }
        }
        rois.sort();
        ctx.out.write_json(
            "dropped.json",
            &Vim1Dropped {
                rois: rois
                    .into_iter()
                    .map(|(c, a, t, v)| (crate::vim1::roi_name(c), a, t, v))
                    .collect(),
            },
        )?;
        ctx.out.write_json(
            "subject.json",
            &SubjectOut {
                n_responses: nt + nv,
                n_stimuli: nt + nv,
                n_voxels: v,
                repeats: 0,
                noise_ceiling: false,
                nc_given: false,
            },
        )
    }
}

/// `subject` of an `npz_responses` file: the kept stimuli's responses
/// (`y.npy`, stimuli × neurons), the neurons' table, and the stimulus
/// variable after binning, selection and offset (`orientations.npy`: what
/// gratings are rendered at, and the x axis of tuning curves).
#[derive(Debug, Clone, Serialize)]
pub struct NpzResponsesTask {
    pub format: &'static str,
    pub select: crate::config::NpzSelect,
    #[serde(skip)]
    pub file: PathBuf,
    /// Sizes for the memory estimate: rows in the file, neurons.
    #[serde(skip)]
    pub sizes: (usize, usize),
}

impl NodeKind for NpzResponsesTask {
    fn kind(&self) -> &'static str {
        "subject"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // The file's matrix in f32 and f64, and the kept copy.
        let (n, v) = self.sizes;
        (n * v * 20) as u64
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        ctx.progress.set_message("reading the responses");
        let subj = crate::npz_responses::NpzSubject::open(&self.file, &self.select)?;
        let y = subj.responses(&self.select)?;
        let (n, v) = (subj.n_stimuli(), subj.n_neurons);
        ctx.out.write_npy("y.npy", &[n, v], &y)?;
        ctx.out
            .write_npy("orientations.npy", &[n], &subj.stimulus)?;
        let mut df = subj.voxel_table().to_dataframe()?;
        crate::record::write_parquet(ctx, "voxels.parquet", &mut df)?;
        ctx.out.write_json(
            "subject.json",
            &SubjectOut {
                n_responses: n,
                n_stimuli: n,
                n_voxels: v,
                repeats: 1,
                noise_ceiling: false,
                nc_given: false,
            },
        )
    }
}
