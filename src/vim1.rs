//! vim-1 (Kay, Naselaris, Prenger & Gallant 2008; CRCNS) as the dataset
//! ships it, for the Kay V4 workflow (seed 001):
//!
//! - `EstimatedResponses.mat`: per subject `dataTrnS<n>` (1750 training
//!   images) and `dataValS<n>` (120 validation images), the repeat-averaged
//!   peak responses of every voxel, and `roiS<n>`, a code per voxel (6 = V4,
//!   0 = other; the other codes are unnamed in the project). MATLAB holds
//!   the responses as voxels × images; the file is MAT v7.3 (HDF5), whose
//!   h5py view is images × voxels. Either kind of MAT file is read (through
//!   [`crate::mat`]), and the orientation is taken from the ROI vector's
//!   length, so a re-saved file in either orientation reads the same.
//! - `Stimuli.mat`: `stimTrn` and `stimVal`, n × H × W grayscale.
//!
//! The seed drops a voxel that is NaN in any training image (S1: 1550 → 1535
//! V4 voxels). A voxel NaN only in a validation image cannot be scored
//! either; it is dropped too and counted on its own.
//!
//! A subject is one `S<n>` of a directory holding `EstimatedResponses.mat`
//! and, for extraction, the stimuli: CRCNS's `Stimuli.mat`, or the
//! project's `Stimuli_Trn_FullRes_01.mat … _15.mat` and
//! `Stimuli_Val_FullRes.mat` (rows in file order).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::npy::Array;

/// ROI codes the project names (the others are numbered only).
pub const ROI_NAMES: [(i64, &str); 2] = [(0, "other"), (6, "V4")];

/// The name of an ROI code: "V4" for 6, "other" for 0, else the code.
pub fn roi_name(code: i64) -> String {
    ROI_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string(), |(_, n)| n.to_string())
}

/// One subject's responses, images × kept voxels.
#[derive(Debug, Clone)]
pub struct Responses {
    pub train: Array<f64>,
    pub val: Array<f64>,
    /// ROI code of each kept voxel.
    pub roi: Vec<i64>,
    /// Each kept voxel's column in the file (0-based).
    pub voxel: Vec<usize>,
    /// Voxels dropped for a NaN in a training image (the seed's rule), and
    /// for one only in a validation image.
    pub dropped_train_nan: usize,
    pub dropped_val_nan: usize,
    /// The dropped voxels' columns, for per-ROI counts: the
    /// `dropped_train_nan` training ones first, then the validation ones.
    pub dropped: Vec<usize>,
}

pub const FORMAT: &str = "vim1";
pub const RESPONSES: &str = "EstimatedResponses.mat";
pub const STIMULI: &str = "Stimuli.mat";
const FULLRES_TRN: &str = "Stimuli_Trn_FullRes_";
const FULLRES_VAL: &str = "Stimuli_Val_FullRes.mat";

/// Where a subject's stimuli are: (file, variable) pairs in stimulus order,
/// training images first.
#[derive(Debug, Clone, PartialEq)]
pub struct Stimuli {
    pub train: Vec<(PathBuf, String)>,
    pub val: Vec<(PathBuf, String)>,
}

impl Stimuli {
    pub fn all(&self) -> impl Iterator<Item = &(PathBuf, String)> {
        self.train.iter().chain(&self.val)
    }
}

/// One vim-1 subject as the plan sees it before anything runs.
#[derive(Debug, Clone)]
pub struct Vim1Subject {
    pub dir: PathBuf,
    /// `S1`: the suffix of the file's variables.
    pub id: String,
    pub responses: PathBuf,
    pub stimuli: Option<Stimuli>,
    /// Every voxel's ROI code, in file order (before the NaN rule).
    pub roi: Vec<i64>,
    pub n_train: usize,
    pub n_val: usize,
}

fn layout_help() -> String {
    format!(
        "a vim-1 directory holds {RESPONSES} (dataTrnS<n>, dataValS<n>, roiS<n>) and, to extract \
         features, {STIMULI} (stimTrn, stimVal) or {FULLRES_TRN}NN.mat + {FULLRES_VAL}; make a \
         synthetic one with `runner synth --layout vim1 DIR`"
    )
}

impl Vim1Subject {
    /// Reads the ROI codes and the response shapes (not the responses).
    pub fn open(dir: &Path, id: &str) -> Result<Vim1Subject> {
        let responses = dir.join(RESPONSES);
        if !responses.is_file() {
            return Err(
                Error::data(dir, format!("no {RESPONSES} in the vim-1 directory"))
                    .with_help(layout_help()),
            );
        }
        let roi = read_codes(&responses, &format!("roi{id}"))?;
        let v = roi.len();
        let n_of = |var: String| -> Result<usize> {
            let shape = crate::mat::shape(&responses, &var)?;
            match shape[..] {
                [a, b] if a == v && b != v => Ok(b),
                [a, b] if b == v => Ok(a),
                _ => Err(Error::data(
                    &responses,
                    format!("`{var}` has shape {shape:?} but `roi{id}` has {v} voxels"),
                )),
            }
        };
        let n_train = n_of(format!("dataTrn{id}"))?;
        let n_val = n_of(format!("dataVal{id}"))?;
        let stimuli = find_stimuli(dir)?;
        Ok(Vim1Subject {
            dir: dir.to_path_buf(),
            id: id.to_string(),
            responses,
            stimuli,
            roi,
            n_train,
            n_val,
        })
    }

