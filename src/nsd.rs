//! The NSD subject layout runner reads natively ("runner-nsd-v1").
//!
//! ```text
//! <subject>/
//!   subject.json              format, subject, splits {name: N} in stimulus order, hemis, repeats, image_shape
//!   images/<split>.npy        uint8  N×H×W×3
//!   brain/<split>.<hemi>.npy  float32 N×repeats×V_hemi
//!   voxels.csv                hemi,index,ncsnr,<label columns...>; lh rows then rh rows
//! ```
//! `scripts/nsd_pkl_to_runner.py` writes it from the HW2 pickle and
//! `runner synth` writes a synthetic subject in the same layout.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::npy;
use crate::vocab::Selector;

pub const FORMAT: &str = "runner-nsd-v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectMeta {
    pub format: String,
    pub subject: String,
    #[serde(default)]
    pub source: Option<String>,
    /// Splits in stimulus order: feature matrices stack their rows this way.
    pub splits: IndexMap<String, usize>,
    pub hemis: Vec<String>,
    pub repeats: usize,
    #[serde(default)]
    pub image_shape: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct SubjectDir {
    pub dir: PathBuf,
    pub meta: SubjectMeta,
}

impl SubjectDir {
    pub fn open(dir: &Path) -> Result<SubjectDir> {
        let file = dir.join("subject.json");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Error::io(&file, e).with_help(
                "a subject directory must be in the runner-nsd-v1 layout: convert the HW2 pickle \
                 with scripts/nsd_pkl_to_runner.py or make one with `runner synth`",
            )
        })?;
        let meta = SubjectMeta::parse(text.as_bytes(), &file)?;
        Ok(SubjectDir {
            dir: dir.to_path_buf(),
            meta,
        })
    }

    pub fn images_file(&self, split: &str) -> PathBuf {
        self.dir.join("images").join(format!("{split}.npy"))
    }
    pub fn brain_file(&self, split: &str, hemi: &str) -> PathBuf {
        self.dir.join("brain").join(format!("{split}.{hemi}.npy"))
    }
    pub fn voxels_file(&self) -> PathBuf {
        self.dir.join("voxels.csv")
    }

    pub fn n_images(&self) -> usize {
        self.meta.splits.values().sum()
    }

    /// Every named split exists (nothing is allocated: counts are not yet
    /// checked against the arrays).
    pub fn check_splits(&self, splits: &[String]) -> Result<()> {
        match splits.iter().find(|s| !self.meta.splits.contains_key(*s)) {
            None => Ok(()),
            Some(want) => Err(Error::data(
                self.dir.join("subject.json"),
                format!(
                    "no split `{want}`; this subject has {}",
                    self.meta
                        .splits
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Checks the brain arrays the named splits and hemispheres need against
    /// subject.json and voxels.csv from their `.npy` headers alone (no payload
    /// is read): N×repeats×V. Runs at plan time, before anything is computed.
    pub fn check_brain(
        &self,
        splits: &[String],
        hemis: &[String],
        voxels_per_hemi: &dyn Fn(&str) -> usize,
    ) -> Result<()> {
        for split in splits {
            let n = self.meta.splits.get(split).copied().unwrap_or(0);
            for hemi in hemis {
                let path = self.brain_file(split, hemi);
                let (shape, _) = header(&path)?;
                let v = voxels_per_hemi(hemi);
                let want = [n, self.meta.repeats, v];
                if shape[..] != want {
                    return Err(Error::data(
                        &path,
                        format!(
                            "shape is {shape:?}, expected images × repeats × voxels = {want:?} \
                             (split `{split}` in subject.json, repeats = {}, {v} {hemi} voxels in voxels.csv)",
                            self.meta.repeats
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks every split's images (N×H×W×3 uint8, H, W ≥ 1, N as in
    /// subject.json) from their headers: called where images are used, so a
    /// short split is reported before an extraction, not after it.
    pub fn check_images(&self) -> Result<()> {
        for (split, &n) in &self.meta.splits {
            let path = self.images_file(split);
            let (shape, dtype) = header(&path)?;
            let ok = matches!(shape[..], [_, h, w, 3] if h > 0 && w > 0)
                && dtype.trim_matches('\'') == "|u1";
            if !ok {
                return Err(Error::data(
                    &path,
                    format!(
                        "images must be N×H×W×3 uint8 with H, W ≥ 1, found shape {shape:?} dtype {dtype}"
                    ),
                ));
            }
            if shape[0] != n {
                return Err(Error::data(
                    &path,
                    format!(
                        "has {} images but subject.json says split `{split}` has {n}",
                        shape[0]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every file a node reading this subject depends on (hashed into its key).
    pub fn brain_inputs(&self, splits: &[String], hemis: &[String]) -> Vec<PathBuf> {
        let mut files = vec![self.dir.join("subject.json"), self.voxels_file()];
        for s in splits {
            for h in hemis {
                files.push(self.brain_file(s, h));
            }
        }
        files
    }
}

impl SubjectMeta {
    /// Parses and checks subject.json (`file` is named in errors).
    pub fn parse(bytes: &[u8], file: &Path) -> Result<SubjectMeta> {
        let meta: SubjectMeta = serde_json::from_slice(bytes)
            .map_err(|e| Error::data(file, format!("not a valid subject.json: {e}")))?;
        let file = file.to_path_buf();
        if meta.format != FORMAT {
            return Err(Error::data(
                &file,
                format!("format is `{}`, runner reads `{FORMAT}`", meta.format),
            ));
        }
        if meta.repeats == 0 {
            return Err(Error::data(
                &file,
                "repeats is 0; it is the number of repeats per image in the brain arrays (NSD: 3)",
            ));
        }
        for name in meta.splits.keys().chain(&meta.hemis) {
            if !crate::config::name_ok(name) {
                return Err(Error::data(
                    &file,
                    format!("split or hemisphere name `{name}` is not usable in file names"),
                ));
            }
        }
        // Counts are checked against the arrays' headers by `check_layout`;
        // here only that their sum is addressable.
        if meta
            .splits
            .values()
            .try_fold(0usize, |a, &n| a.checked_add(n))
            .is_none()
        {
            return Err(Error::data(
                &file,
                "split sizes overflow; they are image counts",
            ));
        }
        Ok(meta)
    }
}

/// The voxel table: one row per voxel, hemispheres stacked in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct VoxelTable {
    pub hemi: Vec<String>,
    pub index: Vec<u32>,
    pub ncsnr: Vec<f64>,
    /// Label columns by name; missing labels are empty strings.
    pub labels: IndexMap<String, Vec<String>>,
}

impl VoxelTable {
    pub fn len(&self) -> usize {
        self.hemi.len()
    }

    /// The hemispheres present, in table order (lh before rh).
    pub fn hemis(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in &self.hemi {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.hemi.is_empty()
    }

    pub fn read_csv(path: &Path) -> Result<VoxelTable> {
        let bytes = std::fs::read(path).at(path)?;
        VoxelTable::parse_csv(bytes, path)
    }

    /// Parses voxels.csv from its bytes (`path` is named in errors).
    pub fn parse_csv(bytes: Vec<u8>, path: &Path) -> Result<VoxelTable> {
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .into_reader_with_file_handle(std::io::Cursor::new(bytes))
            .finish()
            .map_err(|e| Error::data(path, format!("cannot read voxel table: {e}")))?;
        let col = |name: &str| -> Result<Vec<String>> {
            let c = df.column(name).map_err(|_| {
                Error::data(path, format!("voxel table has no column `{name}`")).with_help(format!(
                    "columns present: {}",
                    df.get_column_names()
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let s = c.str().map_err(|e| Error::data(path, e.to_string()))?;
            Ok(s.iter().map(|v| v.unwrap_or("").to_string()).collect())
        };
        let hemi = col("hemi")?;
        let parse_num = |name: &str, v: &[String]| -> Result<Vec<f64>> {
            v.iter()
                .enumerate()
                .map(|(i, s)| {
                    if s.is_empty() {
                        return Ok(f64::NAN);
                    }
                    s.trim().parse::<f64>().map_err(|_| {
                        Error::data(path, format!("row {}: {name} `{s}` is not a number", i + 2))
                    })
                })
                .collect()
        };
        let ncsnr = parse_num("ncsnr", &col("ncsnr")?)?;
        let index = voxel_indices(path, &hemi, &col("index")?)?;
        let mut labels = IndexMap::new();
        for name in df.get_column_names() {
            let name = name.as_str();
            if !matches!(name, "hemi" | "index" | "ncsnr") {
                labels.insert(name.to_string(), col(name)?);
            }
        }
        Ok(VoxelTable {
            hemi,
            index,
            ncsnr,
            labels,
        })
    }

    pub fn select(&self, keep: &[usize]) -> VoxelTable {
        VoxelTable {
            hemi: keep.iter().map(|&i| self.hemi[i].clone()).collect(),
            index: keep.iter().map(|&i| self.index[i]).collect(),
            ncsnr: keep.iter().map(|&i| self.ncsnr[i]).collect(),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), keep.iter().map(|&i| v[i].clone()).collect()))
                .collect(),
        }
    }

    /// Voxels whose `selector.column` label matches, or a data error naming the column.
    pub fn matching(&self, selector: &Selector, path: &Path) -> Result<Vec<bool>> {
        let col = self.labels.get(&selector.column).ok_or_else(|| {
            Error::data(
                path,
                format!("voxel table has no label column `{}`", selector.column),
            )
            .with_help(format!(
                "label columns present: {}",
                self.labels.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(col.iter().map(|l| selector.matches(l)).collect())
    }

    pub fn to_dataframe(&self) -> Result<DataFrame> {
        let mut cols: Vec<Column> = vec![
            Column::new("hemi".into(), &self.hemi),
            Column::new("index".into(), &self.index),
            Column::new("ncsnr".into(), &self.ncsnr),
        ];
        for (k, v) in &self.labels {
            cols.push(Column::new(k.as_str().into(), v));
        }
        DataFrame::new_infer_height(cols).map_err(|e| Error::node("voxel table", e.to_string()))
    }

    pub fn from_dataframe(df: &DataFrame, path: &Path) -> Result<VoxelTable> {
        let bad = |e: PolarsError| Error::data(path, format!("bad voxel table: {e}"));
        let strs = |name: &str| -> Result<Vec<String>> {
            Ok(df
                .column(name)
                .map_err(bad)?
                .str()
                .map_err(bad)?
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect())
        };
        let mut labels = IndexMap::new();
        for name in df.get_column_names() {
            if !matches!(name.as_str(), "hemi" | "index" | "ncsnr") {
                labels.insert(name.to_string(), strs(name.as_str())?);
            }
        }
        Ok(VoxelTable {
            hemi: strs("hemi")?,
            index: df
                .column("index")
                .map_err(bad)?
                .u32()
                .map_err(bad)?
                .into_no_null_iter()
                .collect(),
            ncsnr: df
                .column("ncsnr")
                .map_err(bad)?
                .f64()
                .map_err(bad)?
                .iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect(),
            labels,
        })
    }
}

/// Shape and dtype of a subject file's `.npy`, or an error naming the file.
fn header(path: &Path) -> Result<(Vec<usize>, String)> {
    if !path.is_file() {
        return Err(Error::data(path, "missing file in the subject directory"));
    }
    npy::read_header(path).map_err(|e| Error::data(path, format!("not a readable .npy: {e}")))
}

/// `index` is the voxel's position in its hemisphere's brain arrays: an
/// integer, unique within the hemisphere, below the hemisphere's voxel count
/// (the arrays hold exactly the voxels the table lists).
fn voxel_indices(path: &Path, hemi: &[String], raw: &[String]) -> Result<Vec<u32>> {
    let mut count: IndexMap<&str, usize> = IndexMap::new();
    for h in hemi {
        *count.entry(h.as_str()).or_default() += 1;
    }
    let mut seen: IndexMap<(&str, u32), usize> = IndexMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, (s, h)) in raw.iter().zip(hemi).enumerate() {
        let row = i + 2; // 1-based, after the header line
        let n = count[h.as_str()];
        let idx: u32 = s.trim().parse().map_err(|_| {
            Error::data(
                path,
                format!("row {row}: index `{s}` is not a non-negative integer"),
            )
        })?;
        if idx as usize >= n {
            return Err(Error::data(
                path,
                format!("row {row}: index {idx} is out of range: {h} has {n} voxels (0..{n})"),
            ));
        }
        if let Some(first) = seen.insert((h.as_str(), idx), row) {
            return Err(Error::data(
                path,
                format!(
                    "row {row}: index {idx} of {h} is also on row {first}; each voxel is listed once"
                ),
            ));
        }
        out.push(idx);
    }
    Ok(out)
}

/// Repeat-averaged responses of the kept voxels, splits stacked in the order
/// given (HW2 joins train and val), as an images × voxels row-major matrix.
pub fn averaged_responses(
    subject: &SubjectDir,
    splits: &[String],
    hemis: &[String],
    table: &VoxelTable,
    keep: &[usize],
) -> Result<(usize, Vec<f32>)> {
    // Position of each kept voxel inside its hemisphere's array.
    let mut per_hemi: Vec<Vec<(usize, usize)>> = vec![Vec::new(); hemis.len()];
    for (out_col, &v) in keep.iter().enumerate() {
        let h = hemis
            .iter()
            .position(|h| *h == table.hemi[v])
            .ok_or_else(|| {
                Error::data(
                    subject.voxels_file(),
                    format!(
                        "voxel {v} has hemi `{}`, not one of {hemis:?}",
                        table.hemi[v]
                    ),
                )
            })?;
        per_hemi[h].push((table.index[v] as usize, out_col));
    }
    let n_rows: usize = splits
        .iter()
        .map(|s| subject.meta.splits.get(s).copied().unwrap_or(0))
        .sum();
    let width = keep.len();
    let mut out = vec![0f32; n_rows * width];
    let mut row0 = 0;
    for split in splits {
        let mut n_split = None;
        for (h, hemi) in hemis.iter().enumerate() {
            let path = subject.brain_file(split, hemi);
            let arr = npy::read_f32(&path).at(&path)?;
            let [n, r, v] = arr.shape[..] else {
                return Err(Error::data(
                    &path,
                    format!(
                        "expected images × repeats × voxels, found shape {:?}",
                        arr.shape
                    ),
                ));
            };
            let expected = subject.meta.splits.get(split).copied().unwrap_or(0);
            if n != expected {
                return Err(Error::data(
                    &path,
                    format!("has {n} images but subject.json says split `{split}` has {expected}"),
                ));
            }
            let in_hemi = table.hemi.iter().filter(|x| *x == hemi).count();
            if v != in_hemi {
                return Err(Error::data(
                    &path,
                    format!("has {v} voxels but voxels.csv lists {in_hemi} for {hemi}"),
                ));
            }
            n_split = Some(n);
            for i in 0..n {
                for &(src, dst) in &per_hemi[h] {
                    let mut sum = 0f64;
                    for k in 0..r {
                        let x = arr.data[(i * r + k) * v + src];
                        if !x.is_finite() {
                            return Err(Error::data(
                                &path,
                                format!(
                                    "non-finite response {x} at image {i}, repeat {k}, voxel {src}"
                                ),
                            )
                            .with_help("drop the voxel from the mask or fix the data"));
                        }
                        sum += x as f64;
                    }
                    out[(row0 + i) * width + dst] = (sum / r as f64) as f32;
                }
            }
        }
        row0 += n_split.unwrap_or(0);
    }
    Ok((n_rows, out))
}
