//! numpy's pickled object arrays as `np.save(path, dict)` writes them: the
//! Algonauts 2023 `roi_masks/mapping_<class>.npy` files ({int label: ROI name},
//! read by the devkit with `np.load(path, allow_pickle=True).item()`).
//!
//! Such a file is an `.npy` header (`'descr': '|O'`, `'shape': ()`) followed by
//! a pickle of the 0-d ndarray: `numpy._core.multiarray._reconstruct` (numpy
//! 1.x: `numpy.core.multiarray`) REDUCE'd, then BUILD with the state
//! `(1, shape, dtype, is_fortran, [items])`, the dtype itself a REDUCE of
//! `numpy.dtype` plus a BUILD.
//!
//! Reading goes through serde-pickle, which never imports or calls anything:
//! it keeps an unknown global as an opaque value, and BUILD replaces that value
//! by its state. numpy's pickle of an object array therefore reads back as the
//! state tuple above, whose last element holds the dict; any object that is
//! not a plain Python value (a numpy scalar key, a class instance) is left
//! unresolved and reported. Protocols 2–5 and both module spellings read alike
//! (`tests/fixtures/algonauts_mappings/`, made with numpy).
//!
//! Writing produces numpy 2.x's bytes exactly (protocol 4, as `np.save` always
//! uses), so a mapping runner writes is the file numpy would have written for
//! the same dict in ascending label order, not just one numpy can read.
//! (Exceptions that never arise for a mapping: a pickle over 64 KiB, which
//! Python splits into several frames, and names that are one Python string
//! object used twice, which Python memoizes; both still load with numpy.)

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::path::Path;

use npyz::TypeChar;
use serde_pickle::{HashableValue, Value};

use crate::error::{Error, IoContext, Result};
use crate::npy;

/// {label: ROI name}, as in an Algonauts `mapping_<class>.npy`.
pub type Mapping = BTreeMap<i64, String>;

/// Far above any ROI mapping (a few hundred bytes): refuse to slurp a wrong file.
const MAX_MAPPING_BYTES: u64 = 16 << 20;

const HELP: &str = "a mapping file is what `np.save(path, {0: 'Unknown', 1: 'V1v', ...})` writes: \
                    a dict of int labels to str ROI names, read with np.load(path, allow_pickle=True).item()";

/// Reads a `mapping_<class>.npy`; every error names the file and says what it found.
pub fn read_mapping(path: &Path) -> Result<Mapping> {
    let len = std::fs::metadata(path).at(path)?.len();
    if len > MAX_MAPPING_BYTES {
        return Err(Error::data(
            path,
            format!("is {len} bytes, far larger than a ROI mapping; is it the right file?"),
        )
        .with_help(HELP));
    }
    let bytes = std::fs::read(path).at(path)?;
    parse_mapping(&bytes).map_err(|msg| Error::data(path, msg).with_help(HELP))
}

/// [`read_mapping`] on bytes in memory; the error is the message to attach to the file.
pub fn parse_mapping(bytes: &[u8]) -> std::result::Result<Mapping, String> {
    let mut cur = Cursor::new(bytes);
    let header =
        npy::parse_header(&mut cur).map_err(|e| format!("cannot read the .npy header: {e}"))?;
    let shape: Vec<u64> = header.shape().to_vec();
    match header.dtype() {
        npyz::DType::Plain(ty) if ty.type_char() == TypeChar::Object => {}
        other => {
            return Err(format!(
                "holds a {} array of shape {shape:?}, not a pickled dict \
                 (np.save of a dict writes a 0-d object array, dtype '|O')",
                other.descr()
            ));
        }
    }
    let n: u64 = shape.iter().product();
    if n != 1 {
        return Err(format!(
            "holds an object array of shape {shape:?} ({n} elements), not one dict \
             (np.load(...).item() needs exactly one element)"
        ));
    }
    let body = &bytes[cur.position() as usize..];
    // numpy's pickle.load ignores bytes after STOP, so no `end()` check here.
    let mut de =
        serde_pickle::Deserializer::new(body, serde_pickle::DeOptions::new().decode_strings());
    let value = de.deserialize_value().map_err(|e| match e {
        serde_pickle::Error::Syntax(serde_pickle::ErrorCode::UnresolvedGlobal) => {
            "the pickled dict holds a Python object other than int labels and str names \
             (a numpy scalar such as np.int64 or np.str_, or a class instance); \
             save {int(k): str(v) for k, v in d.items()} instead"
                .to_string()
        }
        e => format!("cannot read the pickle after the .npy header: {e}"),
    })?;
    let item = array_item(value)?;
    let Value::Dict(dict) = item else {
        return Err(format!(
            "a mapping that is not a dict: found {}",
            describe(&item)
        ));
    };
    let mut out = Mapping::new();
    for (key, name) in dict {
        let label = match key {
            HashableValue::I64(k) => k,
            HashableValue::Int(big) => {
                return Err(format!(
                    "label {big} does not fit in 64 bits; labels are small integers"
                ));
            }
            other => {
                return Err(format!(
                    "key {} is {}, not an integer label",
                    short(&other.clone().into_value()),
                    describe(&other.into_value())
                ));
            }
        };
        let Value::String(name) = name else {
            return Err(format!(
                "the name of label {label} is {}, not a string",
                describe(&name)
            ));
        };
        out.insert(label, name);
    }
    Ok(out)
}