    /// Every voxel of the file (before the NaN rule), labelled by ROI.
    pub fn voxel_table(&self) -> crate::nsd::VoxelTable {
        let v = self.roi.len();
        let mut labels = indexmap::IndexMap::new();
        labels.insert(
            "roi".to_string(),
            self.roi.iter().map(|&c| roi_name(c)).collect(),
        );
        crate::nsd::VoxelTable {
            hemi: vec![crate::record::BOTH.to_string(); v],
            index: (0..v as u32).collect(),
            ncsnr: vec![f64::NAN; v],
            labels,
        }
    }

    /// The files whose bytes the subject's responses depend on.
    pub fn input_files(&self) -> Vec<PathBuf> {
        vec![self.responses.clone()]
    }
}

/// Every voxel's ROI code of subject `s` (`roiS1`), in file order.
pub fn read_responses_codes(path: &Path, s: &str) -> Result<Vec<i64>> {
    read_codes(path, &format!("roi{s}"))
}

/// `roiS1` as integer codes.
fn read_codes(path: &Path, roi_var: &str) -> Result<Vec<i64>> {
    let roi = crate::mat::read(path, roi_var)?;
    if roi.shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(Error::data(
            path,
            format!(
                "`{roi_var}` has shape {:?}; expected one code per voxel",
                roi.shape
            ),
        ));
    }
    roi.data
        .iter()
        .enumerate()
        .map(|(j, &x)| {
            if !x.is_finite() || x.fract() != 0.0 {
                Err(Error::data(
                    path,
                    format!("`{roi_var}` voxel {j} has code {x}; codes are integers (6 = V4)"),
                ))
            } else {
                Ok(x as i64)
            }
        })
        .collect()
}

/// CRCNS's single `Stimuli.mat`, else the project's full-resolution files.
fn find_stimuli(dir: &Path) -> Result<Option<Stimuli>> {
    let one = dir.join(STIMULI);
    if one.is_file() {
        return Ok(Some(Stimuli {
            train: vec![(one.clone(), "stimTrn".into())],
            val: vec![(one, "stimVal".into())],
        }));
    }
    let mut train: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(FULLRES_TRN) && n.ends_with(".mat"))
        })
        .collect();
    if train.is_empty() {
        return Ok(None);
    }
    // _01 … _15: the numbers sort as written (zero-padded).
    train.sort();
    let val = dir.join(FULLRES_VAL);
    if !val.is_file() {
        return Err(Error::data(
            dir,
            format!("has {FULLRES_TRN}NN.mat files but no {FULLRES_VAL}"),
        )
        .with_help(layout_help()));
    }
    Ok(Some(Stimuli {
        train: train.into_iter().map(|p| (p, "stimTrn".into())).collect(),
        val: vec![(val, "stimVal".into())],
    }))
}

/// `images × voxels` from a MATLAB variable in either orientation, given the
/// voxel count.
fn images_by_voxels(path: &Path, name: &str, a: Array<f64>, voxels: usize) -> Result<Array<f64>> {
    let [r, c] = a.shape[..] else {
        return Err(Error::data(
            path,
            format!("`{name}` has shape {:?}; expected voxels × images", a.shape),
        ));
    };
    if r == voxels && c != voxels {
        // MATLAB's own orientation (voxels × images): transpose.
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = a.data[i * c + j];
            }
        }
        Ok(Array::new(vec![c, r], t))
    } else if c == voxels {
        Ok(a)
    } else {
        Err(Error::data(
            path,
            format!("`{name}` is {r} × {c} but the ROI vector has {voxels} voxels"),
        ))
    }
}

