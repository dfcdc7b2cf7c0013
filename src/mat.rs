//! MATLAB `.mat` variables as runner's arrays, whichever kind of file it is:
//! v7.3 (HDF5 behind a 512-byte header: read by [`crate::hdf5`]) or v5 and
//! older (read by the `matfile` crate). vim-1's `EstimatedResponses.mat` is
//! v7.3 and its `Stimuli.mat` most likely v5 (public loaders use
//! `scipy.io.loadmat`, which reads only v5). Either way an array comes back
//! in MATLAB's orientation (`dataTrnS1` is 1750 × voxels), row-major: v7.3's
//! reversed axes are turned back, v5's column-major data is transposed.
//!
//! v7.3 is also written ([`write_v73`]), for synthetic
//! vim-1 data in the real files' layout (`runner synth --layout vim1`).
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

/// The first 116 bytes of a MAT file's header, as MATLAB writes them. The
/// date is fixed rather than today's: a synthetic file is then the same bytes
/// for the same seed, and runner keys cached work by the bytes of its inputs.
fn header_text(version: &str) -> [u8; 116] {
    let text = format!(
        "MATLAB {version} MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970{}",
        if version == "7.3" {
            " HDF5 schema 1.00 ."
        } else {
            ""
        }
    );
    let mut out = [b' '; 116];
    out[..text.len()].copy_from_slice(text.as_bytes());
    out
}

/// MATLAB's 512-byte v7.3 header (the HDF5 user block): the text, then the
/// subsystem data offset (none: zeros), version 0x0200 and the endian
/// indicator `IM` (written by a little-endian machine) at bytes 124..128.
fn v73_user_block() -> [u8; 512] {
    let mut out = [0u8; 512];
    out[..116].copy_from_slice(&header_text("7.3"));
    out[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
    out[126..128].copy_from_slice(b"IM");
    out
}

/// Checks what both writers need: MATLAB variable names (a letter, then
/// letters, digits and `_`, at most 63; each once) and arrays of at least two
/// dimensions with no zero one (MATLAB stores empty arrays differently).
fn check_vars(path: &Path, vars: &[(&str, &Array<f64>)]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for &(name, a) in vars {
        let valid = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(
                Error::data(path, format!("`{name}` is not a MATLAB variable name"))
                    .with_help("a letter, then letters, digits and `_`, at most 63 characters"),
            );
        }
        if !seen.insert(name) {
            return Err(Error::data(path, format!("variable `{name}` given twice")));
        }
        if a.shape.len() < 2 || a.shape.contains(&0) {
            return Err(Error::data(
                path,
                format!(
                    "variable `{name}` has shape {:?}; a MATLAB array has at least two dimensions, none of them 0",
                    a.shape
                ),
            ));
        }
    }
    Ok(())
}

/// Writes `vars` (each in MATLAB's orientation, row-major, as [`read`]
/// returns them) as MATLAB `save -v7.3` does: an HDF5 file behind a 512-byte
/// user block holding MATLAB's header, one float64 dataset per variable with
/// the axes reversed (a `dataTrnS1` of 400 voxels × 300 images shows in
/// h5py as (300, 400), as the real file's does), and a `MATLAB_class` attribute
/// `"double"` on each, as MATLAB's loader wants. Atomic (temp file + rename).
///
/// `hdf5-writer` has no user-block option: the file is encoded in memory
/// (superblock version 2 at offset 0, every address relative to the base
/// address 0), the 512 bytes are put in front, and the superblock is told
/// so: base address 512 and end-of-file address + 512 (libhdf5 stores the
/// end of file absolute, as h5py's own user-block files show), with its
/// Jenkins lookup3 checksum recomputed (`hdf5-writer`'s own function).
/// Every other address is relative to the base and stays as it is.
pub fn write_v73(path: &Path, vars: &[(&str, &Array<f64>)]) -> Result<()> {
    use hdf5_writer::{
        AttributeBuilder, DatasetBuilder, Datatype, Hdf5Builder, StringEncoding, StringPadding,
        StringSize, WriteOptions,
    };
    check_vars(path, vars)?;
    let bad = |e: hdf5_writer::Error| Error::data(path, format!("cannot be encoded as HDF5: {e}"));
    let mut builder = Hdf5Builder::new();
    for &(name, a) in vars {
        // MATLAB's own attribute: a 6-byte null-terminated ASCII string.
        let class = AttributeBuilder::new(
            "MATLAB_class",
            Datatype::String {
                size: StringSize::Fixed(6),
                encoding: StringEncoding::Ascii,
                padding: StringPadding::NullTerminate,
            },
            Vec::<u64>::new(),
            b"double".to_vec(),
        );
        let dims: Vec<u64> = a.shape.iter().rev().map(|&d| d as u64).collect();
        let data = row_major_to_column_major(&a.data, &a.shape);
        let set = DatasetBuilder::typed_data(name, dims, &data)
            .map_err(bad)?
            .attribute(class);
        builder = builder.dataset(set);
    }
    let hdf5 = builder
        .into_plan()
        .and_then(|plan| plan.encode(WriteOptions::default()))
        .map_err(bad)?;
    let mut bytes = Vec::with_capacity(512 + hdf5.len());
    bytes.extend_from_slice(&v73_user_block());
    bytes.extend_from_slice(&hdf5);
    let sb = &mut bytes[512..];
    // Superblock v2: signature, version, offset and length sizes (8), flags,
    // then base (12..20), extension (20..28), end of file (28..36) and root
    // object header (36..44) addresses, and the checksum of bytes 0..44.
    if sb.get(..12) != Some(b"\x89HDF\r\n\x1a\n\x02\x08\x08\x00".as_slice()) {
        return Err(Error::data(
            path,
            "hdf5-writer no longer starts its file with a version-2 superblock of 8-byte addresses; the user block cannot be added",
        ));
    }
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if u64_at(sb, 12) != 0 {
        return Err(Error::data(
            path,
            "hdf5-writer wrote a base address other than 0",
        ));
    }
    let eof = u64_at(sb, 28) + 512;
    sb[12..20].copy_from_slice(&512u64.to_le_bytes());
    sb[28..36].copy_from_slice(&eof.to_le_bytes());
    let sum = hdf5_writer::jenkins_lookup3(&sb[..44]);
    sb[44..48].copy_from_slice(&sum.to_le_bytes());
    crate::cache::write_atomic(path, &bytes)
}

