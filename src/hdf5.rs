//! HDF5 datasets as runner's arrays, read natively (the `hdf5-reader` crate,
//! pure Rust: no libhdf5 to install). Lab08 ships its betas and features as
//! h5py files (contiguous or chunked with gzip); vim-1's MATLAB v7.3 files
//! are HDF5 behind a 512-byte user block. Arrays come back with the axes h5py
//! shows, which for a MATLAB file are MATLAB's reversed.
//!
//! Small datasets are also written (its sibling crate `hdf5-writer`, also
//! pure Rust), for synthetic subjects in the Lab08 and vim-1 layouts:
//! contiguous little-endian float datasets, which h5py opens as numpy wrote
//! them ([`crate::mat::write_v73`] puts the same behind MATLAB's header).
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

fn dataset_of(path: &Path, dataset: &str) -> Result<hdf5_reader::Dataset> {
    open(path)?.dataset(dataset).map_err(|_| {
        let have = datasets(path).unwrap_or_default();
        Error::data(path, format!("has no dataset `{dataset}`"))
            .with_help(format!("datasets in the file: {}", have.join(", ")))
    })
}

/// A numeric dataset as f64 (any float or integer storage type).
pub fn read_f64(path: &Path, dataset: &str) -> Result<Array<f64>> {
    let d = dataset_of(path, dataset)?;
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

/// A dataset's shape, without reading its values (plan-time checks).
pub fn shape(path: &Path, dataset: &str) -> Result<Vec<usize>> {
    let d = dataset_of(path, dataset)?;
    Ok(d.shape().iter().map(|&s| s as usize).collect())
}

/// Writes one 2-D dataset (row-major rows × cols) to a new HDF5 file,
/// atomically (temp file in the same dir + rename). `dataset` may be given
/// with or without its leading slash (`/betas`, `features`); a path with
/// groups (`grp/x`) creates them.
pub fn write_2d_f64(
    path: &Path,
    dataset: &str,
    rows: usize,
    cols: usize,
    data: &[f64],
) -> std::io::Result<()> {
    write_nd(path, dataset, &[rows, cols], data)
}

/// As [`write_2d_f64`], stored as float32.
pub fn write_2d_f32(
    path: &Path,
    dataset: &str,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> std::io::Result<()> {
    write_nd(path, dataset, &[rows, cols], data)
}

/// As [`write_2d_f32`] for any number of axes (C order, the shape h5py
/// shows): vim-1's precomputed conv3 features are images × 14 × 14 × 384.
/// Each `(dataset, shape, values)` becomes one dataset of the file.
pub fn write_f32(path: &Path, sets: &[(&str, &[usize], &[f32])]) -> std::io::Result<()> {
    write_sets(path, sets)
}

fn write_nd<T: hdf5_writer::H5WriteElement>(
    path: &Path,
    dataset: &str,
    shape: &[usize],
    data: &[T],
) -> std::io::Result<()> {
    write_sets(path, &[(dataset, shape, data)])
}

fn write_sets<T: hdf5_writer::H5WriteElement>(
    path: &Path,
    sets: &[(&str, &[usize], &[T])],
) -> std::io::Result<()> {
    use hdf5_writer::{DatasetBuilder, Hdf5Builder, WriteOptions};
    use std::io::{Error as IoError, ErrorKind};
    let mut builder = Hdf5Builder::new();
    for &(dataset, shape, data) in sets {
        let invalid = |e: hdf5_writer::Error| {
            IoError::new(
                ErrorKind::InvalidInput,
                format!("{}: dataset `{dataset}`: {e}", path.display()),
            )
        };
        if shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(data.len()) {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            return Err(IoError::new(
                ErrorKind::InvalidInput,
                format!(
                    "{}: dataset `{dataset}` is {} but {} values were given",
                    path.display(),
                    dims.join("×"),
                    data.len()
                ),
            ));
        }
        // The writer takes paths relative to the root group.
        let name = dataset.strip_prefix('/').unwrap_or(dataset);
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        builder = builder.dataset(DatasetBuilder::typed_data(name, dims, data).map_err(invalid)?);
    }
    let bytes = builder
        .into_plan()
        .and_then(|plan| plan.encode(WriteOptions::default()))
        .map_err(|e| IoError::new(ErrorKind::InvalidInput, format!("{}: {e}", path.display())))?;
    crate::cache::write_atomic(path, &bytes).map_err(|e| match &e {
        Error::Io { source, .. } => IoError::new(source.kind(), e.to_string()),
        _ => IoError::other(e.to_string()),
    })
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

    /// 50×7 with rows 3, 17 and 31 NaN, as S1_betas_avg_bigmask.hdf5 has.
    fn betas_like() -> Vec<f64> {
        let mut v: Vec<f64> = (0..50 * 7).map(|i| i as f64 * 0.37 - 41.5).collect();
        for r in [3, 17, 31] {
            v[r * 7..(r + 1) * 7].fill(f64::NAN);
        }
        v
    }

    #[test]
    fn written_f64_and_f32_datasets_read_back_with_shape_and_nans() {
        let dir = tempfile::tempdir().unwrap();
        let want = betas_like();
        let p64 = dir.path().join("S1_betas_avg_bigmask.hdf5");
        write_2d_f64(&p64, "/betas", 50, 7, &want).unwrap();
        let a = read_f64(&p64, "/betas").unwrap();
        same(&a, &Array::new(vec![50, 7], want.clone()));
        assert_eq!(nan_rows(&a), [3, 17, 31]);
        // Stored name has no slash; both spellings find it.
        assert_eq!(datasets(&p64).unwrap(), ["/betas"]);
        same(&read_f64(&p64, "betas").unwrap(), &a);

        let w32: Vec<f32> = want.iter().map(|&x| x as f32).collect();
        let p32 = dir.path().join("S1_Conv1_pca100.hdf5");
        write_2d_f32(&p32, "features", 50, 7, &w32).unwrap();
        let f = open(&p32).unwrap();
        assert!(matches!(
            f.dataset("features").unwrap().dtype(),
            Datatype::FloatingPoint { size: 4, .. }
        ));
        let b = read_f64(&p32, "features").unwrap();
        let back: Vec<f64> = w32.iter().map(|&x| x as f64).collect();
        same(&b, &Array::new(vec![50, 7], back));
        assert_eq!(nan_rows(&b), [3, 17, 31]);
        same(&read_f64(&p32, "/features").unwrap(), &b);

        // A rewrite replaces the file whole and leaves no temp file behind.
        write_2d_f64(&p64, "betas", 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(read_f64(&p64, "betas").unwrap().shape, [2, 3]);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["S1_Conv1_pca100.hdf5", "S1_betas_avg_bigmask.hdf5"]);
    }

    #[test]
    fn a_write_with_the_wrong_length_or_name_fails_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.hdf5");
        let e = write_2d_f64(&p, "betas", 3, 2, &[1.0; 5]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("3×2 but 5 values"), "{e}");
        let e = write_2d_f32(&p, "", 1, 1, &[1.0]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(!p.exists());
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
