//! MATLAB `.mat` variables as runner's arrays, whichever kind of file it is:
//! v7.3 (HDF5 behind a 512-byte header: read by [`crate::hdf5`]) or v5 and
//! older (read by the `matfile` crate). vim-1's `EstimatedResponses.mat` is
//! v7.3 and its `Stimuli.mat` most likely v5 (public loaders use
//! `scipy.io.loadmat`, which reads only v5). Either way an array comes back
//! in MATLAB's orientation (`dataTrnS1` is 1750 × voxels), row-major: v7.3's
//! reversed axes are turned back, v5's column-major data is transposed.
//!
//! Groundwork for the Kay V4 workflow (issue 12).

use std::path::Path;

use matfile::NumericData;

use crate::error::{Error, IoContext, Result};
use crate::npy::Array;

/// Which kind of MAT file this is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatKind {
    V5,
    V73,
}

pub fn kind(path: &Path) -> Result<MatKind> {
    let bytes = std::fs::read(path).at(path)?;
    let hdf5_at_512 = bytes.get(512..520) == Some(b"\x89HDF\r\n\x1a\n".as_slice());
    match (bytes.starts_with(b"MATLAB"), hdf5_at_512) {
        (_, true) => Ok(MatKind::V73),
        (true, false) => Ok(MatKind::V5),
        _ => Err(Error::data(
            path,
            "is not a MATLAB file: no `MATLAB` header and no HDF5 signature at byte 512",
        )),
    }
}

/// A variable's shape in MATLAB's orientation, without reading its data
/// (v7.3; a v5 file is parsed whole, which old loaders do anyway).
pub fn shape(path: &Path, name: &str) -> Result<Vec<usize>> {
    match kind(path)? {
        MatKind::V73 => {
            let s = crate::hdf5::shape(path, name)
                .map_err(|e| e.with_help("the file is MAT v7.3 (HDF5)"))?;
            Ok(s.into_iter().rev().collect())
        }
        MatKind::V5 => Ok(read(path, name)?.shape),
    }
}

/// A numeric variable, in MATLAB's orientation (rows × columns × ...), row-major.
pub fn read(path: &Path, name: &str) -> Result<Array<f64>> {
    match kind(path)? {
        MatKind::V73 => {
            let a = crate::hdf5::read_f64(path, name)
                .map_err(|e| e.with_help("the file is MAT v7.3 (HDF5)"))?;
            // h5py's axes are MATLAB's reversed; C order over reversed axes
            // is MATLAB's column-major order, transposed here to row-major.
            let shape: Vec<usize> = a.shape.iter().rev().copied().collect();
            Ok(Array::new(
                shape.clone(),
                column_major_to_row_major(&a.data, &shape),
            ))
        }
        MatKind::V5 => {
            let file = std::fs::File::open(path).at(path)?;
            let mat = matfile::MatFile::parse(file).map_err(|e| {
                Error::data(path, format!("is a MAT v5 file that cannot be read: {e:?}"))
            })?;
            let Some(var) = mat.find_by_name(name) else {
                let have: Vec<&str> = mat.arrays().iter().map(|a| a.name()).collect();
                return Err(
                    Error::data(path, format!("(MAT v5) has no variable `{name}`"))
                        .with_help(format!("variables in the file: {}", have.join(", "))),
                );
            };
            let data: Vec<f64> = match var.data() {
                NumericData::Double { real, .. } => real.clone(),
                NumericData::Single { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::Int8 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::UInt8 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::Int16 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::UInt16 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::Int32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::UInt32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::Int64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                NumericData::UInt64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
            };
            let shape = var.size().clone();
            Ok(Array::new(
                shape.clone(),
                column_major_to_row_major(&data, &shape),
            ))
        }
    }
}

/// Reorders MATLAB's column-major data of `shape` into C order.
fn column_major_to_row_major(data: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = data.len();
    let mut out = vec![0.0; n];
    let mut idx = vec![0usize; shape.len()];
    for (cm, &x) in data.iter().enumerate() {
        // idx: the multi-index of position `cm` in column-major order.
        let mut rest = cm;
        for (d, &s) in shape.iter().enumerate() {
            idx[d] = rest % s.max(1);
            rest /= s.max(1);
        }
        let rm = idx.iter().zip(shape).fold(0, |acc, (&i, &s)| acc * s + i);
        out[rm] = x;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hdf5")
            .join(name)
    }

    #[test]
    fn v5_and_v73_give_matlabs_orientation() {
        let want = crate::npy::read_f64(&fx("expected_data_trn.npy")).unwrap();
        assert_eq!(kind(&fx("v5.mat")).unwrap(), MatKind::V5);
        assert_eq!(kind(&fx("v73.mat")).unwrap(), MatKind::V73);
        for f in ["v5.mat", "v73.mat"] {
            let a = read(&fx(f), "dataTrnS1").unwrap();
            assert_eq!(a.shape, [20, 6], "{f}");
            assert_eq!(a.data, want.data, "{f}");
        }
    }

    #[test]
    fn errors_say_which_kind_of_file_it_is() {
        let e = read(&fx("v5.mat"), "dataValS1").unwrap_err();
        assert!(
            e.to_string()
                .contains("(MAT v5) has no variable `dataValS1`"),
            "{e}"
        );
        let help = format!("{:?}", miette::Report::new(e));
        assert!(help.contains("variables in the file: dataTrnS1"), "{help}");
        let e = read(&fx("v73.mat"), "dataValS1").unwrap_err();
        let help = format!("{:?}", miette::Report::new(e));
        assert!(help.contains("MAT v7.3 (HDF5)"), "{help}");
        let e = read(&fx("not_hdf5.h5"), "x").unwrap_err().to_string();
        assert!(e.contains("is not a MATLAB file"), "{e}");
    }
}
