//! Lab08's subject files (seed 003), read as the lab distributes them:
//!
//! - `S<n>_betas_avg_bigmask.hdf5`: `/betas`, images × voxels, each image's
//!   repeats averaged; NaN rows for images never shown (`n_reps == 0`);
//! - `S<n>_image_info.csv`: a row per image, the rows of the betas and of
//!   every feature file (`unique_ims`, `n_reps`, `shared1000`);
//! - `S<n>_voxel_roi_info.npy`: a pickled dict (`np.load(...,
//!   allow_pickle=True).item()`): the bigmask over the whole brain
//!   (`voxel_mask`, C order of `brain_nii_shape`), the noise ceiling of each
//!   masked voxel in percent (`noise_ceiling_avgreps`), and four ROI label
//!   families (`*_roi_names` name → label, `roi_labels_*` whole-brain labels).
//!
//! The reader checks that these agree (rows, voxel counts, label lengths)
//! before anything runs, so that a mismatch names the file instead of
//! surfacing as a wrong index deep inside a fit.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::nsd::VoxelTable;
use crate::pickle::PyValue;

pub const FORMAT: &str = "lab08";

/// The lab's split seeds, by subject (`rndseeds[subject - 1]`).
pub const SEEDS: [u32; 9] = [
    171301, 42102, 490304, 521005, 11407, 501610, 552211, 450013, 824387,
];

/// The label families: runner's column name, the dict's names key, its labels key.
pub const FAMILIES: [(&str, &str, &str); 4] = [
    ("retino", "ret_prf_roi_names", "roi_labels_retino"),
    ("face", "floc_face_roi_names", "roi_labels_face"),
    ("place", "floc_place_roi_names", "roi_labels_place"),
    ("body", "floc_body_roi_names", "roi_labels_body"),
];

pub const BETAS: &str = "betas_avg_bigmask.hdf5";
pub const BETAS_DATASET: &str = "/betas";
pub const IMAGE_INFO: &str = "image_info.csv";
pub const ROI_INFO: &str = "voxel_roi_info.npy";

/// `S1_image_info.csv`: one row per image, in the betas' row order.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub image_id: Vec<i64>,
    pub n_reps: Vec<i64>,
    /// Every boolean column (`shared1000`, …): the candidates for a validation set.
    pub flags: IndexMap<String, Vec<bool>>,
}