/// The one element of numpy's pickled object array: the state tuple
/// `(version, shape, dtype, is_fortran, [items])` that BUILD left in place of
/// the `_reconstruct(...)` result.
fn array_item(value: Value) -> std::result::Result<Value, String> {
    let not_numpy = |v: &Value| {
        format!(
            "the pickle after the .npy header is not numpy's pickle of an object array \
             (found {})",
            describe(v)
        )
    };
    let Value::Tuple(state) = &value else {
        return Err(not_numpy(&value));
    };
    match &state[..] {
        [
            Value::I64(1),
            Value::Tuple(_),
            _,
            Value::Bool(_),
            Value::List(items),
        ] if items.len() == 1 => Ok(items[0].clone()),
        _ => Err(not_numpy(&value)),
    }
}

/// "a list", "a str", ... for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(_) => "a bool".into(),
        Value::I64(_) | Value::Int(_) => "an int".into(),
        Value::F64(_) => "a float".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::String(_) => "a str".into(),
        Value::List(x) => format!("a list of {} items", x.len()),
        Value::Tuple(x) => format!("a tuple of {} items", x.len()),
        Value::Set(_) | Value::FrozenSet(_) => "a set".into(),
        Value::Dict(_) => "a dict".into(),
    }
}

/// A short rendering of a key for messages.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        Value::F64(x) => x.to_string(),
        other => format!("{other:?}"),
    };
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

// -------------------------------------------------------------------- writer

/// Writes `map` as `np.save(path, dict(sorted(map.items())))` does (numpy 2.x).
pub fn write_mapping(path: &Path, map: &Mapping) -> io::Result<()> {
    std::fs::write(path, mapping_npy_bytes(map))
}

/// The bytes of [`write_mapping`]: numpy's `.npy` v1.0 header for a 0-d
/// object array, then the protocol-4 pickle CPython writes for it.
pub fn mapping_npy_bytes(map: &Mapping) -> Vec<u8> {
    let mut out = npy_object_header();
    out.extend(pickle_object_array(map));
    out
}

/// `{'descr': '|O', 'fortran_order': False, 'shape': (), }`, padded with spaces
/// and a newline so the data starts at a multiple of 64 bytes, as numpy does.
fn npy_object_header() -> Vec<u8> {
    let dict = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
    let unpadded = 10 + dict.len() + 1;
    let text = format!("{dict}{}\n", " ".repeat((64 - unpadded % 64) % 64));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((text.len() as u16).to_le_bytes());
    out.extend(text.as_bytes());
    out
}

// Pickle opcodes (Lib/pickle.py).
const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const STOP: u8 = b'.';
const MARK: u8 = b'(';
const MEMOIZE: u8 = 0x94;
const BINGET: u8 = b'h';
const STACK_GLOBAL: u8 = 0x93;
const REDUCE: u8 = b'R';
const BUILD: u8 = b'b';
const NONE: u8 = b'N';
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const LONG1: u8 = 0x8a;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const SHORT_BINBYTES: u8 = b'C';
const EMPTY_TUPLE: u8 = b')';
const TUPLE: u8 = b't';
const TUPLE1: u8 = 0x85;
const TUPLE3: u8 = 0x87;
const EMPTY_LIST: u8 = b']';
const APPEND: u8 = b'a';
const EMPTY_DICT: u8 = b'}';
const SETITEM: u8 = b's';
const SETITEMS: u8 = b'u';
/// Python's pickler writes dict items in batches of this many.
const BATCHSIZE: usize = 1000;

