//! The results contract: what every scoring node writes, whatever the
//! analysis. The table node builds the experiment's tables from these alone
//! and plots read those tables, so a new analysis never edits either.
//!
//! A record is two small parquet files in the scoring node's entry:
//! - `summary.parquet`: one row per (roi, hemisphere, metric) with its
//!   aggregate over the ROI's voxels (`value`, `n_voxels`);
//! - `voxels.parquet`: one row per (roi, hemisphere, voxel, metric), the
//!   per-voxel values (scores, and per-voxel extras such as α or λ).
//!
//! The labels that place a record in the experiment (analysis, subject,
//! feature source, layer) are the plan's, added by the table node, so that
//! renaming an analysis re-runs nothing but the table.

use polars::prelude::*;

use crate::cache::Entry;
use crate::error::{Error, Result};
use crate::node::Ctx;
use crate::numerics::metrics;
use crate::vocab::Aggregate;

/// Aggregates over both hemispheres are labelled this way.
pub const BOTH: &str = "both";

#[derive(Debug, Default)]
pub struct Record {
    roi: Vec<String>,
    hemisphere: Vec<String>,
    metric: Vec<String>,
    aggregate: Vec<String>,
    value: Vec<f64>,
    n_voxels: Vec<u32>,
    v_roi: Vec<String>,
    v_hemisphere: Vec<String>,
    v_voxel: Vec<i64>,
    v_metric: Vec<String>,
    v_value: Vec<f64>,
    /// ROI × hemisphere pairs that had no voxel, for the user.
    pub empty: Vec<String>,
}

impl Record {
    /// Per-voxel `values` (by metric) into the voxel table under `roi`;
    /// `hemi[i]` and `voxel[i]` name voxel i of every value list.
    pub fn add_voxels(
        &mut self,
        roi: &str,
        hemi: &[&str],
        voxel: &[i64],
        values: &[(&str, &[f64])],
    ) {
        for (name, vals) in values {
            for i in 0..hemi.len() {
                self.v_roi.push(roi.to_string());
                self.v_hemisphere.push(hemi[i].to_string());
                self.v_voxel.push(voxel[i]);
                self.v_metric.push(name.to_string());
                self.v_value.push(vals[i]);
            }
        }
    }

    /// Each metric's aggregate over one ROI's voxels into the summary: over
    /// both hemispheres and, with `by_hemisphere`, over each of `hemis` (the
    /// subject's, so that a hemisphere without the ROI gets its NaN row).
    pub fn summarize(
        &mut self,
        roi: &str,
        hemis: &[String],
        hemi: &[&str],
        values: &[(&str, &[f64])],
        aggregate: Aggregate,
        by_hemisphere: bool,
    ) {
        let mut groups: Vec<(&str, Vec<usize>)> = vec![(BOTH, (0..hemi.len()).collect())];
        if by_hemisphere {
            for h in hemis {
                groups.push((
                    h.as_str(),
                    (0..hemi.len()).filter(|&i| hemi[i] == h).collect(),
                ));
            }
        }
        let all_empty = hemi.is_empty();
        for (g, idx) in &groups {
            // An ROI empty everywhere is said once, not once per hemisphere.
            // (and once per ROI when several aggregates summarise it).
            if idx.is_empty() && (*g == BOTH || !all_empty) {
                let what = if *g == BOTH {
                    roi.to_string()
                } else {
                    format!("{roi} ({g})")
                };
                if !self.empty.contains(&what) {
                    self.empty.push(what);
                }
            }
            for (name, vals) in values {
                let picked: Vec<f64> = idx.iter().map(|&i| vals[i]).collect();
                let v = aggregate.of(&picked);
                self.push_summary(roi, g, name, aggregate.name(), v, idx.len());
            }
        }
    }

    /// One summary row as is: a value that is not an aggregate over voxels
    /// (an RDM comparison and its interval bounds).
    pub fn add_value(&mut self, roi: &str, metric: &str, aggregate: &str, value: f64, n: usize) {
        self.push_summary(roi, BOTH, metric, aggregate, value, n);
    }

    fn push_summary(
        &mut self,
        roi: &str,
        hemisphere: &str,
        metric: &str,
        aggregate: &str,
        value: f64,
        n_voxels: usize,
    ) {
        self.roi.push(roi.to_string());
        self.hemisphere.push(hemisphere.to_string());
        self.metric.push(metric.to_string());
        self.aggregate.push(aggregate.to_string());
        self.value.push(value);
        self.n_voxels.push(n_voxels as u32);
    }

    pub fn write(self, ctx: &Ctx) -> Result<()> {
        self.write_part(ctx, "")
    }

    /// One of several records of a node (`part` names it: a best-layer
    /// node writes one per layer).
    pub fn write_part(self, ctx: &Ctx, part: &str) -> Result<()> {
        let mut summary = DataFrame::new_infer_height(vec![
            Column::new("roi".into(), self.roi),
            Column::new("hemisphere".into(), self.hemisphere),
            Column::new("metric".into(), self.metric),
            Column::new("aggregate".into(), self.aggregate),
            Column::new("value".into(), self.value),
            Column::new("n_voxels".into(), self.n_voxels),
        ])
        .map_err(|e| ctx.fail(e.to_string()))?;
        write_parquet(ctx, &part_file(part, "summary.parquet"), &mut summary)?;
        let mut voxels = DataFrame::new_infer_height(vec![
            Column::new("roi".into(), self.v_roi),
            Column::new("hemisphere".into(), self.v_hemisphere),
            Column::new("voxel".into(), self.v_voxel),
            Column::new("metric".into(), self.v_metric),
            Column::new("value".into(), self.v_value),
        ])
        .map_err(|e| ctx.fail(e.to_string()))?;
        write_parquet(ctx, &part_file(part, "voxels.parquet"), &mut voxels)?;
        ctx.out
            .write_json(&part_file(part, "empty_rois.json"), &self.empty)
    }
}

