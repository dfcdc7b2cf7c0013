//! HDF5 datasets as runner's arrays, read natively (the `hdf5-reader` crate,
//! pure Rust: no libhdf5 to install). Lab08 ships its betas and features as
//! h5py files (contiguous or chunked with gzip); vim-1's MATLAB v7.3 files
//! are HDF5 behind a 512-byte user block. Arrays come back with the axes h5py
//! shows, which for a MATLAB file are MATLAB's reversed.
//!
//! Groundwork for the Lab08 and Kay V4 workflows (issues 11 and 12).

use std::path::Path;

use hdf5_reader::{Datatype, Hdf5File};

use crate::error::{Error, Result};
use crate::npy::Array;

/// What a file that is not HDF5 turns out to be, for the error.
fn not_hdf5(path: &Path) -> Error {
    let head = std::fs::read(path)
        .map(|b| b.into_iter().take(128).collect::<Vec<u8>>())
        .unwrap_or_default();
    let what = if head.starts_with(b"MATLAB 5.0 MAT-file") {
        "a MATLAB v5 MAT-file (not HDF5: MATLAB writes HDF5 only with -v7.3)"
    } else if head.starts_with(b"\x93NUMPY") {
        "a .npy file"
    } else {
        "not an HDF5 file (no HDF5 signature at offset 0, 512, 1024, …)"
    };
    Error::data(path, format!("cannot be read as HDF5: it is {what}"))
}

fn open(path: &Path) -> Result<Hdf5File> {
    if !path.is_file() {
        return Err(Error::data(path, "no such file"));
    }
    Hdf5File::open(path).map_err(|_| not_hdf5(path))
}

/// The datasets of a file, by path (`/betas`, `/grp/idx`), sorted.
pub fn datasets(path: &Path) -> Result<Vec<String>> {
    let f = open(path)?;
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), f.root_group().map_err(|e| bad(path, e))?)];
    while let Some((prefix, g)) = stack.pop() {
        let (groups, sets) = g.member_names().map_err(|e| bad(path, e))?;
        out.extend(sets.into_iter().map(|d| format!("{prefix}/{d}")));
        for name in groups {
            let sub = g.group(&name).map_err(|e| bad(path, e))?;
            stack.push((format!("{prefix}/{name}"), sub));
        }
    }
    out.sort();
    Ok(out)
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::data(path, format!("unreadable HDF5: {e}"))
}

/// A numeric dataset as f64 (any float or integer storage type).
pub fn read_f64(path: &Path, dataset: &str) -> Result<Array<f64>> {
    let f = open(path)?;
    let d = f.dataset(dataset).map_err(|_| {
        let have = datasets(path).unwrap_or_default();
        Error::data(path, format!("has no dataset `{dataset}`"))
            .with_help(format!("datasets in the file: {}", have.join(", ")))
    })?;
    let shape: Vec<usize> = d.shape().iter().map(|&s| s as usize).collect();
    let e = |err: hdf5_reader::error::Error| bad(path, format!("dataset `{dataset}`: {err}"));
    let data: Vec<f64> = match d.dtype() {
        Datatype::FloatingPoint { size: 4, .. } => d
            .read_array::<f32>()
            .map_err(e)?
            .iter()
            .map(|&x| x as f64)
            .collect(),
        Datatype::FloatingPoint { size: 8, .. } => {
            d.read_array::<f64>().map_err(e)?.iter().copied().collect()
        }
        Datatype::FixedPoint {
            size: 8,
            signed: true,
            ..
        } => d
            .read_array::<i64>()
            .map_err(e)?
            .iter()
            .map(|&x| x as f64)
            .collect(),
        Datatype::FixedPoint {
            size: 4,
            signed: true,
            ..
        } => d
            .read_array::<i32>()
            .map_err(e)?
            .iter()
            .map(|&x| x as f64)
            .collect(),
        Datatype::FixedPoint {
            size: 1,
            signed: false,
            ..
        } => d
            .read_array::<u8>()
            .map_err(e)?
            .iter()
            .map(|&x| x as f64)
            .collect(),
        other => {
            return Err(Error::data(
                path,
                format!("dataset `{dataset}` holds {other:?}; expected floats or integers"),
            ));
        }
    };
    if data.len() != shape.iter().product::<usize>() {
        return Err(bad(
            path,
            format!("dataset `{dataset}` has fewer values than its shape {shape:?}"),
        ));
    }
    Ok(Array::new(shape, data))
}

/// Rows that are NaN in every column (Lab08: images without repeats).
pub fn nan_rows(a: &Array<f64>) -> Vec<usize> {
    let (n, c) = a.rows_cols();
    (0..n)
        .filter(|&i| c > 0 && a.data[i * c..(i + 1) * c].iter().all(|x| x.is_nan()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hdf5")
            .join(name)
    }

    fn same(a: &Array<f64>, want: &Array<f64>) {
        assert_eq!(a.shape, want.shape);
        for (x, y) in a.data.iter().zip(&want.data) {
            assert!(x == y || (x.is_nan() && y.is_nan()), "{x} vs {y}");
        }
    }

    #[test]
    fn h5py_files_read_as_numpy_wrote_them() {
        let betas = read_f64(&fx("contiguous.h5"), "betas").unwrap();
        same(
            &betas,
            &crate::npy::read_f64(&fx("expected_betas.npy")).unwrap(),
        );
        let b64 = read_f64(&fx("chunked_gzip.h5"), "/betas").unwrap();
        same(
            &b64,
            &crate::npy::read_f64(&fx("expected_b64.npy")).unwrap(),
        );
        assert_eq!(nan_rows(&b64), [3, 17, 31]);
        let idx = read_f64(&fx("chunked_gzip.h5"), "grp/idx").unwrap();
        assert_eq!(
            idx.data,
            (0..11).map(|i| (3 * i) as f64).collect::<Vec<_>>()
        );
        assert_eq!(
            datasets(&fx("chunked_gzip.h5")).unwrap(),
            ["/betas", "/features", "/grp/idx"]
        );
    }

    #[test]
    fn a_matlab_v73_file_reads_with_matlabs_axes_reversed() {
        let a = read_f64(&fx("v73.mat"), "dataTrnS1").unwrap();
        let want = crate::npy::read_f64(&fx("expected_data_trn.npy")).unwrap();
        assert_eq!(a.shape, [6, 20]);
        for i in 0..20 {
            for j in 0..6 {
                assert_eq!(a.data[j * 20 + i], want.data[i * 6 + j]);
            }
        }
    }

    #[test]
    fn errors_name_the_file_and_say_what_it_is() {
        let msg = |p: &str, d: &str| read_f64(&fx(p), d).unwrap_err().to_string();
        let e = msg("v5.mat", "dataTrnS1");
        assert!(
            e.contains("v5.mat") && e.contains("a MATLAB v5 MAT-file"),
            "{e}"
        );
        let e = msg("not_hdf5.h5", "x");
        assert!(
            e.contains("not_hdf5.h5") && e.contains("not an HDF5 file"),
            "{e}"
        );
        let err = read_f64(&fx("chunked_gzip.h5"), "betaz").unwrap_err();
        assert!(err.to_string().contains("has no dataset `betaz`"), "{err}");
        let help = format!("{:?}", miette::Report::new(err));
        assert!(help.contains("/betas, /features, /grp/idx"), "{help}");
        let e = msg("missing.h5", "x");
        assert!(
            e.contains("missing.h5") && e.contains("no such file"),
            "{e}"
        );
    }
}