/// `pickle.dumps(np.array(dict, dtype=object), protocol=4)` as CPython's C
/// pickler emits it, opcode for opcode (memo indices in the comments).
fn pickle_object_array(map: &Mapping) -> Vec<u8> {
    let mut b = Vec::new();
    let s = |b: &mut Vec<u8>, text: &str| {
        str_memo(b, text);
    };
    s(&mut b, "numpy._core.multiarray"); // 0
    s(&mut b, "_reconstruct"); // 1
    b.extend([STACK_GLOBAL, MEMOIZE]); // 2
    s(&mut b, "numpy"); // 3
    s(&mut b, "ndarray"); // 4
    b.extend([STACK_GLOBAL, MEMOIZE]); // 5
    b.extend([BININT1, 0, TUPLE1, MEMOIZE]); // 6: shape (0,)
    b.extend([SHORT_BINBYTES, 1, b'b', MEMOIZE]); // 7
    b.extend([TUPLE3, MEMOIZE, REDUCE, MEMOIZE]); // 8, 9
    // __setstate__ (1, (), dtype('O'), False, [dict])
    b.extend([MARK, BININT1, 1, EMPTY_TUPLE, BINGET, 3]);
    s(&mut b, "dtype"); // 10
    b.extend([STACK_GLOBAL, MEMOIZE]); // 11
    s(&mut b, "O8"); // 12
    b.extend([NEWFALSE, NEWTRUE, TUPLE3, MEMOIZE, REDUCE, MEMOIZE]); // 13, 14
    // dtype state (3, '|', None, None, None, -1, -1, 63)
    b.extend([MARK, BININT1, 3]);
    s(&mut b, "|"); // 15
    b.extend([NONE, NONE, NONE]);
    int(&mut b, -1);
    int(&mut b, -1);
    int(&mut b, 63);
    b.extend([TUPLE, MEMOIZE, BUILD]); // 16
    b.extend([NEWFALSE, EMPTY_LIST, MEMOIZE, EMPTY_DICT, MEMOIZE]);
    if map.len() == 1 {
        let (&k, v) = map.iter().next().unwrap();
        int(&mut b, k);
        str_memo(&mut b, v);
        b.push(SETITEM);
    } else if !map.is_empty() {
        let mut items = map.iter().peekable();
        loop {
            b.push(MARK);
            let mut i = 0;
            for (&k, v) in items.by_ref().take(BATCHSIZE) {
                int(&mut b, k);
                str_memo(&mut b, v);
                i += 1;
            }
            b.push(SETITEMS);
            if i < BATCHSIZE {
                break;
            }
        }
    }
    b.extend([APPEND, TUPLE, MEMOIZE, BUILD, STOP]);

    let mut out = vec![PROTO, 4, FRAME];
    out.extend((b.len() as u64).to_le_bytes());
    out.extend(b);
    out
}

/// A str, then MEMOIZE (pickle memoizes every str it writes).
fn str_memo(b: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if bytes.len() < 256 {
        b.extend([SHORT_BINUNICODE, bytes.len() as u8]);
    } else {
        // Mapping names are far below BINUNICODE8's 4 GiB.
        b.push(BINUNICODE);
        b.extend((bytes.len() as u32).to_le_bytes());
    }
    b.extend(bytes);
    b.push(MEMOIZE);
}

