//! `table`: the experiment's results, built from every scoring node's record
//! (see [`crate::record`]) and nothing else.
//!
//! - `results.parquet` / `results.csv`: one long table, a row per (analysis,
//!   subject, hemisphere, source, layer, roi, metric, aggregate) with its
//!   value, the ROI's voxel count and the scoring node's key;
//! - `results_wide.csv`: the same, one row per (analysis, subject, source,
//!   layer, roi, hemisphere) with a column per metric (HW2's table);
//! - `voxel_scores.parquet`: every voxel's values, long.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::node::{Ctx, NodeKind};
use crate::record::{self, floats, strings};

pub const VERSION: u32 = 3;

/// Where a record sits in the experiment (the plan's labels, not the node's).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels {
    pub analysis: String,
    pub subject: String,
    pub source: String,
    pub layer: String,
    /// Position of the layer in its source's `layers` list (depth order).
    pub layer_index: usize,
    /// Which of the node's records (most nodes write one, named "").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub part: String,
    /// Which of repeated splits scored it ("0", "1", …), or a statistic
    /// over them ("mean", "std"); "" for an analysis with one split.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub split: String,
    /// Which stimuli it was scored on: "test" (held out: the default),
    /// "train" (the fit stimuli), "validation" (a set outside every split).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub set: String,
}