/// `S1_voxel_roi_info.npy`, checked.
#[derive(Debug, Clone)]
pub struct RoiInfo {
    pub shape: [usize; 3],
    pub mask: Vec<bool>,
    /// Per masked voxel, as a fraction (the file's percent / 100).
    pub noise_ceiling: Vec<f64>,
    /// Per family column, per masked voxel: the ROI name ("" when unlabelled).
    pub labels: IndexMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Lab08Subject {
    pub dir: PathBuf,
    /// `S1_`: the files' common prefix.
    pub prefix: String,
    /// The subject number of the prefix (1 for `S1_`).
    pub number: u32,
    pub images: ImageInfo,
    pub rois: RoiInfo,
    /// `/betas`' shape.
    pub betas_shape: (usize, usize),
}

impl Lab08Subject {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}{name}", self.prefix))
    }
    pub fn betas_file(&self) -> PathBuf {
        self.file(BETAS)
    }

    pub fn open(dir: &Path) -> Result<Lab08Subject> {
        let (prefix, number) = find_prefix(dir)?;
        let file = |name: &str| dir.join(format!("{prefix}{name}"));
        for name in [IMAGE_INFO, ROI_INFO] {
            if !file(name).is_file() {
                return Err(
                    Error::data(dir, format!("has no {prefix}{name}")).with_help(layout_help())
                );
            }
        }
        let images = read_image_info(&file(IMAGE_INFO))?;
        let rois = read_roi_info(&file(ROI_INFO))?;
        let betas = file(BETAS);
        let shape = crate::hdf5::shape(&betas, BETAS_DATASET)?;
        let [rows, cols] = shape[..] else {
            return Err(Error::data(
                &betas,
                format!("`{BETAS_DATASET}` has shape {shape:?}; expected images × voxels"),
            ));
        };
        if rows != images.n_reps.len() {
            return Err(Error::data(
                &betas,
                format!(
                    "`{BETAS_DATASET}` has {rows} image rows but {} lists {} images",
                    file(IMAGE_INFO).display(),
                    images.n_reps.len()
                ),
            ));
        }
        let n_mask = rois.noise_ceiling.len();
        if cols != n_mask {
            return Err(Error::data(
                &betas,
                format!(
                    "`{BETAS_DATASET}` has {cols} voxels but voxel_mask in {} selects {n_mask}",
                    file(ROI_INFO).display()
                ),
            ));
        }
        Ok(Lab08Subject {
            dir: dir.to_path_buf(),
            prefix,
            number,
            images,
            rois,
            betas_shape: (rows, cols),
        })
    }

    /// Image rows with responses: the lab's `good_values` (`n_reps > 0`; the
    /// subject node checks that exactly these rows of the betas are finite).
    pub fn responding_rows(&self) -> Vec<usize> {
        (0..self.images.n_reps.len())
            .filter(|&i| self.images.n_reps[i] > 0)
            .collect()
    }

    /// The lab's split seed for this subject (`rndseeds[subject - 1]`).
    pub fn default_seed(&self) -> Option<u32> {
        SEEDS.get(self.number.checked_sub(1)? as usize).copied()
    }

    /// Every masked voxel, labelled by family; the voxel index is its
    /// position in the bigmask (the column of `/betas`).
    pub fn voxel_table(&self) -> VoxelTable {
        let v = self.rois.noise_ceiling.len();
        VoxelTable {
            hemi: vec![crate::record::BOTH.to_string(); v],
            index: (0..v as u32).collect(),
            ncsnr: vec![f64::NAN; v],
            labels: self.rois.labels.clone(),
        }
    }

    /// The files whose bytes the subject's node depends on.
    pub fn input_files(&self) -> Vec<PathBuf> {
        vec![self.file(BETAS), self.file(IMAGE_INFO), self.file(ROI_INFO)]
    }
}

fn layout_help() -> String {
    format!(
        "a Lab08 subject directory holds S<n>_{BETAS} (dataset {BETAS_DATASET}), S<n>_{IMAGE_INFO} \
         and S<n>_{ROI_INFO}; make a synthetic one with `runner synth --layout lab08 DIR`"
    )
}