/// An int as CPython's `save_long` writes it at protocol ≥ 2.
fn int(b: &mut Vec<u8>, v: i64) {
    if let Ok(v32) = i32::try_from(v) {
        let le = v32.to_le_bytes();
        if le[2] != 0 || le[3] != 0 {
            b.push(BININT);
            b.extend(le);
        } else if le[1] != 0 {
            b.extend([BININT2, le[0], le[1]]);
        } else {
            b.extend([BININT1, le[0]]);
        }
        return;
    }
    // encode_long: two's complement, little-endian, (bit_length // 8) + 1
    // bytes, less one redundant sign byte for some negatives.
    let bits = 64 - v.unsigned_abs().leading_zeros() as usize;
    let mut n = bits / 8 + 1;
    let le = (v as i128).to_le_bytes();
    if v < 0 && n > 1 && le[n - 1] == 0xff && le[n - 2] & 0x80 != 0 {
        n -= 1;
    }
    b.extend([LONG1, n as u8]);
    b.extend(&le[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/algonauts_mappings")
    }

    fn expected() -> serde_json::Map<String, serde_json::Value> {
        let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn as_mapping(pairs: &serde_json::Value) -> Mapping {
        pairs
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| (kv[0].as_i64().unwrap(), kv[1].as_str().unwrap().to_string()))
            .collect()
    }

    /// Every numpy-written fixture reads as numpy reads it, or fails naming the file.
    #[test]
    fn numpy_fixtures_read_as_numpy_reads_them() {
        let want = expected();
        assert!(want.len() >= 19, "fixtures missing: {}", want.len());
        for (name, case) in &want {
            let path = fixtures().join(name);
            let got = read_mapping(&path);
            match (case.get("ok"), case.get("error")) {
                (Some(pairs), _) => {
                    let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(got, as_mapping(pairs), "{name}");
                }
                (_, Some(phrase)) => {
                    let err = got.expect_err(name).to_string();
                    let phrase = phrase.as_str().unwrap();
                    assert!(err.contains(phrase), "{name}: `{err}` lacks `{phrase}`");
                    assert!(
                        err.contains(name.as_str()),
                        "{name}: `{err}` does not name the file"
                    );
                }
                _ => panic!("{name}: bad expected.json entry"),
            }
        }
    }

    /// The writer reproduces np.save's bytes for every dict numpy saved in
    /// ascending label order.
    #[test]
    fn writer_matches_np_save_byte_for_byte() {
        let want = expected();
        for name in [
            "default.npy",
            "non_ascii.npy",
            "large_label.npy",
            "single.npy",
            "empty.npy",
            "many.npy",
        ] {
            let map = as_mapping(&want[name]["ok"]);
            let numpy = std::fs::read(fixtures().join(name)).unwrap();
            let ours = mapping_npy_bytes(&map);
            assert!(
                ours == numpy,
                "{name}: runner's bytes differ from np.save's"
            );
            assert_eq!(parse_mapping(&ours).unwrap(), map, "{name}");
        }
    }

    #[test]
    fn exactly_1000_items_end_with_an_empty_batch() {
        let map: Mapping = (0..1000).map(|i| (i, format!("r{i}"))).collect();
        let bytes = mapping_npy_bytes(&map);
        // CPython writes MARK, 1000 items, SETITEMS, then an empty MARK SETITEMS.
        let tail = &bytes[bytes.len() - 9..];
        let want = [
            MEMOIZE, SETITEMS, MARK, SETITEMS, APPEND, TUPLE, MEMOIZE, BUILD, STOP,
        ];
        assert_eq!(tail, want);
        assert_eq!(parse_mapping(&bytes).unwrap(), map);
    }

    #[test]
    fn ints_encode_as_cpython_does() {
        let enc = |v: i64| {
            let mut b = Vec::new();
            int(&mut b, v);
            b
        };
        assert_eq!(enc(0), [BININT1, 0]);
        assert_eq!(enc(255), [BININT1, 255]);
        assert_eq!(enc(256), [BININT2, 0, 1]);
        assert_eq!(enc(65536), [BININT, 0, 0, 1, 0]);
        assert_eq!(enc(-1), [BININT, 0xff, 0xff, 0xff, 0xff]);
        // pickle.dumps(2**31, 4)[2:-1] == b'\x8a\x05\x00\x00\x00\x80\x00'
        assert_eq!(enc(1 << 31), [LONG1, 5, 0, 0, 0, 0x80, 0]);
        // pickle.dumps(-2**63, 4)[2:-1] == b'\x8a\x08' + b'\x00' * 7 + b'\x80'
        assert_eq!(enc(i64::MIN), [LONG1, 8, 0, 0, 0, 0, 0, 0, 0, 0x80]);
        assert_eq!(
            enc(-(1 << 31) - 1),
            [LONG1, 5, 0xff, 0xff, 0xff, 0x7f, 0xff]
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mapping_streams.npy");
        std::fs::write(&p, b"not a numpy file at all").unwrap();
        let err = read_mapping(&p).unwrap_err().to_string();
        assert!(
            err.contains("mapping_streams.npy") && err.contains("header"),
            "{err}"
        );
        // A numeric array where a mapping belongs.
        npy::write(&p, &[3], &[1.0f64, 2.0, 3.0]).unwrap();
        let err = read_mapping(&p).unwrap_err().to_string();
        assert!(
            err.contains("'<f8' array of shape [3], not a pickled dict"),
            "{err}"
        );
    }
}
