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
            },
        )
    }
}