/// `S1_` from `S1_betas_avg_bigmask.hdf5`: the directory must hold one such file.
fn find_prefix(dir: &Path) -> Result<(String, u32)> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(prefix) = name.strip_suffix(BETAS) {
            found.push(prefix.to_string());
        }
    }
    found.sort();
    match &found[..] {
        [p] => {
            let number = p
                .strip_prefix('S')
                .and_then(|s| s.strip_suffix('_'))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Ok((p.clone(), number))
        }
        [] => Err(Error::data(dir, format!("has no *_{BETAS}")).with_help(layout_help())),
        many => Err(Error::data(
            dir,
            format!(
                "holds the betas of several subjects ({}); give each subject its own directory",
                many.iter()
                    .map(|p| format!("{p}{BETAS}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

pub fn read_image_info(path: &Path) -> Result<ImageInfo> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| Error::data(path, format!("not a readable CSV: {e}")))?;
    let ints = |name: &str| -> Result<Vec<i64>> {
        let c = df.column(name).map_err(|_| {
            Error::data(path, format!("has no column `{name}`")).with_help(format!(
                "columns: {}",
                df.get_column_names()
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let c = c
            .cast(&DataType::Int64)
            .map_err(|e| Error::data(path, format!("column `{name}`: {e}")))?;
        let ca = c
            .i64()
            .map_err(|e| Error::data(path, format!("column `{name}`: {e}")))?;
        ca.iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    Error::data(
                        path,
                        format!("row {}: column `{name}` is empty or not an integer", i + 1),
                    )
                })
            })
            .collect()
    };
    let image_id = ints("unique_ims")?;
    let n_reps = ints("n_reps")?;
    if let Some(i) = n_reps.iter().position(|&r| r < 0) {
        return Err(Error::data(
            path,
            format!("row {}: n_reps = {} is negative", i + 1, n_reps[i]),
        ));
    }
    // Validation candidates: boolean columns (pandas writes True/False),
    // and integer columns holding only 0 and 1 (a re-saved table).
    let mut flags = IndexMap::new();
    for c in df.columns() {
        let vals: Option<Vec<bool>> = match c.dtype() {
            DataType::Boolean => Some(
                c.bool()
                    .expect("checked dtype")
                    .iter()
                    .map(|v| v.unwrap_or(false))
                    .collect(),
            ),
            DataType::Int64 => c
                .i64()
                .expect("checked dtype")
                .iter()
                .map(|v| match v {
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        if let Some(v) = vals {
            flags.insert(c.name().to_string(), v);
        }
    }
    Ok(ImageInfo {
        image_id,
        n_reps,
        flags,
    })
}

const ROI_HELP: &str = "the lab's S1_voxel_roi_info.npy is np.save of a dict with voxel_mask, \
                        brain_nii_shape, noise_ceiling_avgreps and the ret_prf/floc_face/floc_place/floc_body \
                        *_roi_names and roi_labels_* entries";

pub fn read_roi_info(path: &Path) -> Result<RoiInfo> {
    let obj = crate::pickle::read_object(path)?;
    parse_roi_info(&obj).map_err(|msg| Error::data(path, msg).with_help(ROI_HELP))
}

fn parse_roi_info(obj: &PyValue) -> std::result::Result<RoiInfo, String> {
    let get = |key: &str| -> std::result::Result<&PyValue, String> {
        obj.get(key)
            .ok_or_else(|| format!("has no `{key}` (found a {})", obj.type_name()))
    };
    let array = |key: &str| -> std::result::Result<&crate::pickle::NdArray, String> {
        match get(key)? {
            PyValue::Array(a) => Ok(a),
            other => Err(format!(
                "`{key}` is a {}, expected an ndarray",
                other.type_name()
            )),
        }
    };
    let shape: Vec<i64> = match get("brain_nii_shape")? {
        PyValue::Tuple(xs) | PyValue::List(xs) => xs
            .iter()
            .map(|x| match x {
                PyValue::Int(i) => Ok(*i),
                other => Err(format!(
                    "`brain_nii_shape` holds a {}, expected ints",
                    other.type_name()
                )),
            })
            .collect::<std::result::Result<_, _>>()?,
        PyValue::Array(a) => a.to_i64().map_err(|e| format!("`brain_nii_shape`: {e}"))?,
        other => {
            return Err(format!(
                "`brain_nii_shape` is a {}, expected 3 ints",
                other.type_name()
            ));
        }
    };
    let shape: [usize; 3] = match shape[..] {
        [a, b, c] if a > 0 && b > 0 && c > 0 => [a as usize, b as usize, c as usize],
        _ => {
            return Err(format!(
                "`brain_nii_shape` is {shape:?}; expected 3 positive sizes"
            ));
        }
    };
    let n_brain = shape.iter().product::<usize>();
    let mask = array("voxel_mask")?
        .to_bool()
        .map_err(|e| format!("`voxel_mask`: {e}"))?;
    if mask.len() != n_brain {
        return Err(format!(
            "voxel_mask has {} entries but brain_nii_shape {shape:?} holds {n_brain}",
            mask.len()
        ));
    }
    let inside: Vec<usize> = (0..n_brain).filter(|&i| mask[i]).collect();
    let nc = array("noise_ceiling_avgreps")?
        .to_f64()
        .map_err(|e| format!("`noise_ceiling_avgreps`: {e}"))?;
    // The lab keeps it per masked voxel; accept a whole-brain copy too.
    let nc: Vec<f64> = if nc.len() == inside.len() {
        nc
    } else if nc.len() == n_brain {
        inside.iter().map(|&i| nc[i]).collect()
    } else {
        return Err(format!(
            "noise_ceiling_avgreps has {} values; voxel_mask selects {} voxels",
            nc.len(),
            inside.len()
        ));
    };
    if let Some(i) = nc.iter().position(|x| !x.is_finite() || *x < 0.0) {
        return Err(format!(
            "noise_ceiling_avgreps[{i}] = {} is not a percentage",
            nc[i]
        ));
    }
    let mut labels = IndexMap::new();
    for (column, names_key, labels_key) in FAMILIES {
        let names: Vec<(String, i64)> = match get(names_key)? {
            PyValue::Dict(items) => items
                .iter()
                .map(|(k, v)| match (k, v) {
                    (PyValue::Str(k), PyValue::Int(i)) => Ok((k.clone(), *i)),
                    (PyValue::Str(k), PyValue::Float(f)) if f.fract() == 0.0 => {
                        Ok((k.clone(), *f as i64))
                    }
                    _ => Err(format!(
                        "`{names_key}` maps a {} to a {}; expected ROI name → integer label",
                        k.type_name(),
                        v.type_name()
                    )),
                })
                .collect::<std::result::Result<_, _>>()?,
            other => {
                return Err(format!(
                    "`{names_key}` is a {}, expected a dict of ROI name → label",
                    other.type_name()
                ));
            }
        };
        let whole = array(labels_key)?
            .to_i64()
            .map_err(|e| format!("`{labels_key}`: {e}"))?;
        let per_voxel: Vec<i64> = if whole.len() == n_brain {
            inside.iter().map(|&i| whole[i]).collect()
        } else if whole.len() == inside.len() {
            whole
        } else {
            return Err(format!(
                "`{labels_key}` has {} labels; brain_nii_shape {shape:?} holds {n_brain}",
                whole.len()
            ));
        };
        // Labels ≤ 0 are NSD's "no ROI" (0) and "outside" (-1).
        let name_of = |l: i64| -> String {
            if l <= 0 {
                return String::new();
            }
            names
                .iter()
                .find(|(_, i)| *i == l)
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| format!("label {l}"))
        };
        labels.insert(
            column.to_string(),
            per_voxel.into_iter().map(name_of).collect(),
        );
    }
    Ok(RoiInfo {
        shape,
        mask,
        noise_ceiling: nc.iter().map(|p| p / 100.0).collect(),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("S1_image_info.csv");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn flags_are_boolean_or_zero_one_columns() {
        let (_d, p) = csv(
            ",unique_ims,n_reps,shared1000,in_0_1,cocoId\n0,10,3,True,1,5\n1,11,0,False,0,6\n2,12,2,True,1,7\n",
        );
        let info = read_image_info(&p).unwrap();
        assert_eq!(info.image_id, [10, 11, 12]);
        assert_eq!(info.n_reps, [3, 0, 2]);
        assert_eq!(info.flags["shared1000"], [true, false, true]);
        assert_eq!(info.flags["in_0_1"], [true, false, true]);
        assert!(!info.flags.contains_key("cocoId") && !info.flags.contains_key("n_reps"));
    }

    #[test]
    fn a_missing_column_or_a_negative_count_names_the_file() {
        let (_d, p) = csv("unique_ims,shared1000\n1,True\n");
        let e = read_image_info(&p).unwrap_err().to_string();
        assert!(
            e.contains("S1_image_info.csv") && e.contains("has no column `n_reps`"),
            "{e}"
        );
        let (_d, p) = csv("unique_ims,n_reps\n1,2\n2,-1\n");
        let e = read_image_info(&p).unwrap_err().to_string();
        assert!(e.contains("row 2: n_reps = -1 is negative"), "{e}");
    }
}
