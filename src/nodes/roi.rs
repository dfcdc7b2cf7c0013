//! `roi`: the voxels of one brain region, chosen by a label selector on the
//! subject's voxel table (or every voxel), an optional ncsnr threshold (HW2:
//! 0.2) and optional hemispheres. An ROI may be empty in a subject (Algonauts
//! ROIs are missing from some hemispheres): analyses that cannot fit an
//! empty ROI refuse it when the plan is built, the others score it NaN.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::nsd::VoxelTable;
use crate::vocab::Selector;

pub const VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct RoiTask {
    /// None: every voxel the subject keeps (the Algonauts "All vertices").
    pub selector: Option<Selector>,
    pub min_ncsnr: Option<f64>,
    pub hemis: Option<Vec<String>>,
    #[serde(skip)]
    pub n_voxels: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoiOut {
    pub n_voxels: usize,
    /// Distinct labels that matched, so a substring rule's reach is visible.
    pub matched_labels: Vec<String>,
}

impl RoiTask {
    /// Indices (into the subject's kept voxels) of this ROI, and the labels
    /// that matched; None when the table lacks the selector's column.
    pub fn select(&self, table: &VoxelTable) -> Option<(Vec<usize>, Vec<String>)> {
        let col = match &self.selector {
            Some(s) => Some(table.labels.get(&s.column)?),
            None => None,
        };
        let mut labels = Vec::new();
        let idx: Vec<usize> = (0..table.len())
            .filter(|&i| {
                let label_ok = match (&self.selector, col) {
                    (Some(s), Some(c)) => s.matches(&c[i]),
                    _ => true,
                };
                let ok = label_ok
                    && self.min_ncsnr.is_none_or(|m| table.ncsnr[i] > m)
                    && self
                        .hemis
                        .as_ref()
                        .is_none_or(|h| h.contains(&table.hemi[i]));
                if ok
                    && let Some(c) = col
                    && !labels.contains(&c[i])
                {
                    labels.push(c[i].clone());
                }
                ok
            })
            .collect();
        labels.sort();
        Some((idx, labels))
    }
}

impl NodeKind for RoiTask {
    fn kind(&self) -> &'static str {
        "roi"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        self.n_voxels as u64 * 200
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let table = super::subject::read_voxels(ctx.input("subject")?)?;
        let Some((idx, matched)) = self.select(&table) else {
            return Err(ctx.fail(format!(
                "voxel table has no label column `{}` (columns: {})",
                self.selector.as_ref().map_or("", |s| s.column.as_str()),
                table.labels.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        let as_i: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        ctx.out.write_npy("indices.npy", &[as_i.len()], &as_i)?;
        ctx.out.write_json(
            "roi.json",
            &RoiOut {
                n_voxels: idx.len(),
                matched_labels: matched,
            },
        )
    }
}

/// The words for an empty selection, with the labels there are (for errors).
pub fn why_empty(task: &RoiTask, table: &VoxelTable) -> (String, String) {
    let Some(sel) = &task.selector else {
        return ("no voxel in the chosen hemispheres".into(), String::new());
    };
    let mut present: Vec<&String> = table
        .labels
        .get(&sel.column)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    present.sort();
    present.dedup();
    let rule = match sel.match_ {
        crate::vocab::LabelMatch::Exact => "equals",
        crate::vocab::LabelMatch::Substring => "contains",
    };
    (
        format!(
            "selects no voxel: no label in `{}` {rule} any of {:?}{}",
            sel.column,
            sel.labels,
            task.min_ncsnr
                .map_or(String::new(), |m| format!(" with ncsnr > {m}"))
        ),
        format!(
            "labels present: {}",
            present
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}
