//! `.npy` arrays: the exchange format between runner, numpy and the cache.
//!
//! npyz parses the header; the payload is read in one go and converted with
//! `from_le_bytes`, because element-by-element iteration is far too slow for
//! the 100 MB–1 GB feature matrices that extraction produces.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek};
use std::path::Path;

use npyz::{Endianness, Order, TypeChar, WriterBuilder};

/// A dense, C-ordered n-d array.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> Array<T> {
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "array shape {shape:?} does not match {} elements",
            data.len()
        );
        Array { shape, data }
    }

    /// Rows × columns, treating every axis after the first as columns
    /// (so an N×C×H×W activation tensor reads as N×(C·H·W), as HW2 flattens it).
    pub fn rows_cols(&self) -> (usize, usize) {
        let rows = self.shape.first().copied().unwrap_or(1);
        let cols = self.data.len().checked_div(rows).unwrap_or(0);
        (rows, cols)
    }
}

/// Shape and dtype of an `.npy` file, read without touching the payload.
/// The shape is checked against the file's length, so a header that claims
/// more data than the file holds is an error here, before anyone allocates.
pub fn read_header(path: &Path) -> io::Result<(Vec<usize>, String)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::new(file);
    let header = parse_header(&mut r)?;
    let shape = shape_of(&header)?;
    let payload = payload_bytes(&shape, &header)?;
    let start = r.stream_position()?;
    let have = len.saturating_sub(start);
    if (have as u128) < payload as u128 {
        return Err(truncated(&shape, payload, have));
    }
    Ok((shape, header.dtype().descr()))
}

fn truncated(shape: &[usize], need: usize, have: u64) -> io::Error {
    invalid(format!(
        "file is truncated: shape {shape:?} needs {need} bytes of data, found {have}"
    ))
}

/// The header's shape, refusing dimensions that do not fit this machine's `usize`.
fn shape_of(header: &npyz::NpyHeader) -> io::Result<Vec<usize>> {
    header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| invalid(format!("dimension {d} is too large"))))
        .collect()
}

/// Elements in a shape, or an error when the product overflows.
pub fn checked_len(shape: &[usize]) -> io::Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(format!("shape {shape:?} is too large to address")))
}

/// Bytes of payload a header promises.
fn payload_bytes(shape: &[usize], header: &npyz::NpyHeader) -> io::Result<usize> {
    let size = match header.dtype() {
        npyz::DType::Plain(ty) => ty
            .num_bytes()
            .ok_or_else(|| invalid(format!("dtype {ty} has no fixed size")))?,
        other => {
            return Err(invalid(format!(
                "structured dtype {} is not a numeric array",
                other.descr()
            )));
        }
    };
    checked_len(shape)?
        .checked_mul(size)
        .ok_or_else(|| invalid(format!("shape {shape:?} is too large to address")))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads any real numeric `.npy` (f4, f8, f2, signed/unsigned ints, bool) as f64.
pub fn read_f64(path: &Path) -> io::Result<Array<f64>> {
    read_as(path, |x| x)
}

/// Reads any real numeric `.npy` as f32 (f64 payloads are rounded).
pub fn read_f32(path: &Path) -> io::Result<Array<f32>> {
    read_as(path, |x| x as f32)
}

/// Like [`read_f64`], from bytes already in memory (verified cache reads).
pub fn parse_f64(bytes: &[u8]) -> io::Result<Array<f64>> {
    convert(decode_raw(bytes)?, |x| x)
}

/// Like [`read_f32`], from bytes already in memory.
pub fn parse_f32(bytes: &[u8]) -> io::Result<Array<f32>> {
    convert(decode_raw(bytes)?, |x| x as f32)
}

/// Reads a `u1` (uint8) array, as images are stored.
pub fn read_u8(path: &Path) -> io::Result<Array<u8>> {
    let (shape, ty, bytes) = read_raw(path)?;
    if ty.type_char() != TypeChar::Uint || ty.size_field() != 1 {
        return Err(invalid(format!("expected dtype uint8, found {ty}")));
    }
    Ok(Array::new(shape, bytes))
}

fn read_raw(path: &Path) -> io::Result<(Vec<usize>, npyz::TypeStr, Vec<u8>)> {
    read_header(path)?;
    decode_raw(BufReader::new(File::open(path)?))
}

/// numpy's default `max_header_size`: real headers are a few hundred bytes.
const MAX_HEADER: usize = 10_000;

/// Reads the header through npyz, after checking it ourselves: npyz
/// multiplies the shape's dimensions unchecked (a panic, or a wrapped count
/// in a release build, on a header such as `(2**62, 400)`).
pub(crate) fn parse_header(r: &mut impl Read) -> io::Result<npyz::NpyHeader> {
    let mut pre = vec![0u8; 8];
    r.read_exact(&mut pre)?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(invalid("not an .npy file (no \\x93NUMPY magic)".into()));
    }
    let len = if pre[6] == 1 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b)?;
        pre.extend(b);
        u16::from_le_bytes(b) as usize
    } else {
        let mut b = [0u8; 4];
        r.read_exact(&mut b)?;
        pre.extend(b);
        u32::from_le_bytes(b) as usize
    };
    if len > MAX_HEADER {
        return Err(invalid(format!(
            "header of {len} bytes is larger than numpy writes ({MAX_HEADER})"
        )));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)?;
    if let Some(dims) = shape_in_header(&String::from_utf8_lossy(&text))
        && dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none()
    {
        return Err(invalid(format!("shape {dims:?} is too large to address")));
    }
    pre.extend(text);
    npyz::NpyHeader::from_reader(io::Cursor::new(pre))
}

