//! `subject`: one subject's brain data, ready to fit.
//!
//! As HW2 does: keep nsdgeneral voxels (the configurable `voxel_mask`) with
//! ncsnr above `min_ncsnr`, average the repeats of each image, and join the
//! training splits (train + val) into one training set.

use std::path::PathBuf;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::config::Selector;
use crate::error::{Error, Result};
use crate::nsd::{self, SubjectDir, VoxelTable};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct SubjectTask {
    #[serde(skip)]
    pub dir: PathBuf,
    pub train_splits: Vec<String>,
    pub test_splits: Vec<String>,
    pub hemis: Vec<String>,
    pub voxel_mask: Selector,
    pub min_ncsnr: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectOut {
    pub n_train: usize,
    pub n_test: usize,
    pub n_voxels: usize,
    pub repeats: usize,
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
                        crate::config::LabelMatch::Exact => "exactly",
                        crate::config::LabelMatch::Substring => "containing",
                    },
                    self.voxel_mask.labels,
                    self.voxel_mask.column,
                    self.min_ncsnr
                ),
            ));
        }
        Ok(keep)
    }

    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = SubjectDir::open(&self.dir)?;
        let table = VoxelTable::read_csv(&subject.voxels_file())?;
        let keep = self.kept_voxels(&table, &subject)?;
        ctx.progress.set_message("averaging repeats");
        let (n_train, y_train) =
            nsd::averaged_responses(&subject, &self.train_splits, &self.hemis, &table, &keep)?;
        let (n_test, y_test) =
            nsd::averaged_responses(&subject, &self.test_splits, &self.hemis, &table, &keep)?;
        let v = keep.len();
        ctx.out.write_npy("y_train.npy", &[n_train, v], &y_train)?;
        ctx.out.write_npy("y_test.npy", &[n_test, v], &y_test)?;
        let mut df = table.select(&keep).to_dataframe()?;
        let path = ctx.out.path("voxels.parquet");
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        ParquetWriter::new(file)
            .finish(&mut df)
            .map_err(|e| ctx.fail(format!("writing voxels.parquet: {e}")))?;
        ctx.out.write_json(
            "subject.json",
            &SubjectOut {
                n_train,
                n_test,
                n_voxels: v,
                repeats: subject.meta.repeats,
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
