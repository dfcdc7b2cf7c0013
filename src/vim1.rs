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
//! Groundwork for issue 12: the reader, not yet a subject format.

use std::path::Path;

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
    let roi_var = format!("roi{s}");
    let roi = crate::mat::read(path, &roi_var)?;
    let v = roi.data.len();
    if roi.shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(Error::data(
            path,
            format!(
                "`{roi_var}` has shape {:?}; expected one code per voxel",
                roi.shape
            ),
        ));
    }
    let mut codes = Vec::with_capacity(v);
    for (j, &x) in roi.data.iter().enumerate() {
        if !x.is_finite() || x.fract() != 0.0 {
            return Err(Error::data(
                path,
                format!("`{roi_var}` voxel {j} has code {x}; codes are integers (6 = V4)"),
            ));
        }
        codes.push(x as i64);
    }
    let train_var = format!("dataTrn{s}");
    let val_var = format!("dataVal{s}");
    let train = images_by_voxels(path, &train_var, crate::mat::read(path, &train_var)?, v)?;
    let val = images_by_voxels(path, &val_var, crate::mat::read(path, &val_var)?, v)?;
    let nan_in = |a: &Array<f64>, j: usize| {
        let (n, w) = a.rows_cols();
        (0..n).any(|i| a.data[i * w + j].is_nan())
    };
    let (mut keep, mut dropped_train_nan, mut dropped_val_nan) = (Vec::new(), 0, 0);
    for j in 0..v {
        if nan_in(&train, j) {
            dropped_train_nan += 1;
        } else if nan_in(&val, j) {
            dropped_val_nan += 1;
        } else {
            keep.push(j);
        }
    }
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
