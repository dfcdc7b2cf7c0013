//! `.npz` archives: numpy's zip of `.npy` members (`np.savez` stores them,
//! `np.savez_compressed` deflates them), as the Stringer mouse V1 file
//! `W3D4_stringer_oribinned1.npz` (`resp`, `stimuli`) is shipped.
//!
//! Members are decoded by [`crate::npy`]; this module finds them, reads
//! numeric arrays as f64 and label arrays (integers, `<U…`, `|S…`) as
//! strings, refuses object arrays (pickles) and writes archives like
//! `np.savez` (stored, atomically).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use npyz::{DType, Endianness, TypeChar};

use crate::error::{Error, IoContext, Result};
use crate::npy::Array;

/// An opened `.npz`: its members' names, read once; each read opens the file
/// again, so an `Npz` holds no file handle.
#[derive(Debug, Clone)]
pub struct Npz {
    path: PathBuf,
    /// Member names as stored (`resp.npy`), in archive order.
    members: Vec<String>,
}

/// An array to write with [`write`].
#[derive(Debug, Clone, PartialEq)]
pub enum NpzArray {
    F32 {
        shape: Vec<usize>,
        data: Vec<f32>,
    },
    F64 {
        shape: Vec<usize>,
        data: Vec<f64>,
    },
    I64 {
        shape: Vec<usize>,
        data: Vec<i64>,
    },
    /// Written as numpy unicode `<U{longest}`; `shape` None is 1-D.
    Str {
        shape: Option<Vec<usize>>,
        data: Vec<String>,
    },
}

const PICKLE_HELP: &str = "object arrays are Python pickles, which runner does not execute; save the labels as a string array instead: np.savez(path, key=np.array(x, dtype=str))";