/// Subject `s` ("S1") of an `EstimatedResponses.mat`.
pub fn read_responses(path: &Path, s: &str) -> Result<Responses> {
    let codes = read_codes(path, &format!("roi{s}"))?;
    let v = codes.len();
    let train_var = format!("dataTrn{s}");
    let val_var = format!("dataVal{s}");
    let train = images_by_voxels(path, &train_var, crate::mat::read(path, &train_var)?, v)?;
    let val = images_by_voxels(path, &val_var, crate::mat::read(path, &val_var)?, v)?;
    let nan_in = |a: &Array<f64>, j: usize| {
        let (n, w) = a.rows_cols();
        (0..n).any(|i| a.data[i * w + j].is_nan())
    };
    let (mut keep, mut dropped_trn, mut dropped_val) = (Vec::new(), Vec::new(), Vec::new());
    for j in 0..v {
        if nan_in(&train, j) {
            dropped_trn.push(j);
        } else if nan_in(&val, j) {
            dropped_val.push(j);
        } else {
            keep.push(j);
        }
    }
    let (dropped_train_nan, dropped_val_nan) = (dropped_trn.len(), dropped_val.len());
    let mut dropped = dropped_trn;
    dropped.extend(dropped_val);
    let columns = |a: &Array<f64>| {
        let (n, w) = a.rows_cols();
        let mut out = Vec::with_capacity(n * keep.len());
        for i in 0..n {
            out.extend(keep.iter().map(|&j| a.data[i * w + j]));
        }
        Array::new(vec![n, keep.len()], out)
    };
    if let Some(j) = keep.iter().find(|&&j| {
        train
            .data
            .iter()
            .skip(j)
            .step_by(v)
            .any(|x| x.is_infinite())
    }) {
        return Err(Error::data(
            path,
            format!("`{train_var}` voxel {j} has an infinite response"),
        ));
    }
    Ok(Responses {
        train: columns(&train),
        val: columns(&val),
        roi: keep.iter().map(|&j| codes[j]).collect(),
        voxel: keep,
        dropped_train_nan,
        dropped_val_nan,
        dropped,
    })
}

/// `stimTrn` or `stimVal` of a `Stimuli.mat`: n × H × W, as MATLAB holds them.
pub fn read_stimuli(path: &Path, name: &str) -> Result<Array<f64>> {
    let a = crate::mat::read(path, name)?;
    if a.shape.len() != 3 || a.shape.iter().any(|&d| d == 0) {
        return Err(Error::data(
            path,
            format!(
                "`{name}` has shape {:?}; expected images × height × width",
                a.shape
            ),
        ));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vim1")
            .join(name)
    }

    fn npy(name: &str) -> Array<f64> {
        crate::npy::read_f64(&fx(name)).unwrap()
    }

    #[test]
    fn both_kinds_of_mat_file_read_as_images_by_voxels() {
        for kind in ["v73", "v5"] {
            let r = read_responses(&fx(&format!("{kind}/EstimatedResponses.mat")), "S1").unwrap();
            assert_eq!(r.train.shape, npy("expected_trn_S1.npy").shape, "{kind}");
            assert_eq!(r.train.data, npy("expected_trn_S1.npy").data, "{kind}");
            assert_eq!(r.val.data, npy("expected_val_S1.npy").data, "{kind}");
            let voxels: Vec<usize> = npy("expected_voxels_S1.npy")
                .data
                .iter()
                .map(|&x| x as usize)
                .collect();
            assert_eq!(r.voxel, voxels, "{kind}");
            let roi: Vec<i64> = npy("expected_roi_S1.npy")
                .data
                .iter()
                .map(|&x| x as i64)
                .collect();
            assert_eq!(r.roi, roi, "{kind}");
            // Two V4 voxels NaN in a training image (the seed's rule), one
            // NaN only in a validation image.
            assert_eq!((r.dropped_train_nan, r.dropped_val_nan), (2, 1), "{kind}");
            assert_eq!(r.roi.iter().filter(|&&c| c == 6).count(), 15);
            // S2 has its own voxel count and no NaN.
            let s2 = read_responses(&fx(&format!("{kind}/EstimatedResponses.mat")), "S2").unwrap();
            assert_eq!(s2.train.shape, [30, 25]);
            assert_eq!(s2.val.shape, [8, 25]);
        }
    }

    #[test]
    fn stimuli_are_images_by_height_by_width() {
        let trn = read_stimuli(&fx("v5/Stimuli.mat"), "stimTrn").unwrap();
        let want = npy("expected_stim_trn.npy");
        assert_eq!(trn.shape, [30, 16, 16]);
        assert_eq!(trn.data, want.data);
        // Row 0 of image 0 is the fixture's ramp: the axes are not swapped.
        let ramp: Vec<f64> = (0..16).map(|i| -0.5 + i as f64 / 15.0).collect();
        for (g, w) in trn.data[..16].iter().zip(&ramp) {
            assert!((g - w).abs() < 1e-12);
        }
        assert_eq!(
            read_stimuli(&fx("v5/Stimuli.mat"), "stimVal")
                .unwrap()
                .shape,
            [8, 16, 16]
        );
    }

    #[test]
    fn errors_name_the_file_and_what_it_holds() {
        let e = read_responses(&fx("v5/EstimatedResponses.mat"), "S3").unwrap_err();
        assert!(
            e.to_string().contains("(MAT v5) has no variable `roiS3`"),
            "{e}"
        );
        let e = read_stimuli(&fx("v5/EstimatedResponses.mat"), "dataTrnS1").unwrap_err();
        assert!(
            e.to_string()
                .contains("`dataTrnS1` has shape [40, 30]; expected images × height × width"),
            "{e}"
        );
        assert_eq!(roi_name(6), "V4");
        assert_eq!(roi_name(0), "other");
        assert_eq!(roi_name(3), "3");
    }
}