fn part_file(part: &str, name: &str) -> String {
    if part.is_empty() {
        name.to_string()
    } else {
        format!("{part}.{name}")
    }
}

pub fn write_parquet(ctx: &Ctx, name: &str, df: &mut DataFrame) -> Result<()> {
    let path = ctx.out.path(name);
    let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    ParquetWriter::new(file)
        .finish(df)
        .map_err(|e| ctx.fail(format!("writing {name}: {e}")))?;
    Ok(())
}

pub fn read_parquet(entry: &Entry, name: &str) -> Result<DataFrame> {
    let bytes = entry.read(name)?;
    ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| Error::data(entry.path(name), e.to_string()))
}

/// A record's summary and per-voxel tables.
pub fn read(entry: &Entry) -> Result<(DataFrame, DataFrame)> {
    read_part(entry, "")
}

pub fn read_part(entry: &Entry, part: &str) -> Result<(DataFrame, DataFrame)> {
    Ok((
        read_parquet(entry, &part_file(part, "summary.parquet"))?,
        read_parquet(entry, &part_file(part, "voxels.parquet"))?,
    ))
}

/// The warning a record has for the user: ROIs with no voxel score NaN.
pub fn empty_warning(entry: &Entry) -> Result<Vec<String>> {
    let empty: Vec<String> = entry.read_json("empty_rois.json")?;
    Ok(if empty.is_empty() {
        vec![]
    } else {
        vec![format!("no voxel in {}: scored NaN", empty.join(", "))]
    })
}

/// A string column as owned strings ("" for null).
pub fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    Ok(df
        .column(name)
        .and_then(|c| c.str().cloned())
        .map_err(|e| Error::usage(format!("results column `{name}`: {e}")))?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

/// A float column (NaN for null).
pub fn floats(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let c = df
        .column(name)
        .map_err(|e| Error::usage(format!("results column `{name}`: {e}")))?
        .cast(&DataType::Float64)
        .map_err(|e| Error::usage(format!("results column `{name}`: {e}")))?;
    Ok(c.f64()
        .map_err(|e| Error::usage(e.to_string()))?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Per-voxel scores of predictions against responses (both n × v, row-major);
/// `nc` is each voxel's noise ceiling (needed only for R²/NC).
pub fn score_voxels(
    metrics: &[crate::vocab::Metric],
    pred: &[f64],
    truth: &[f64],
    n: usize,
    v: usize,
    nc: Option<&[f64]>,
) -> Vec<(crate::vocab::Metric, Vec<f64>)> {
    use crate::vocab::Metric;
    use rayon::prelude::*;
    let cols: Vec<(f64, f64)> = (0..v)
        .into_par_iter()
        .map(|c| {
            let t: Vec<f64> = (0..n).map(|i| truth[i * v + c]).collect();
            let p: Vec<f64> = (0..n).map(|i| pred[i * v + c]).collect();
            (metrics::r2(&t, &p), metrics::pearson_r(&p, &t))
        })
        .collect();
    metrics
        .iter()
        .map(|&m| {
            let vals = match m {
                Metric::R2 => cols.iter().map(|c| c.0).collect(),
                Metric::PearsonR => cols.iter().map(|c| c.1).collect(),
                Metric::PearsonR2 => cols.iter().map(|c| c.1 * c.1).collect(),
                Metric::R2OverNc => {
                    let nc = nc.expect("R²/NC is only asked of subjects with a noise ceiling");
                    cols.iter().zip(nc).map(|(c, nc)| c.0 / nc).collect()
                }
            };
            (m, vals)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::score_voxels;
    use crate::vocab::Metric;

    #[test]
    fn pearson_r2_is_the_squared_correlation_not_r2() {
        // One voxel: r = 4 / 5 = 0.8 exactly (scipy's linregress rvalue).
        let pred = [1.0, 2.0, 3.0, 4.0];
        let truth = [1.0, 3.0, 2.0, 4.0];
        let s = score_voxels(
            &[Metric::PearsonR2, Metric::PearsonR, Metric::R2],
            &pred,
            &truth,
            4,
            1,
            None,
        );
        assert!((s[0].1[0] - 0.64).abs() < 1e-15);
        assert!((s[1].1[0] - 0.8).abs() < 1e-15);
        // R² of the same prediction: 1 − 2/5.
        assert!((s[2].1[0] - 0.6).abs() < 1e-15);
        // Anti-correlated: r² stays positive where R² is negative.
        let rev = [4.0, 3.0, 2.0, 1.0];
        let s = score_voxels(&[Metric::PearsonR2, Metric::R2], &rev, &truth, 4, 1, None);
        assert!((s[0].1[0] - 0.64).abs() < 1e-15 && s[1].1[0] < 0.0);
    }
}
