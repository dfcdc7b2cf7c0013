//! `roi`: the voxels of one brain region, chosen by label selectors on the
//! subject's voxel table plus an ncsnr threshold (HW2: 0.2).

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::config::{LabelMatch, Selector};
use crate::error::Result;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct RoiTask {
    pub selector: Selector,
    pub min_ncsnr: f64,
    pub hemis: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoiOut {
    pub n_voxels: usize,
    /// Distinct labels that matched, so a substring rule's reach is visible.
    pub matched_labels: Vec<String>,
}

impl RoiTask {
    /// Indices (into the subject's kept voxels) of this ROI, and the labels that matched.
    pub fn select(&self, table: &crate::nsd::VoxelTable) -> Option<(Vec<usize>, Vec<String>)> {
        let col = table.labels.get(&self.selector.column)?;
        let mut labels = Vec::new();
        let idx: Vec<usize> = (0..table.len())
            .filter(|&i| {
                let ok = self.selector.matches(&col[i])
                    && table.ncsnr[i] > self.min_ncsnr
                    && self
                        .hemis
                        .as_ref()
                        .is_none_or(|h| h.contains(&table.hemi[i]));
                if ok && !labels.contains(&col[i]) {
                    labels.push(col[i].clone());
                }
                ok
            })
            .collect();
        labels.sort();
        Some((idx, labels))
    }

    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let table = super::subject::read_voxels(ctx.input("subject")?)?;
        let Some((idx, matched)) = self.select(&table) else {
            return Err(ctx.fail(format!(
                "voxel table has no label column `{}` (columns: {})",
                self.selector.column,
                table.labels.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        if idx.is_empty() {
            let mut present: Vec<&String> = table.labels[&self.selector.column].iter().collect();
            present.sort();
            present.dedup();
            let rule = match self.selector.match_ {
                LabelMatch::Exact => "equal to",
                LabelMatch::Substring => "containing",
            };
            return Err(ctx
                .fail(format!(
                    "selects no voxel: none of `{}` is {rule} {:?} with ncsnr > {}",
                    self.selector.column, self.selector.labels, self.min_ncsnr
                ))
                .with_help(format!(
                    "labels present: {}",
                    present
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
        }
        let as_f: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        ctx.out.write_npy("indices.npy", &[as_f.len()], &as_f)?;
        ctx.out.write_json(
            "roi.json",
            &RoiOut {
                n_voxels: idx.len(),
                matched_labels: matched,
            },
        )
    }
}