impl Npz {
    pub fn open(path: &Path) -> Result<Npz> {
        let file = File::open(path).at(path)?;
        let zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            Error::data(path, format!("not an .npz (zip) archive: {e}")).with_help(
                "an .npz is what np.savez / np.savez_compressed write; a single array saved with np.save is an .npy",
            )
        })?;
        let mut members = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let name = zip
                .name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| n.to_string())
                .unwrap_or_default();
            if !name.ends_with('/') {
                members.push(name);
            }
        }
        if !members.iter().any(|m| m.ends_with(".npy")) {
            return Err(Error::data(
                path,
                format!(
                    "is a zip archive but not an .npz: it holds no .npy member (it has: {})",
                    list(&members)
                ),
            )
            .with_help("write the arrays with np.savez or np.savez_compressed"));
        }
        Ok(Npz {
            path: path.to_path_buf(),
            members,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Array names (member names without `.npy`), in archive order.
    pub fn keys(&self) -> Vec<String> {
        self.members
            .iter()
            .filter_map(|m| m.strip_suffix(".npy"))
            .map(str::to_string)
            .collect()
    }

    /// The member of `key`, or an error naming the keys there are.
    fn member(&self, key: &str) -> Result<&str> {
        let want = format!("{key}.npy");
        self.members
            .iter()
            .find(|m| **m == want)
            .map(String::as_str)
            .ok_or_else(|| {
                let name = self.path.file_name().map_or_else(
                    || self.path.display().to_string(),
                    |n| n.to_string_lossy().into(),
                );
                Error::data(
                    &self.path,
                    format!(
                        "`{name}` has no array `{key}`; it has: {}",
                        self.keys().join(", ")
                    ),
                )
                .with_help("check the key's spelling (keys are case-sensitive)")
            })
    }

    fn archive(&self) -> Result<zip::ZipArchive<BufReader<File>>> {
        let file = File::open(&self.path).at(&self.path)?;
        zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| Error::data(&self.path, format!("reading the zip: {e}")))
    }

    fn bad(&self, key: &str, msg: impl std::fmt::Display) -> Error {
        Error::data(&self.path, format!("array `{key}`: {msg}"))
    }

    /// Shape and dtype from the member's header, without its payload.
    fn header(&self, key: &str) -> Result<(Vec<usize>, DType)> {
        let member = self.member(key)?;
        let mut zip = self.archive()?;
        let mut f = zip
            .by_name(member)
            .map_err(|e| self.bad(key, format!("reading the member: {e}")))?;
        crate::npy::peek_header(&mut f).map_err(|e| self.bad(key, e))
    }

    /// The member's bytes, read whole (the zip's CRC is checked at the end).
    fn bytes(&self, key: &str) -> Result<Vec<u8>> {
        let member = self.member(key)?;
        let mut zip = self.archive()?;
        let f = zip
            .by_name(member)
            .map_err(|e| self.bad(key, format!("reading the member: {e}")))?;
        let size = f.size();
        // The declared size is a hint only: never allocate on it beyond 1 GiB.
        let mut bytes = Vec::with_capacity(size.min(1 << 30) as usize);
        f.take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| self.bad(key, format!("reading the member: {e}")))?;
        Ok(bytes)
    }

    /// The array's shape, from its header.
    pub fn shape(&self, key: &str) -> Result<Vec<usize>> {
        Ok(self.header(key)?.0)
    }

    /// The dtype as numpy writes it (`<f4`, `<U5`, `|O`).
    pub fn dtype(&self, key: &str) -> Result<String> {
        Ok(self.header(key)?.1.descr().trim_matches('\'').to_string())
    }

    /// Any real numeric array (f2/f4/f8, i1..i8, u1..u8, bool; either byte
    /// order, C or Fortran order) as a C-ordered f64 array.
    pub fn read_f64(&self, key: &str) -> Result<Array<f64>> {
        let bytes = self.bytes(key)?;
        let (_, dtype) = crate::npy::peek_header(&mut &bytes[..]).map_err(|e| self.bad(key, e))?;
        self.refuse_objects(key, &dtype)?;
        if let DType::Plain(ty) = &dtype
            && matches!(ty.type_char(), TypeChar::UnicodeStr | TypeChar::ByteStr)
        {
            return Err(self
                .bad(key, format!("is a string array ({ty}), not numbers"))
                .with_help("read it as labels, or name a numeric array"));
        }
        crate::npy::parse_raw(&bytes)
            .and_then(crate::npy::raw_to_f64)
            .map_err(|e| self.bad(key, e))
    }

    /// Labels, flattened in C order: integer (and bool) arrays as decimal
    /// strings, float arrays whose values are all whole numbers likewise
    /// (MATLAB-style codes such as `6.0` → "6"), numpy unicode `<U…` and bytes
    /// `|S…` arrays as their strings (trailing NULs dropped). Object arrays
    /// are refused.
    pub fn read_labels(&self, key: &str) -> Result<Vec<String>> {
        let bytes = self.bytes(key)?;
        let (_, dtype) = crate::npy::peek_header(&mut &bytes[..]).map_err(|e| self.bad(key, e))?;
        self.refuse_objects(key, &dtype)?;
        let (_, ty, raw) = crate::npy::parse_raw(&bytes).map_err(|e| self.bad(key, e))?;
        let width = ty.size_field() as usize;
        match ty.type_char() {
            TypeChar::UnicodeStr => {
                let big = ty.endianness() == Endianness::Big;
                raw.chunks_exact(4 * width.max(1))
                    .map(|item| {
                        let mut s = String::new();
                        for c in item.chunks_exact(4) {
                            let arr = [c[0], c[1], c[2], c[3]];
                            let code = if big {
                                u32::from_be_bytes(arr)
                            } else {
                                u32::from_le_bytes(arr)
                            };
                            if code == 0 {
                                break;
                            }
                            s.push(char::from_u32(code).ok_or_else(|| {
                                self.bad(key, format!("holds an invalid code point U+{code:X}"))
                            })?);
                        }
                        Ok(s)
                    })
                    .collect()
            }
            TypeChar::ByteStr => raw
                .chunks_exact(width.max(1))
                .map(|item| {
                    let end = item.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                    String::from_utf8(item[..end].to_vec()).map_err(|_| {
                        self.bad(key, "holds bytes that are not UTF-8").with_help(
                            "save the labels as a unicode string array: np.array(x, dtype=str)",
                        )
                    })
                })
                .collect(),
            TypeChar::Int | TypeChar::Uint | TypeChar::Bool => {
                // i64/u64 beyond 2^53 do not survive f64: decode them exactly.
                let big = ty.endianness() == Endianness::Big;
                let signed = ty.type_char() == TypeChar::Int;
                Ok(raw
                    .chunks_exact(width)
                    .map(|c| {
                        let mut b = [0u8; 8];
                        if big {
                            b[8 - width..].copy_from_slice(c);
                            b.reverse();
                        } else {
                            b[..width].copy_from_slice(c);
                        }
                        if signed && b[width - 1] & 0x80 != 0 {
                            b[width..].fill(0xff);
                        }
                        if signed {
                            i64::from_le_bytes(b).to_string()
                        } else {
                            u64::from_le_bytes(b).to_string()
                        }
                    })
                    .collect())
            }
            TypeChar::Float => {
                let a = crate::npy::raw_to_f64((vec![raw.len() / width], ty.clone(), raw))
                    .map_err(|e| self.bad(key, e))?;
                a.data
                    .iter()
                    .map(|&v| {
                        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
                            Ok(format!("{}", v as i64))
                        } else {
                            Err(self
                                .bad(key, format!("is a float array ({ty}) with the value {v}, which is not a label"))
                                .with_help("labels are integers or strings; save them as such"))
                        }
                    })
                    .collect()
            }
            _ => Err(self
                .bad(key, format!("dtype {ty} is not a label type"))
                .with_help("labels are integer or string arrays")),
        }
    }

    fn refuse_objects(&self, key: &str, dtype: &DType) -> Result<()> {
        let object = match dtype {
            DType::Plain(ty) => ty.type_char() == TypeChar::Object,
            _ => false,
        };
        if object {
            return Err(self
                .bad(key, "is an object array ('|O', a pickle)")
                .with_help(PICKLE_HELP));
        }
        Ok(())
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// The `.npy` bytes of one array.
fn npy_bytes(array: &NpzArray) -> std::result::Result<Vec<u8>, String> {
    fn numeric<T: Copy, const N: usize>(
        descr: &str,
        shape: &[usize],
        data: &[T],
        le: impl Fn(T) -> [u8; N],
    ) -> std::result::Result<Vec<u8>, String> {
        check(shape, data.len())?;
        let mut out = crate::npy::header_bytes(descr, shape);
        out.reserve(data.len() * N);
        for &x in data {
            out.extend(le(x));
        }
        Ok(out)
    }
    fn check(shape: &[usize], len: usize) -> std::result::Result<(), String> {
        let n = crate::npy::checked_len(shape).map_err(|e| e.to_string())?;
        if n == len {
            Ok(())
        } else {
            Err(format!("shape {shape:?} needs {n} values, got {len}"))
        }
    }
    match array {
        NpzArray::F32 { shape, data } => numeric("<f4", shape, data, f32::to_le_bytes),
        NpzArray::F64 { shape, data } => numeric("<f8", shape, data, f64::to_le_bytes),
        NpzArray::I64 { shape, data } => numeric("<i8", shape, data, i64::to_le_bytes),
        NpzArray::Str { shape, data } => {
            let shape = shape.clone().unwrap_or_else(|| vec![data.len()]);
            check(&shape, data.len())?;
            if data.iter().any(|s| s.contains('\0')) {
                return Err("a string holds a NUL character, which numpy's <U drops".into());
            }
            // numpy's `<U0` cannot be written back; it uses `<U1` for "".
            let width = data
                .iter()
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(1);
            let mut out = crate::npy::header_bytes(&format!("<U{width}"), &shape);
            out.reserve(data.len() * width * 4);
            for s in data {
                let n = s.chars().count();
                for c in s.chars() {
                    out.extend((c as u32).to_le_bytes());
                }
                out.extend(std::iter::repeat_n(0u8, 4 * (width - n)));
            }
            Ok(out)
        }
    }
}

/// Writes `arrays` as an `.npz` like `np.savez` (members `<key>.npy`,
/// stored, zip64 where a member needs it), atomically: into a temporary file
/// in the same directory, renamed over `path` once complete.
pub fn write(path: &Path, arrays: &[(&str, NpzArray)]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).at(dir)?;
    for (i, (key, _)) in arrays.iter().enumerate() {
        if key.is_empty() || key.contains('/') {
            return Err(Error::data(path, format!("`{key}` is not an array name")));
        }
        if arrays[..i].iter().any(|(k, _)| k == key) {
            return Err(Error::data(path, format!("array `{key}` is given twice")));
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".npz")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .at(dir)?;
    {
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(tmp.as_file_mut()));
        let zerr = |e: zip::result::ZipError| Error::data(path, format!("writing the zip: {e}"));
        for (key, array) in arrays {
            let bytes =
                npy_bytes(array).map_err(|m| Error::data(path, format!("array `{key}`: {m}")))?;
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                // Fixed times: the same arrays give the same bytes.
                .last_modified_time(zip::DateTime::default())
                .large_file(bytes.len() as u64 >= u32::MAX as u64);
            zip.start_file(format!("{key}.npy"), opts).map_err(zerr)?;
            zip.write_all(&bytes).at(path)?;
        }
        let mut w = zip.finish().map_err(zerr)?;
        w.flush().at(path)?;
    }
    tmp.as_file().sync_all().at(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npz");
        write(
            &p,
            &[
                (
                    "resp",
                    NpzArray::F32 {
                        shape: vec![2, 3],
                        data: vec![1.5, -2.0, 3.25, 0.0, 1e-3, f32::NAN],
                    },
                ),
                (
                    "stimuli",
                    NpzArray::F64 {
                        shape: vec![2],
                        data: vec![0.5, 1.5],
                    },
                ),
                (
                    "plane",
                    NpzArray::I64 {
                        shape: vec![3],
                        data: vec![0, -3, i64::MAX],
                    },
                ),
                (
                    "names",
                    NpzArray::Str {
                        shape: None,
                        data: vec!["V1".into(), "".into(), "ünï∑".into()],
                    },
                ),
            ],
        )
        .unwrap();
        let z = Npz::open(&p).unwrap();
        assert_eq!(z.keys(), ["resp", "stimuli", "plane", "names"]);
        assert_eq!(z.shape("resp").unwrap(), [2, 3]);
        assert_eq!(z.dtype("names").unwrap(), "<U4");
        let r = z.read_f64("resp").unwrap();
        assert_eq!(r.shape, [2, 3]);
        assert_eq!(&r.data[..5], &[1.5, -2.0, 3.25, 0.0, 1e-3f32 as f64]);
        assert!(r.data[5].is_nan());
        assert_eq!(z.read_f64("stimuli").unwrap().data, [0.5, 1.5]);
        assert_eq!(
            z.read_labels("plane").unwrap(),
            ["0", "-3", &i64::MAX.to_string()]
        );
        assert_eq!(z.read_labels("names").unwrap(), ["V1", "", "ünï∑"]);
        assert_eq!(
            z.read_labels("stimuli")
                .unwrap_err()
                .to_string()
                .contains("0.5"),
            true
        );
        // No temporary file is left next to it.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_missing_key_names_the_keys_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("W3D4.npz");
        let f = |d: Vec<f64>| NpzArray::F64 {
            shape: vec![d.len()],
            data: d,
        };
        write(&p, &[("responses", f(vec![1.0])), ("ori", f(vec![2.0]))]).unwrap();
        let err = Npz::open(&p)
            .unwrap()
            .read_f64("resp")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`W3D4.npz` has no array `resp`; it has: responses, ori"),
            "{err}"
        );
    }

    #[test]
    fn not_a_zip_and_not_an_npz_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npz");
        crate::npy::write(&p, &[2], &[1.0f64, 2.0]).unwrap();
        let err = Npz::open(&p).unwrap_err();
        assert!(
            err.to_string().contains("not an .npz (zip) archive"),
            "{err}"
        );
        let q = dir.path().join("y.zip");
        let mut zip = zip::ZipWriter::new(File::create(&q).unwrap());
        zip.start_file("readme.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"hi").unwrap();
        zip.finish().unwrap();
        let err = Npz::open(&q).unwrap_err().to_string();
        assert!(err.contains("no .npy member (it has: readme.txt)"), "{err}");
    }

    #[test]
    fn bad_shapes_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npz");
        let bad = NpzArray::F32 {
            shape: vec![2, 2],
            data: vec![1.0],
        };
        let err = write(&p, &[("a", bad)]).unwrap_err().to_string();
        assert!(err.contains("shape [2, 2] needs 4 values, got 1"), "{err}");
        assert!(!p.exists());
    }

    #[test]
    fn header_matches_numpy() {
        // np.save's header for a (360, 1000) <f4 array, 128 bytes in all.
        let h = crate::npy::header_bytes("<f4", &[360, 1000]);
        assert_eq!(h.len(), 128);
        assert!(h.starts_with(b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (360, 1000), }"));
        assert_eq!(*h.last().unwrap(), b'\n');
        let h1 = crate::npy::header_bytes("<U3", &[5]);
        assert!(String::from_utf8_lossy(&h1).contains("'shape': (5,), }"));
    }
}