/// The integers of the header's `'shape': (…)` tuple, if it reads as one.
fn shape_in_header(text: &str) -> Option<Vec<u64>> {
    let after = &text[text.find("'shape'")? + "'shape'".len()..];
    let open = after.find('(')?;
    let close = after[open..].find(')')? + open;
    after[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches('L').parse().ok())
        .collect()
}

/// Shape, dtype and C-ordered payload of an in-memory `.npy` (any plain
/// fixed-size dtype, strings included; Fortran order is reordered), for
/// readers of containers such as `.npz` that decode the payload themselves.
pub(crate) fn parse_raw(bytes: &[u8]) -> io::Result<(Vec<usize>, npyz::TypeStr, Vec<u8>)> {
    decode_raw(bytes)
}

/// [`parse_raw`]'s output as f64 (real numeric dtypes only).
pub(crate) fn raw_to_f64(raw: (Vec<usize>, npyz::TypeStr, Vec<u8>)) -> io::Result<Array<f64>> {
    convert(raw, |x| x)
}

/// The shape and dtype in an `.npy` header, read from the start of a
/// stream without touching the payload.
pub(crate) fn peek_header(r: &mut impl Read) -> io::Result<(Vec<usize>, npyz::DType)> {
    let header = parse_header(r)?;
    Ok((shape_of(&header)?, header.dtype()))
}

/// The bytes of a version-1.0 `.npy` header for a C-ordered array, as
/// `np.save` writes it (padded with spaces to a multiple of 64, ending in a
/// newline); the caller appends the payload.
pub(crate) fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out
}

fn decode_raw(mut r: impl Read) -> io::Result<(Vec<usize>, npyz::TypeStr, Vec<u8>)> {
    let header = parse_header(&mut r)?;
    let ty = match header.dtype() {
        npyz::DType::Plain(ty) => ty,
        other => {
            return Err(invalid(format!(
                "structured dtype {} is not a numeric array",
                other.descr()
            )));
        }
    };
    let shape = shape_of(&header)?;
    let size = ty
        .num_bytes()
        .ok_or_else(|| invalid(format!("dtype {ty} has no fixed size")))?;
    let need = payload_bytes(&shape, &header)?;
    // Never trust the header for an allocation: read what is there (callers
    // with a file check its length first), then compare.
    let mut bytes = Vec::with_capacity(need.min(1 << 30));
    r.take(need as u64).read_to_end(&mut bytes)?;
    if bytes.len() < need {
        return Err(truncated(&shape, need, bytes.len() as u64));
    }
    if header.order() == Order::Fortran && shape.len() > 1 {
        bytes = fortran_to_c(&bytes, &shape, size);
    }
    Ok((shape, ty, bytes))
}