/// C-order data of `shape` in MATLAB's column-major order.
fn row_major_to_column_major(data: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; data.len()];
    let mut idx = vec![0usize; shape.len()];
    for (rm, &x) in data.iter().enumerate() {
        let mut rest = rm;
        for d in (0..shape.len()).rev() {
            idx[d] = rest % shape[d].max(1);
            rest /= shape[d].max(1);
        }
        let cm = idx
            .iter()
            .zip(shape)
            .rev()
            .fold(0, |acc, (&i, &s)| acc * s + i);
        out[cm] = x;
    }
    out
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

    /// A 4 × 3 × 2 array whose value names its MATLAB index (i, j, k) and
    /// a column with a NaN, written by both writers and read back.
    fn vars() -> (Array<f64>, Array<f64>) {
        let mut cube = Vec::new();
        for i in 0..4 {
            for j in 0..3 {
                for k in 0..2 {
                    cube.push((100 * i + 10 * j + k) as f64 - 0.5);
                }
            }
        }
        let col = Array::new(vec![5, 1], vec![1.0, f64::NAN, -2.5, 1e300, 0.0]);
        (Array::new(vec![4, 3, 2], cube), col)
    }

    fn same(a: &Array<f64>, b: &Array<f64>) {
        assert_eq!(a.shape, b.shape);
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!(x == y || (x.is_nan() && y.is_nan()), "{x} vs {y}");
        }
    }

    #[test]
    fn written_v73_files_read_back_in_matlabs_orientation() {
        let dir = tempfile::tempdir().unwrap();
        let (cube, col) = vars();
        for (f, want) in [("a.mat", MatKind::V73)] {
            let p = dir.path().join(f);
            let write = write_v73;
            write(&p, &[("cube", &cube), ("roiS1", &col)]).unwrap();
            assert_eq!(kind(&p).unwrap(), want, "{f}");
            same(&read(&p, "cube").unwrap(), &cube);
            same(&read(&p, "roiS1").unwrap(), &col);
            // The same arrays give the same bytes (no time of day in the header).
            let first = std::fs::read(&p).unwrap();
            write(&p, &[("cube", &cube), ("roiS1", &col)]).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), first, "{f}");
        }
        // v7.3: MATLAB's header in the user block, h5py's axes reversed.
        let p = dir.path().join("a.mat");
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "));
        let text = std::str::from_utf8(&bytes[..116]).unwrap();
        assert!(text.trim_end().ends_with(" HDF5 schema 1.00 ."), "{text}");
        assert_eq!(&bytes[116..128], b"\0\0\0\0\0\0\0\0\x00\x02IM");
        assert_eq!(crate::hdf5::shape(&p, "cube").unwrap(), [2, 3, 4]);
        assert_eq!(crate::hdf5::shape(&p, "roiS1").unwrap(), [1, 5]);
        let h5 = crate::hdf5::read_f64(&p, "cube").unwrap();
        // h5py's [k, j, i] is MATLAB's (i, j, k).
        assert_eq!(
            h5.data[12 + 2 * 4 + 3],
            100.0 * 3.0 + 10.0 * 2.0 + 1.0 - 0.5
        );
        let f = hdf5_reader::Hdf5File::open(&p).unwrap();
        let class = f
            .dataset("cube")
            .unwrap()
            .attribute("MATLAB_class")
            .unwrap();
        assert_eq!(class.read_string().unwrap(), "double");
    }

    #[test]
    fn writers_refuse_what_matlab_cannot_hold_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mat");
        let (cube, _) = vars();
        let flat = Array::new(vec![3], vec![1.0, 2.0, 3.0]);
        let empty = Array::new(vec![0, 3], vec![]);
        for write in [write_v73] {
            let msg = |v: &[(&str, &Array<f64>)]| write(&p, v).unwrap_err().to_string();
            assert!(msg(&[("1x", &cube)]).contains("`1x` is not a MATLAB variable name"));
            assert!(msg(&[("a", &cube), ("a", &cube)]).contains("`a` given twice"));
            assert!(msg(&[("a", &flat)]).contains("at least two dimensions"));
            assert!(msg(&[("a", &empty)]).contains("none of them 0"));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
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