impl Labels {
    /// The set a record was scored on, "test" unless it says otherwise.
    pub fn set_name(&self) -> &str {
        if self.set.is_empty() {
            "test"
        } else {
            &self.set
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableTask {
    /// The labels of upstream `score:{i:05}`, in table order.
    pub records: Vec<Labels>,
}

/// Long-table columns, in order.
pub const COLUMNS: [&str; 14] = [
    "analysis",
    "subject",
    "hemisphere",
    "source",
    "layer",
    "layer_index",
    "roi",
    "split",
    "set",
    "metric",
    "aggregate",
    "value",
    "n_voxels",
    "node_key",
];

impl NodeKind for TableTask {
    fn kind(&self) -> &'static str {
        "table"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        64 << 20
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let mut text: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let (mut layer_index, mut value, mut n_voxels) = (Vec::new(), Vec::new(), Vec::new());
        let mut v_text: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let (mut v_voxel, mut v_value) = (Vec::<i64>::new(), Vec::<f64>::new());
        for (i, labels) in self.records.iter().enumerate() {
            let entry = ctx.input(&format!("score:{i:05}"))?;
            let (summary, voxels) = record::read_part(entry, &labels.part)?;
            let n = summary.height();
            let set = labels.set_name().to_string();
            let fixed = [
                ("analysis", &labels.analysis),
                ("subject", &labels.subject),
                ("source", &labels.source),
                ("layer", &labels.layer),
                ("split", &labels.split),
                ("set", &set),
                ("node_key", &entry.manifest.key),
            ];
            for (name, v) in fixed {
                text.entry(name)
                    .or_default()
                    .extend(std::iter::repeat_n(v.clone(), n));
            }
            for name in ["hemisphere", "roi", "metric", "aggregate"] {
                text.entry(name)
                    .or_default()
                    .extend(strings(&summary, name)?);
            }
            layer_index.extend(std::iter::repeat_n(labels.layer_index as u32, n));
            value.extend(floats(&summary, "value")?);
            n_voxels.extend(floats(&summary, "n_voxels")?.into_iter().map(|x| x as u32));

            let nv = voxels.height();
            for (name, v) in &fixed[..6] {
                v_text
                    .entry(name)
                    .or_default()
                    .extend(std::iter::repeat_n((*v).clone(), nv));
            }
            for name in ["hemisphere", "roi", "metric"] {
                v_text
                    .entry(name)
                    .or_default()
                    .extend(strings(&voxels, name)?);
            }
            v_voxel.extend(floats(&voxels, "voxel")?.into_iter().map(|x| x as i64));
            v_value.extend(floats(&voxels, "value")?);
        }
        // An empty label is null, so that the CSV cell is empty (polars
        // quotes an empty string).
        let col = |name: &str, t: &mut BTreeMap<&str, Vec<String>>| {
            let v: Vec<Option<String>> = t
                .remove(name)
                .unwrap_or_default()
                .into_iter()
                .map(|x| (!x.is_empty()).then_some(x))
                .collect();
            Column::new(name.into(), v)
        };
        let mut columns = Vec::new();
        for name in COLUMNS {
            columns.push(match name {
                "layer_index" => Column::new(name.into(), &layer_index),
                "value" => Column::new(name.into(), &value),
                "n_voxels" => Column::new(name.into(), &n_voxels),
                _ => col(name, &mut text),
            });
        }
        let mut df = DataFrame::new_infer_height(columns).map_err(|e| ctx.fail(e.to_string()))?;
        record::write_parquet(ctx, "results.parquet", &mut df)?;
        write_csv(ctx, "results.csv", &mut df)?;
        write_wide(ctx, &df)?;

        let mut vcols = Vec::new();
        for name in [
            "analysis",
            "subject",
            "hemisphere",
            "source",
            "layer",
            "roi",
            "split",
            "set",
        ] {
            vcols.push(col(name, &mut v_text));
        }
        vcols.push(Column::new("voxel".into(), v_voxel));
        vcols.push(col("metric", &mut v_text));
        vcols.push(Column::new("value".into(), v_value));
        let mut vdf = DataFrame::new_infer_height(vcols).map_err(|e| ctx.fail(e.to_string()))?;
        record::write_parquet(ctx, "voxel_scores.parquet", &mut vdf)
    }
}

fn write_csv(ctx: &Ctx, name: &str, df: &mut DataFrame) -> Result<()> {
    let path = ctx.out.path(name);
    let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    CsvWriter::new(file)
        .finish(df)
        .map_err(|e| ctx.fail(format!("writing {name}: {e}")))
}

/// HW2's view: a row per (analysis, subject, source, layer, roi, hemisphere,
/// split, set), a column per metric, and the voxel count. A metric's first
/// aggregate in the table is its plain column (HW2: `r2` is the mean, `alpha`
/// the median); any other aggregate of it gets `metric_aggregate`
/// (`pearson_r2_std`).
fn write_wide(ctx: &Ctx, df: &DataFrame) -> Result<()> {
    let keys = [
        "analysis",
        "subject",
        "source",
        "layer",
        "roi",
        "hemisphere",
        "split",
        "set",
    ];
    let text: Vec<Vec<String>> = keys.iter().map(|k| strings(df, k)).collect::<Result<_>>()?;
    let metric = strings(df, "metric")?;
    let aggregate = strings(df, "aggregate")?;
    let value = floats(df, "value")?;
    let n_voxels = floats(df, "n_voxels")?;
    // (metric, aggregate) → column name, in order of first appearance.
    let mut names: Vec<((String, String), String)> = Vec::new();
    let mut rows: Vec<(Vec<String>, f64, BTreeMap<String, f64>)> = Vec::new();
    for i in 0..df.height() {
        let ma = (metric[i].clone(), aggregate[i].clone());
        let name = match names.iter().find(|(k, _)| *k == ma) {
            Some((_, n)) => n.clone(),
            None => {
                let n = if names.iter().any(|((m, _), _)| *m == ma.0) {
                    format!("{}_{}", ma.0, ma.1)
                } else {
                    ma.0.clone()
                };
                names.push((ma, n.clone()));
                n
            }
        };
        let key: Vec<String> = text.iter().map(|c| c[i].clone()).collect();
        let at = match rows.iter().position(|r| r.0 == key) {
            Some(at) => at,
            None => {
                rows.push((key, n_voxels[i], BTreeMap::new()));
                rows.len() - 1
            }
        };
        rows[at].2.insert(name, value[i]);
    }
    let mut columns: Vec<Column> = keys
        .iter()
        .enumerate()
        .map(|(k, name)| {
            Column::new(
                (*name).into(),
                rows.iter()
                    .map(|r| (!r.0[k].is_empty()).then(|| r.0[k].clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    columns.push(Column::new(
        "n_voxels".into(),
        rows.iter().map(|r| r.1 as u32).collect::<Vec<_>>(),
    ));
    for (_, m) in &names {
        columns.push(Column::new(
            m.as_str().into(),
            rows.iter()
                .map(|r| r.2.get(m).copied().unwrap_or(f64::NAN))
                .collect::<Vec<_>>(),
        ));
    }
    let mut wide = DataFrame::new_infer_height(columns).map_err(|e| ctx.fail(e.to_string()))?;
    write_csv(ctx, "results_wide.csv", &mut wide)
}

/// The rows a one-number-per-cell plot of `analysis` shows: the only
/// split's or the mean over splits, on the test set (the validation set
/// when the analysis scores no test set).
pub fn headline_rows(df: &DataFrame, analysis: &str) -> Result<Vec<bool>> {
    let a = strings(df, "analysis")?;
    let split = strings(df, "split")?;
    let set = strings(df, "set")?;
    let mine = |i: usize| a[i] == analysis;
    let has_test = (0..a.len()).any(|i| mine(i) && set[i] == "test");
    let want = if has_test { "test" } else { "validation" };
    Ok((0..a.len())
        .map(|i| (split[i].is_empty() || split[i] == "mean") && set[i] == want)
        .collect())
}

/// Reads a results table (from a cache entry or a results directory).
pub fn read_results(bytes: Vec<u8>) -> std::result::Result<DataFrame, PolarsError> {
    ParquetReader::new(std::io::Cursor::new(bytes)).finish()
}
