//! `table`: the experiment's results. One row per (subject, model, layer, ROI)
//! with the ROI aggregate of each metric, plus every voxel's scores.

use polars::prelude::*;
use serde::Serialize;

use super::{Ctx, as_indices};
use crate::config::{Aggregate, Metric};
use crate::error::{Error, Result};
use crate::metrics;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRow {
    pub subject: String,
    pub model: String,
    /// Position of the layer in its model's `layers` list (depth order).
    pub layer_index: usize,
    pub layer: String,
    pub roi: String,
}

impl TableRow {
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.subject, self.model, self.layer, self.roi
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableTask {
    /// Sorted, so that the order of TOML tables changes nothing.
    pub rows: Vec<TableRow>,
    pub aggregate: Aggregate,
    pub metrics: Vec<Metric>,
}

fn write_parquet(ctx: &Ctx, name: &str, df: &mut DataFrame) -> Result<()> {
    let path = ctx.out.path(name);
    let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    ParquetWriter::new(file)
        .finish(df)
        .map_err(|e| ctx.fail(format!("writing {name}: {e}")))?;
    Ok(())
}

impl TableTask {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let agg = |xs: &[f64]| match self.aggregate {
            Aggregate::Mean => metrics::mean(xs),
            Aggregate::Median => metrics::median(xs),
        };
        // Per-ROI table columns.
        let mut cols: Vec<(&str, Vec<String>)> = vec![
            ("subject", vec![]),
            ("model", vec![]),
            ("layer", vec![]),
            ("roi", vec![]),
        ];
        let (mut layer_idx, mut n_vox, mut alpha) = (Vec::new(), Vec::new(), Vec::new());
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); self.metrics.len()];
        let (mut fit_keys, mut score_keys) = (Vec::new(), Vec::new());
        // Per-voxel table columns.
        let mut v_text: Vec<Vec<String>> = vec![Vec::new(); 5];
        let (mut v_index, mut v_ncsnr, mut v_nc, mut v_alpha) = (vec![], vec![], vec![], vec![]);
        let mut v_values: Vec<Vec<f64>> = vec![Vec::new(); self.metrics.len()];

        // One voxel table per subject, read (and hashed) once rather than once per row.
        let mut voxel_tables = std::collections::HashMap::new();
        for row in &self.rows {
            let id = row.id();
            let fit = ctx.input(&format!("fit:{id}"))?;
            let score = ctx.input(&format!("score:{id}"))?;
            let roi = ctx.input(&format!("roi:{id}"))?;
            if !voxel_tables.contains_key(&row.subject) {
                let t =
                    super::subject::read_voxels(ctx.input(&format!("subject:{}", row.subject))?)?;
                voxel_tables.insert(row.subject.clone(), t);
            }
            let voxels = &voxel_tables[&row.subject];
            let fit_meta: super::fit::FitOut = fit.read_json("fit.json")?;
            let alphas = fit.read_f64("alpha.npy")?.data;
            let idx = as_indices(&roi.read_f64("indices.npy")?);
            let nc = score.read_f64("noise_ceiling.npy")?.data;

            for (c, v) in [&row.subject, &row.model, &row.layer, &row.roi]
                .into_iter()
                .enumerate()
            {
                cols[c].1.push(v.clone());
            }
            layer_idx.push(row.layer_index as u32);
            n_vox.push(idx.len() as u32);
            alpha.push(fit_meta.alpha);
            fit_keys.push(fit.manifest.key.clone());
            score_keys.push(score.manifest.key.clone());
            for (m, metric) in self.metrics.iter().enumerate() {
                let per_voxel = score.read_f64(&format!("{}.npy", metric.name()))?.data;
                values[m].push(agg(&per_voxel));
                v_values[m].extend(per_voxel);
            }
            for (c, &j) in idx.iter().enumerate() {
                for (t, v) in [
                    &row.subject,
                    &row.model,
                    &row.layer,
                    &row.roi,
                    &voxels.hemi[j],
                ]
                .into_iter()
                .enumerate()
                {
                    v_text[t].push(v.clone());
                }
                v_index.push(voxels.index[j]);
                v_ncsnr.push(voxels.ncsnr[j]);
                v_nc.push(nc[c]);
                v_alpha.push(alphas[c]);
            }
        }

        let n_rows = layer_idx.len();
        let mut columns: Vec<Column> = cols
            .into_iter()
            .map(|(name, v)| Column::new(name.into(), v))
            .collect();
        columns.insert(3, Column::new("layer_index".into(), layer_idx));
        columns.push(Column::new("n_voxels".into(), n_vox));
        columns.push(Column::new("alpha".into(), alpha));
        columns.push(Column::new(
            "aggregate".into(),
            vec![self.aggregate.name(); n_rows],
        ));
        for (m, metric) in self.metrics.iter().enumerate() {
            columns.push(Column::new(metric.name().into(), &values[m]));
        }
        columns.push(Column::new("fit_key".into(), fit_keys));
        columns.push(Column::new("score_key".into(), score_keys));
        let mut df = DataFrame::new_infer_height(columns).map_err(|e| ctx.fail(e.to_string()))?;
        write_parquet(ctx, "results.parquet", &mut df)?;
        let path = ctx.out.path("results.csv");
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        CsvWriter::new(file)
            .finish(&mut df)
            .map_err(|e| ctx.fail(format!("writing results.csv: {e}")))?;

        let names = ["subject", "model", "layer", "roi", "hemi"];
        let mut vcols: Vec<Column> = names
            .iter()
            .zip(v_text)
            .map(|(n, v)| Column::new((*n).into(), v))
            .collect();
        vcols.push(Column::new("index".into(), v_index));
        vcols.push(Column::new("ncsnr".into(), v_ncsnr));
        vcols.push(Column::new("noise_ceiling".into(), v_nc));
        vcols.push(Column::new("alpha".into(), v_alpha));
        for (m, metric) in self.metrics.iter().enumerate() {
            vcols.push(Column::new(metric.name().into(), &v_values[m]));
        }
        let mut vdf = DataFrame::new_infer_height(vcols).map_err(|e| ctx.fail(e.to_string()))?;
        write_parquet(ctx, "voxel_scores.parquet", &mut vdf)
    }
}

/// Reads a results table (from a cache entry or a results directory).
pub fn read_results(bytes: Vec<u8>) -> std::result::Result<DataFrame, PolarsError> {
    ParquetReader::new(std::io::Cursor::new(bytes)).finish()
}