/// numpy writes a transposed (F-contiguous) array in Fortran order; reorder to C.
pub(crate) fn fortran_to_c(bytes: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut out = vec![0u8; bytes.len()];
    let mut idx = vec![0usize; shape.len()];
    for c_pos in 0..n {
        // Fortran offset of the C-ordered multi-index `idx`.
        let mut f_pos = 0;
        let mut stride = 1;
        for (i, &d) in idx.iter().zip(shape) {
            f_pos += i * stride;
            stride *= d;
        }
        out[c_pos * size..(c_pos + 1) * size]
            .copy_from_slice(&bytes[f_pos * size..(f_pos + 1) * size]);
        for ax in (0..shape.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

fn read_as<T>(path: &Path, conv: impl Fn(f64) -> T) -> io::Result<Array<T>> {
    convert(read_raw(path)?, conv)
}

fn convert<T>(
    (shape, ty, bytes): (Vec<usize>, npyz::TypeStr, Vec<u8>),
    conv: impl Fn(f64) -> T,
) -> io::Result<Array<T>> {
    let size = ty.size_field() as usize;
    let big = ty.endianness() == Endianness::Big;
    macro_rules! decode {
        ($t:ty) => {{
            bytes
                .chunks_exact(size)
                .map(|c| {
                    let arr: [u8; std::mem::size_of::<$t>()] = c.try_into().unwrap();
                    let v = if big {
                        <$t>::from_be_bytes(arr)
                    } else {
                        <$t>::from_le_bytes(arr)
                    };
                    conv(v as f64)
                })
                .collect::<Vec<T>>()
        }};
    }
    let data = match (ty.type_char(), size) {
        (TypeChar::Float, 8) => decode!(f64),
        (TypeChar::Float, 4) => decode!(f32),
        (TypeChar::Float, 2) => bytes
            .chunks_exact(2)
            .map(|c| {
                let bits = if big {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                };
                conv(npyz::half::f16::from_bits(bits).to_f64())
            })
            .collect(),
        (TypeChar::Int, 1) => decode!(i8),
        (TypeChar::Int, 2) => decode!(i16),
        (TypeChar::Int, 4) => decode!(i32),
        (TypeChar::Int, 8) => decode!(i64),
        (TypeChar::Uint, 1) | (TypeChar::Bool, 1) => decode!(u8),
        (TypeChar::Uint, 2) => decode!(u16),
        (TypeChar::Uint, 4) => decode!(u32),
        (TypeChar::Uint, 8) => decode!(u64),
        _ => {
            return Err(invalid(format!(
                "dtype {ty} is not a real numeric type runner can read"
            )));
        }
    };
    Ok(Array::new(shape, data))
}

/// Writes a C-ordered array with numpy's default dtype for `T` (`<f8`, `<f4`, `|u1`, `<i8`...).
pub fn write<T: npyz::AutoSerialize + Clone>(
    path: &Path,
    shape: &[usize],
    data: &[T],
) -> io::Result<()> {
    let w = BufWriter::new(File::create(path)?);
    assert_eq!(shape.iter().product::<usize>(), data.len());
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(&shape)
        .writer(w)
        .begin_nd()?;
    writer.extend(data.iter().cloned())?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_f32_reads_as_f64() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write(&p, &[2, 3], &[1.5f32, -2.0, 3.25, 0.0, 1e-3, 7.0]).unwrap();
        let a = read_f64(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data[0], 1.5);
        assert_eq!(a.data[4], 1e-3f32 as f64);
        assert_eq!(read_header(&p).unwrap(), (vec![2, 3], "'<f4'".into()));
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write(&p, &[4], &[1.0f64, 2.0, 3.0, 4.0]).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 3).unwrap();
        let err = read_f64(&p).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn fortran_order_is_reordered() {
        // 2×3 matrix [[0,1,2],[3,4,5]] stored column-major is 0,3,1,4,2,5.
        let bytes: Vec<u8> = [0u8, 3, 1, 4, 2, 5].to_vec();
        assert_eq!(fortran_to_c(&bytes, &[2, 3], 1), vec![0, 1, 2, 3, 4, 5]);
    }
}

/// Rows of a 2-d (or n-d, flattened per row) little-endian float32 `.npy`,
/// read on demand, so that a reader of a 2 GB feature matrix holds one batch.
pub struct RowReader {
    file: File,
    data_start: u64,
    pub rows: usize,
    pub cols: usize,
}

impl RowReader {
    pub fn open(path: &Path) -> io::Result<RowReader> {
        let (shape, descr) = read_header(path)?;
        if descr.trim_matches('\'') != "<f4" {
            return Err(invalid(format!(
                "expected float32 features (<f4), found dtype {descr}"
            )));
        }
        let mut file = File::open(path)?;
        let mut r = BufReader::new(&mut file);
        let header = parse_header(&mut r)?;
        if header.order() != Order::C {
            return Err(invalid(
                "Fortran-ordered arrays are not supported; save with C order".into(),
            ));
        }
        let data_start = r.stream_position()?;
        let rows = shape.first().copied().unwrap_or(1);
        let cols = checked_len(&shape)?.checked_div(rows).unwrap_or(0);
        Ok(RowReader {
            file,
            data_start,
            rows,
            cols,
        })
    }

    /// The given rows, in the given order, row-major.
    pub fn read_rows(&mut self, rows: &[usize]) -> io::Result<Vec<f32>> {
        use std::io::SeekFrom;
        let mut out = vec![0f32; rows.len() * self.cols];
        let mut buf = vec![0u8; self.cols * 4];
        for (k, &i) in rows.iter().enumerate() {
            if i >= self.rows {
                return Err(invalid(format!(
                    "row {i} is past the last row {}",
                    self.rows
                )));
            }
            self.file.seek(SeekFrom::Start(
                self.data_start + (i * self.cols * 4) as u64,
            ))?;
            self.file.read_exact(&mut buf)?;
            for (o, b) in out[k * self.cols..(k + 1) * self.cols]
                .iter_mut()
                .zip(buf.chunks_exact(4))
            {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(out)
    }
}
