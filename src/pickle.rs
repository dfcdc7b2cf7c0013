//! Python pickles as `np.save(path, obj)` writes them for a dict or any other
//! Python object: the Algonauts 2023 `roi_masks/mapping_<class>.npy` files
//! ({int label: ROI name}) and lab08's `S1_voxel_roi_info.npy` (whole-brain
//! arrays, name → label dicts, the brain's shape), both read by their owners
//! with `np.load(path, allow_pickle=True).item()`.
//!
//! Such a file is an `.npy` header (`'descr': '|O'`, `'shape': ()`) followed by
//! a pickle of the 0-d object ndarray: `numpy._core.multiarray._reconstruct`
//! (numpy 1.x: `numpy.core.multiarray`) REDUCE'd, then BUILD with the state
//! `(1, shape, dtype, is_fortran, data)`. Every ndarray inside is pickled the
//! same way, with its raw bytes as `data` (protocol 5: `_frombuffer` of them),
//! and its dtype is itself a REDUCE of `numpy.dtype` with the arguments
//! `('f8', False, True)` plus a BUILD with the byte order. numpy scalars
//! (`np.int64(3)`) are a REDUCE of `multiarray.scalar` with `(dtype, bytes)`.
//!
//! Why a pickle machine of our own: serde-pickle (used here before) keeps an
//! unknown global as an opaque value and drops the REDUCE arguments, so an
//! `'f8'` array and an `'i8'` one read back alike; burn's PyTorch reader
//! interprets only torch's objects and keeps its unpickler private. This one
//! is small and never imports or calls anything: a global is a
//! (module, name) pair, REDUCE/BUILD/NEWOBJ record their arguments, and only
//! after STOP are the few shapes numpy and Python write recognised (arrays,
//! dtypes, scalars, `_codecs.encode` bytes, sets, OrderedDict); any other
//! object is an error naming its class. Objects live in an arena so that
//! BUILD, APPEND and SETITEM on a memoized object are seen by every later
//! BINGET of it, as in Python (numpy's second array of a dtype is a BINGET
//! of the first one's dtype, whose byte order came with a later BUILD).
//! Every allocation is bounded by the input's length: lengths are checked
//! against what is left before reading, and turning the arena into values is
//! capped (a pickle that shares one list a billion times is an error, not an
//! out-of-memory), as are depth and cycles.
//!
//! Writing produces numpy 2.x's bytes exactly (protocol 4, as `np.save`
//! always uses): CPython's memo by identity and its 64 KiB framing are
//! reproduced, so a file runner writes is the file numpy would have written
//! for the same dict, not just one numpy can read (tested on Algonauts
//! mappings, on lab08-like dicts and, for large ones, by CRC against
//! np.save). Identity is what the pickler cannot see from values, so the
//! writer assumes what is true of freshly built numpy data: numpy's native
//! dtypes are singletons (so a second `<f8` array refers back to the first
//! one's dtype) while a non-native one (`>f8`) is a new object per array;
//! empty and one-character (latin-1) strs and empty and one-byte bytes are
//! singletons, as in CPython; every other str and bytes is a distinct object
//! (a dict built with one Python string object used twice, such as the same
//! `"Unknown"` literal in two name dicts, makes numpy memoize it and so
//! differs from runner's bytes by a BINGET; both load alike).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Cursor};
use std::path::Path;

use npyz::{Endianness, TypeChar, TypeStr};

use crate::error::{Error, IoContext, Result};
use crate::npy;

/// {label: ROI name}, as in an Algonauts `mapping_<class>.npy`.
pub type Mapping = BTreeMap<i64, String>;

/// Far above any ROI mapping (a few hundred bytes): refuse to slurp a wrong file.
const MAX_MAPPING_BYTES: u64 = 16 << 20;

/// Far above a whole-brain ROI file (tens of MB).
const MAX_OBJECT_BYTES: u64 = 4 << 30;

const HELP: &str = "a mapping file is what `np.save(path, {0: 'Unknown', 1: 'V1v', ...})` writes: \
                    a dict of int labels to str ROI names, read with np.load(path, allow_pickle=True).item()";

const OBJECT_HELP: &str = "runner reads what `np.save(path, d)` writes for a dict d (a 0-d object \
                           array, read with np.load(path, allow_pickle=True).item()), or a plain \
                           pickle of it; the values may be ndarrays, numpy scalars and plain \
                           Python values, not instances of other classes";

// ===================================================================== values

/// A Python value as numpy pickles it, with numpy arrays and scalars resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    /// A Python int or a numpy integer scalar (np.int64, np.uint8, ...).
    Int(i64),
    /// A Python float or a numpy float scalar (np.float64, np.float32, np.float16).
    Float(f64),
    /// A str or an `np.str_`.
    Str(String),
    /// bytes, bytearray or an `np.bytes_`.
    Bytes(Vec<u8>),
    /// A list; also a nested object ndarray, as `ndarray.tolist()` gives it
    /// (nested lists following its shape, C order; a 0-d one is its item).
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    /// A set or frozenset, in pickle order.
    Set(Vec<PyValue>),
    /// A dict (or OrderedDict / defaultdict) in insertion order; a key set
    /// twice keeps its first place and its last value, as in Python.
    Dict(Vec<(PyValue, PyValue)>),
    /// A numeric, bool or fixed-width string ndarray.
    Array(NdArray),
}

/// An ndarray's raw bytes with its numpy dtype, as pickled.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    /// numpy's `dtype.str`: `"<f8"`, `"<f4"`, `"|b1"`, `"<i8"`, `"|u1"`, `">u2"`, `"<U3"`, ...
    pub descr: String,
    pub shape: Vec<usize>,
    /// Whether `data` is in Fortran (column-major) order.
    pub fortran_order: bool,
    pub data: Vec<u8>,
}

/// One element as stored, before conversion.
#[derive(Clone, Copy)]
enum Num {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Num::Int(v) => write!(f, "{v}"),
            Num::Uint(v) => write!(f, "{v}"),
            Num::Float(v) => write!(f, "{v}"),
        }
    }
}

/// A decoder for one element of a real numeric or bool dtype, or None.
fn num_decoder(ty: &TypeStr) -> Option<fn(&[u8], bool) -> Num> {
    macro_rules! d {
        ($t:ty, $variant:ident, $as:ty) => {
            |c: &[u8], big: bool| {
                let a: [u8; std::mem::size_of::<$t>()] = c.try_into().unwrap();
                let v = if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                };
                Num::$variant(v as $as)
            }
        };
    }
    let f: fn(&[u8], bool) -> Num = match (ty.type_char(), ty.size_field()) {
        (TypeChar::Bool, 1) => |c, _| Num::Bool(c[0] != 0),
        (TypeChar::Int, 1) => d!(i8, Int, i64),
        (TypeChar::Int, 2) => d!(i16, Int, i64),
        (TypeChar::Int, 4) => d!(i32, Int, i64),
        (TypeChar::Int, 8) => d!(i64, Int, i64),
        (TypeChar::Uint, 1) => d!(u8, Uint, u64),
        (TypeChar::Uint, 2) => d!(u16, Uint, u64),
        (TypeChar::Uint, 4) => d!(u32, Uint, u64),
        (TypeChar::Uint, 8) => d!(u64, Uint, u64),
        (TypeChar::Float, 2) => |c, big| {
            let bits = if big {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            };
            Num::Float(npyz::half::f16::from_bits(bits).to_f64())
        },
        (TypeChar::Float, 4) => d!(f32, Float, f64),
        (TypeChar::Float, 8) => d!(f64, Float, f64),
        _ => return None,
    };
    Some(f)
}

/// Python's rendering of a shape: `()`, `(3,)`, `(2, 3)`.
fn py_shape(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl NdArray {
    /// Elements (the product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parsed dtype and its item size, after checking the data's length.
    fn dtype(&self) -> std::result::Result<(TypeStr, usize), String> {
        let ty: TypeStr = self
            .descr
            .parse()
            .map_err(|_| format!("{:?} is not a numpy dtype", self.descr))?;
        let size = ty
            .num_bytes()
            .filter(|_| ty.type_char() != TypeChar::Object)
            .ok_or_else(|| format!("a {} array has no fixed item size", self.descr))?;
        let need = self.shape.iter().try_fold(size, |a, &d| a.checked_mul(d));
        if need != Some(self.data.len()) {
            return Err(format!(
                "a {} array of shape {} needs {} bytes of data, but has {}",
                self.descr,
                py_shape(&self.shape),
                need.map_or("more than addressable".into(), |n| n.to_string()),
                self.data.len()
            ));
        }
        Ok((ty, size))
    }

    /// Every element, in C order, through `f(C-order index, element)`.
    fn map<T>(
        &self,
        mut f: impl FnMut(usize, Num) -> std::result::Result<T, String>,
    ) -> std::result::Result<Vec<T>, String> {
        let (ty, size) = self.dtype()?;
        let decode = num_decoder(&ty)
            .ok_or_else(|| format!("a {} array does not hold real numbers", self.descr))?;
        let big = ty.endianness() == Endianness::Big;
        let bytes: Cow<[u8]> = if self.fortran_order && self.shape.len() > 1 {
            Cow::Owned(npy::fortran_to_c(&self.data, &self.shape, size))
        } else {
            Cow::Borrowed(&self.data)
        };
        bytes
            .chunks_exact(size)
            .enumerate()
            .map(|(i, c)| f(i, decode(c, big)))
            .collect()
    }

    /// The elements as f64 in C order (bool, any int or uint, f2/f4/f8; either byte order).
    pub fn to_f64(&self) -> std::result::Result<Vec<f64>, String> {
        self.map(|_, v| {
            Ok(match v {
                Num::Bool(b) => f64::from(u8::from(b)),
                Num::Int(x) => x as f64,
                Num::Uint(x) => x as f64,
                Num::Float(x) => x,
            })
        })
    }

    /// The elements as i64 in C order: bools and ints, and floats that are
    /// integral; otherwise an error naming the first element that is not.
    pub fn to_i64(&self) -> std::result::Result<Vec<i64>, String> {
        let beyond = |i: usize, v: Num| format!("element {i} is {v}, beyond 64-bit integers");
        self.map(|i, v| match v {
            Num::Bool(b) => Ok(i64::from(b)),
            Num::Int(x) => Ok(x),
            Num::Uint(x) => i64::try_from(x).map_err(|_| beyond(i, v)),
            Num::Float(x) if x.fract() != 0.0 || x.is_nan() => Err(format!(
                "element {i} of a {} array is {x}, not an integer",
                self.descr
            )),
            // 2^63 is the first f64 beyond i64.
            Num::Float(x)
                if x.is_infinite()
                    || !(-9.223372036854775808e18..9.223372036854775808e18).contains(&x) =>
            {
                Err(beyond(i, v))
            }
            Num::Float(x) => Ok(x as i64),
        })
    }

    /// The elements as bools in C order: a bool array, or ints that are all 0 or 1.
    pub fn to_bool(&self) -> std::result::Result<Vec<bool>, String> {
        self.map(|i, v| match v {
            Num::Bool(b) => Ok(b),
            Num::Int(0) | Num::Uint(0) => Ok(false),
            Num::Int(1) | Num::Uint(1) => Ok(true),
            Num::Int(_) | Num::Uint(_) => Err(format!(
                "element {i} of a {} array is {v}, not 0 or 1",
                self.descr
            )),
            Num::Float(_) => Err(format!(
                "a {} array is not boolean (bool, or integers that are 0 or 1)",
                self.descr
            )),
        })
    }
}

impl PyValue {
    /// The value of `key` in a dict with str keys; None for a missing key or a non-dict.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, PyValue::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// What the value is, for messages: `"dict"`, `"int"`, `"ndarray <f8 (3,)"`, ...
    /// (a `Cow`: an array's name carries its dtype and shape).
    pub fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            PyValue::None => "None",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Set(_) => "set",
            PyValue::Dict(_) => "dict",
            PyValue::Array(a) => {
                return Cow::Owned(format!("ndarray {} {}", a.descr, py_shape(&a.shape)));
            }
        })
    }
}

// ==================================================================== reading

/// Reads what `np.save(path, obj)` wrote (a `.npy` holding a one-element
/// object array: the item), or a plain pickle file; every error names the file.
pub fn read_object(path: &Path) -> Result<PyValue> {
    let len = std::fs::metadata(path).at(path)?.len();
    if len > MAX_OBJECT_BYTES {
        return Err(Error::data(
            path,
            format!("is {len} bytes, larger than runner reads as one pickled object"),
        )
        .with_help(OBJECT_HELP));
    }
    let bytes = std::fs::read(path).at(path)?;
    parse_object(&bytes).map_err(|msg| Error::data(path, msg).with_help(OBJECT_HELP))
}

/// [`read_object`] on bytes in memory; the error is the message to attach to the file.
pub fn parse_object(bytes: &[u8]) -> std::result::Result<PyValue, String> {
    if bytes.starts_with(b"\x93NUMPY") {
        return npy_item(bytes, Mode::Any);
    }
    let (nodes, root) = Machine::run(bytes)
        .map_err(|e| format!("is neither an .npy file nor a pickle runner can read: {e}"))?;
    Convert::new(&nodes, Mode::Any, bytes.len()).value(root, 0)
}

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

/// The refusal of anything but int labels and str names in a mapping.
const NOT_PLAIN: &str = "the pickled dict holds a Python object other than int labels and str names \
                         (a numpy scalar such as np.int64 or np.str_, or a class instance); \
                         save {int(k): str(v) for k, v in d.items()} instead";

/// [`read_mapping`] on bytes in memory; the error is the message to attach to the file.
pub fn parse_mapping(bytes: &[u8]) -> std::result::Result<Mapping, String> {
    let item = npy_item(bytes, Mode::Mapping)?;
    let PyValue::Dict(dict) = item else {
        return Err(format!(
            "a mapping that is not a dict: found {}",
            describe(&item)
        ));
    };
    let mut out = Mapping::new();
    for (key, name) in dict {
        let PyValue::Int(label) = key else {
            return Err(format!(
                "key {} is {}, not an integer label",
                short(&key),
                describe(&key)
            ));
        };
        let PyValue::Str(name) = name else {
            return Err(format!(
                "the name of label {label} is {}, not a string",
                describe(&name)
            ));
        };
        out.insert(label, name);
    }
    Ok(out)
}

/// "a list of 2 items", "a str", ... for messages.
fn describe(v: &PyValue) -> String {
    match v {
        PyValue::None => "None".into(),
        PyValue::Bool(_) => "a bool".into(),
        PyValue::Int(_) => "an int".into(),
        PyValue::Float(_) => "a float".into(),
        PyValue::Bytes(_) => "bytes".into(),
        PyValue::Str(_) => "a str".into(),
        PyValue::List(x) => format!("a list of {} items", x.len()),
        PyValue::Tuple(x) => format!("a tuple of {} items", x.len()),
        PyValue::Set(_) => "a set".into(),
        PyValue::Dict(_) => "a dict".into(),
        PyValue::Array(_) => format!("an {}", v.type_name()),
    }
}

/// A short rendering of a key for messages.
fn short(v: &PyValue) -> String {
    let s = match v {
        PyValue::Str(s) => format!("{s:?}"),
        PyValue::Float(x) => x.to_string(),
        other => format!("{other:?}"),
    };
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// The one element of the object array an `.npy` file holds, as `.item()` gives it.
fn npy_item(bytes: &[u8], mode: Mode) -> std::result::Result<PyValue, String> {
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
    // numpy's pickle.load ignores bytes after STOP, and so does the machine.
    let body = &bytes[cur.position() as usize..];
    let (nodes, root) = Machine::run(body)
        .map_err(|e| format!("cannot read the pickle after the .npy header: {e}"))?;
    let mut conv = Convert::new(&nodes, mode, body.len());
    let item = conv.object_array_item(root).ok_or_else(|| {
        format!(
            "the pickle after the .npy header is not numpy's pickle of an object array \
             (found {})",
            conv.describe_node(root)
        )
    })?;
    conv.value(item, 0)
}

// ============================================================ pickle machine

// Pickle opcodes (Lib/pickle.py), protocols 0–5.
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const FLOAT: u8 = b'F';
const INT: u8 = b'I';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const LONG: u8 = b'L';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const PERSID: u8 = b'P';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const STRING: u8 = b'S';
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const UNICODE: u8 = b'V';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const DICT: u8 = b'd';
const EMPTY_DICT: u8 = b'}';
const APPENDS: u8 = b'e';
const GET: u8 = b'g';
const BINGET: u8 = b'h';
const INST: u8 = b'i';
const LONG_BINGET: u8 = b'j';
const LIST: u8 = b'l';
const EMPTY_LIST: u8 = b']';
const OBJ: u8 = b'o';
const PUT: u8 = b'p';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const SETITEMS: u8 = b'u';
const BINFLOAT: u8 = b'G';
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const EXT1: u8 = 0x82;
const EXT2: u8 = 0x83;
const EXT4: u8 = 0x84;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINBYTES8: u8 = 0x8e;
const EMPTY_SET: u8 = 0x8f;
const ADDITEMS: u8 = 0x90;
const FROZENSET: u8 = 0x91;
const NEWOBJ_EX: u8 = 0x92;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;
const BYTEARRAY8: u8 = 0x96;
const NEXT_BUFFER: u8 = 0x97;
const READONLY_BUFFER: u8 = 0x98;

/// Python's name of an opcode, for messages.
fn op_name(op: u8) -> Option<&'static str> {
    Some(match op {
        MARK => "MARK",
        STOP => "STOP",
        POP => "POP",
        POP_MARK => "POP_MARK",
        DUP => "DUP",
        FLOAT => "FLOAT",
        INT => "INT",
        BININT => "BININT",
        BININT1 => "BININT1",
        LONG => "LONG",
        BININT2 => "BININT2",
        NONE => "NONE",
        PERSID => "PERSID",
        BINPERSID => "BINPERSID",
        REDUCE => "REDUCE",
        STRING => "STRING",
        BINSTRING => "BINSTRING",
        SHORT_BINSTRING => "SHORT_BINSTRING",
        UNICODE => "UNICODE",
        BINUNICODE => "BINUNICODE",
        APPEND => "APPEND",
        BUILD => "BUILD",
        GLOBAL => "GLOBAL",
        DICT => "DICT",
        EMPTY_DICT => "EMPTY_DICT",
        APPENDS => "APPENDS",
        GET => "GET",
        BINGET => "BINGET",
        INST => "INST",
        LONG_BINGET => "LONG_BINGET",
        LIST => "LIST",
        EMPTY_LIST => "EMPTY_LIST",
        OBJ => "OBJ",
        PUT => "PUT",
        BINPUT => "BINPUT",
        LONG_BINPUT => "LONG_BINPUT",
        SETITEM => "SETITEM",
        TUPLE => "TUPLE",
        EMPTY_TUPLE => "EMPTY_TUPLE",
        SETITEMS => "SETITEMS",
        BINFLOAT => "BINFLOAT",
        PROTO => "PROTO",
        NEWOBJ => "NEWOBJ",
        EXT1 => "EXT1",
        EXT2 => "EXT2",
        EXT4 => "EXT4",
        TUPLE1 => "TUPLE1",
        TUPLE2 => "TUPLE2",
        TUPLE3 => "TUPLE3",
        NEWTRUE => "NEWTRUE",
        NEWFALSE => "NEWFALSE",
        LONG1 => "LONG1",
        LONG4 => "LONG4",
        BINBYTES => "BINBYTES",
        SHORT_BINBYTES => "SHORT_BINBYTES",
        SHORT_BINUNICODE => "SHORT_BINUNICODE",
        BINUNICODE8 => "BINUNICODE8",
        BINBYTES8 => "BINBYTES8",
        EMPTY_SET => "EMPTY_SET",
        ADDITEMS => "ADDITEMS",
        FROZENSET => "FROZENSET",
        NEWOBJ_EX => "NEWOBJ_EX",
        STACK_GLOBAL => "STACK_GLOBAL",
        MEMOIZE => "MEMOIZE",
        FRAME => "FRAME",
        BYTEARRAY8 => "BYTEARRAY8",
        NEXT_BUFFER => "NEXT_BUFFER",
        READONLY_BUFFER => "READONLY_BUFFER",
        _ => return None,
    })
}

type Id = usize;

/// An object the machine built. Containers hold arena ids, so that a
/// mutation through one reference is seen through every other, as in Python.
enum Node {
    None,
    Bool(bool),
    Int(i128),
    /// An int wider than 128 bits (its encoded length in bytes).
    BigInt(usize),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// A Python 2 `str` (BINSTRING): bytes that Python 3 decodes as ASCII.
    Str8(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// A class or function, never imported: `module.name`.
    Global(String, String),
    /// What REDUCE, NEWOBJ or NEWOBJ_EX would have built.
    Object(Box<Object>),
}

struct Object {
    callable: Id,
    args: Id,
    state: Option<Id>,
    /// APPEND(S) and SETITEM(S) on the object (list and dict subclasses).
    items: Vec<Id>,
    pairs: Vec<(Id, Id)>,
}

/// The pickle virtual machine: a stack split by MARKs, a memo and an arena.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// The current opcode and where it starts, for messages.
    op: u8,
    op_at: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

type Res<T> = std::result::Result<T, String>;

impl<'a> Machine<'a> {
    /// Runs a pickle to its STOP: the arena and the id of the value it returns.
    fn run(data: &'a [u8]) -> Res<(Vec<Node>, Id)> {
        let mut m = Machine {
            data,
            pos: 0,
            op: 0,
            op_at: 0,
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        };
        let root = m.exec()?;
        Ok((m.nodes, root))
    }

    fn name(&self) -> String {
        op_name(self.op).map_or_else(|| format!("0x{:02x}", self.op), str::to_string)
    }

    /// An error about the current opcode.
    fn fail(&self, msg: impl std::fmt::Display) -> String {
        format!("{} at byte {}: {msg}", self.name(), self.op_at)
    }

    fn take(&mut self, n: u64) -> Res<&'a [u8]> {
        let left = self.data.len() - self.pos;
        if n > left as u64 {
            return Err(format!(
                "the pickle ends inside {} at byte {} (it needs {n} more bytes, {left} remain)",
                self.name(),
                self.op_at
            ));
        }
        let out = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        Ok(self.take(N as u64)?.try_into().unwrap())
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A protocol-0 argument: the bytes up to the next newline, which is consumed.
    fn line(&mut self) -> Res<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(format!(
                "the pickle ends inside {} at byte {} (no newline ends its argument)",
                self.name(),
                self.op_at
            ));
        };
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn line_str(&mut self) -> Res<&'a str> {
        let line = self.line()?;
        std::str::from_utf8(line).map_err(|_| self.fail("its argument is not UTF-8"))
    }

    fn utf8(&self, bytes: &[u8]) -> Res<String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| self.fail("the string is not valid UTF-8"))
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    /// The bottom of the current MARK's frame of the stack.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Res<Id> {
        if self.stack.len() <= self.floor() {
            return Err(self.fail("the stack is empty"));
        }
        Ok(self.stack.pop().unwrap())
    }

    fn top(&self) -> Res<Id> {
        if self.stack.len() <= self.floor() {
            return Err(self.fail("the stack is empty"));
        }
        Ok(*self.stack.last().unwrap())
    }

    /// Everything pushed since the last MARK, which is dropped.
    fn pop_mark(&mut self) -> Res<Vec<Id>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.fail("no MARK before it"))?;
        Ok(self.stack.split_off(mark))
    }

    fn pairs(&self, items: Vec<Id>) -> Res<Vec<(Id, Id)>> {
        if items.len() % 2 != 0 {
            return Err(self.fail(format!("{} items are not key/value pairs", items.len())));
        }
        Ok(items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
    }

    fn memo_get(&mut self, i: u32) -> Res<()> {
        let id = *self
            .memo
            .get(&i)
            .ok_or_else(|| self.fail(format!("memo entry {i} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    fn memo_put(&mut self, i: u32) -> Res<()> {
        let top = self.top()?;
        self.memo.insert(i, top);
        Ok(())
    }

    fn kind(&self, id: Id) -> &'static str {
        node_kind(&self.nodes[id])
    }

    fn exec(&mut self) -> Res<Id> {
        loop {
            self.op_at = self.pos;
            let Some(&op) = self.data.get(self.pos) else {
                return Err(format!(
                    "the pickle ends at byte {} before its STOP opcode",
                    self.pos
                ));
            };
            self.pos += 1;
            self.op = op;
            match op {
                PROTO => {
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(self.fail(format!("protocol {v} is newer than 5")));
                    }
                }
                FRAME => {
                    let n = self.u64()?;
                    let left = self.data.len() - self.pos;
                    if n > left as u64 {
                        return Err(
                            self.fail(format!("a frame of {n} bytes, but only {left} remain"))
                        );
                    }
                }
                STOP => return self.pop(),
                MARK => self.marks.push(self.stack.len()),
                POP => {
                    if self.stack.len() > self.floor() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                NONE => self.push(Node::None),
                NEWTRUE => self.push(Node::Bool(true)),
                NEWFALSE => self.push(Node::Bool(false)),
                BININT => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Node::Int(v.into()));
                }
                BININT1 => {
                    let v = self.u8()?;
                    self.push(Node::Int(v.into()));
                }
                BININT2 => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Node::Int(v.into()));
                }
                LONG1 => {
                    let n = self.u8()?;
                    let bytes = self.take(n.into())?;
                    self.push(long(bytes));
                }
                LONG4 => {
                    let n = i32::from_le_bytes(self.array()?);
                    let n = u64::try_from(n).map_err(|_| self.fail("a negative length"))?;
                    let bytes = self.take(n)?;
                    self.push(long(bytes));
                }
                INT => {
                    let text = self.line_str()?.trim();
                    let node = match text {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        _ => self.decimal(text)?,
                    };
                    self.push(node);
                }
                LONG => {
                    let text = self.line_str()?.trim();
                    let node = self.decimal(text.strip_suffix('L').unwrap_or(text))?;
                    self.push(node);
                }
                BINFLOAT => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Node::Float(v));
                }
                FLOAT => {
                    let text = self.line_str()?.trim();
                    let v = text
                        .parse()
                        .map_err(|_| self.fail(format!("{text:?} is not a float")))?;
                    self.push(Node::Float(v));
                }
                SHORT_BINUNICODE | BINUNICODE | BINUNICODE8 => {
                    let n = match op {
                        SHORT_BINUNICODE => self.u8()?.into(),
                        BINUNICODE => self.u32()?.into(),
                        _ => self.u64()?,
                    };
                    let bytes = self.take(n)?;
                    let s = self.utf8(bytes)?;
                    self.push(Node::Str(s));
                }
                UNICODE => {
                    let line = self.line()?;
                    let s = raw_unicode_escape(line).map_err(|e| self.fail(e))?;
                    self.push(Node::Str(s));
                }
                SHORT_BINBYTES | BINBYTES | BINBYTES8 | BYTEARRAY8 => {
                    let n = match op {
                        SHORT_BINBYTES => self.u8()?.into(),
                        BINBYTES => self.u32()?.into(),
                        _ => self.u64()?,
                    };
                    let bytes = self.take(n)?;
                    self.push(Node::Bytes(bytes.to_vec()));
                }
                SHORT_BINSTRING | BINSTRING => {
                    let n = if op == SHORT_BINSTRING {
                        self.u8()?.into()
                    } else {
                        let n = i32::from_le_bytes(self.array()?);
                        u64::try_from(n).map_err(|_| self.fail("a negative length"))?
                    };
                    let bytes = self.take(n)?;
                    self.push(Node::Str8(bytes.to_vec()));
                }
                EMPTY_LIST => self.push(Node::List(Vec::new())),
                LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                APPEND | APPENDS => {
                    let new = if op == APPEND {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    let target = self.top()?;
                    let kind = self.kind(target);
                    match &mut self.nodes[target] {
                        Node::List(items) => items.extend(new),
                        Node::Object(o) => o.items.extend(new),
                        _ => return Err(self.fail(format!("appends to a {kind}"))),
                    }
                }
                EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1) + 1;
                    let floor = self.floor();
                    if self.stack.len() < floor + n {
                        return Err(self.fail("the stack is empty"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items));
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                DICT => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Node::Dict(pairs));
                }
                SETITEM | SETITEMS => {
                    let new = if op == SETITEM {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![(k, v)]
                    } else {
                        let items = self.pop_mark()?;
                        self.pairs(items)?
                    };
                    let target = self.top()?;
                    let kind = self.kind(target);
                    match &mut self.nodes[target] {
                        Node::Dict(pairs) => pairs.extend(new),
                        Node::Object(o) => o.pairs.extend(new),
                        _ => return Err(self.fail(format!("sets items of a {kind}"))),
                    }
                }
                EMPTY_SET => self.push(Node::Set(Vec::new())),
                ADDITEMS => {
                    let new = self.pop_mark()?;
                    let target = self.top()?;
                    let kind = self.kind(target);
                    match &mut self.nodes[target] {
                        Node::Set(items) => items.extend(new),
                        _ => return Err(self.fail(format!("adds items to a {kind}"))),
                    }
                }
                FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items));
                }
                GLOBAL => {
                    let module = self.line_str()?.to_string();
                    let name = self.line_str()?.to_string();
                    self.push(Node::Global(module, name));
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(m), Node::Str(n)) = (&self.nodes[module], &self.nodes[name])
                    else {
                        return Err(self.fail("the module and name are not strs"));
                    };
                    let node = Node::Global(m.clone(), n.clone());
                    self.push(node);
                }
                REDUCE | NEWOBJ | NEWOBJ_EX => {
                    if op == NEWOBJ_EX {
                        self.pop()?; // kwargs
                    }
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.push(Node::Object(Box::new(Object {
                        callable,
                        args,
                        state: None,
                        items: Vec::new(),
                        pairs: Vec::new(),
                    })));
                }
                BUILD => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    let kind = self.kind(target);
                    match &mut self.nodes[target] {
                        Node::Object(o) if o.state.is_none() => o.state = Some(state),
                        Node::Object(_) => return Err(self.fail("a second BUILD of one object")),
                        _ => return Err(self.fail(format!("sets the state of a {kind}"))),
                    }
                }
                MEMOIZE => {
                    let i = u32::try_from(self.memo.len())
                        .map_err(|_| self.fail("the memo is full"))?;
                    self.memo_put(i)?;
                }
                BINPUT => {
                    let i = self.u8()?;
                    self.memo_put(i.into())?;
                }
                LONG_BINPUT => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                PUT => {
                    let text = self.line_str()?;
                    let i = text
                        .trim()
                        .parse()
                        .map_err(|_| self.fail(format!("{text:?} is not a memo index")))?;
                    self.memo_put(i)?;
                }
                BINGET => {
                    let i = self.u8()?;
                    self.memo_get(i.into())?;
                }
                LONG_BINGET => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                GET => {
                    let text = self.line_str()?;
                    let i = text
                        .trim()
                        .parse()
                        .map_err(|_| self.fail(format!("{text:?} is not a memo index")))?;
                    self.memo_get(i)?;
                }
                PERSID | BINPERSID => {
                    return Err(self.fail(
                        "a persistent id (storage outside the pickle, as torch.save writes) \
                         is not supported",
                    ));
                }
                NEXT_BUFFER | READONLY_BUFFER => {
                    return Err(self.fail("out-of-band buffers are not supported"));
                }
                EXT1 | EXT2 | EXT4 => {
                    return Err(self.fail("the copyreg extension registry is not supported"));
                }
                INST | OBJ => {
                    return Err(self.fail(
                        "an instance of an old-style class (protocol 0/1) is not supported",
                    ));
                }
                STRING => {
                    return Err(self.fail("a Python 2 quoted string (protocol 0) is not supported"));
                }
                _ => {
                    return Err(format!(
                        "unknown opcode 0x{op:02x} at byte {}; not a pickle, or a newer protocol",
                        self.op_at
                    ));
                }
            }
        }
    }

    /// A protocol-0 INT or LONG argument.
    fn decimal(&self, text: &str) -> Res<Node> {
        if let Ok(v) = text.parse::<i128>() {
            return Ok(Node::Int(v));
        }
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Node::BigInt(digits.len() * 10 / 24 + 1))
        } else {
            Err(self.fail(format!("{text:?} is not an integer")))
        }
    }
}

/// LONG1/LONG4's payload: a little-endian two's-complement integer.
fn long(bytes: &[u8]) -> Node {
    let Some(&last) = bytes.last() else {
        return Node::Int(0);
    };
    let negative = last & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    let mut n = bytes.len();
    // Drop sign-extension bytes beyond 16 that do not change the value.
    while n > 16 && bytes[n - 1] == fill && (bytes[n - 2] & 0x80 != 0) == negative {
        n -= 1;
    }
    if n > 16 {
        return Node::BigInt(bytes.len());
    }
    let mut buf = [fill; 16];
    buf[..n].copy_from_slice(&bytes[..n]);
    Node::Int(i128::from_le_bytes(buf))
}

/// Python's `raw_unicode_escape` codec (protocol 0's UNICODE): latin-1 bytes
/// with `\uXXXX` and `\UXXXXXXXX` escapes.
fn raw_unicode_escape(b: &[u8]) -> std::result::Result<String, String> {
    let mut s = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && matches!(b.get(i + 1), Some(b'u' | b'U')) {
            let n = if b[i + 1] == b'u' { 4 } else { 8 };
            let hex = b
                .get(i + 2..i + 2 + n)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .ok_or("a truncated \\u escape")?;
            let cp = u32::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
            s.push(char::from_u32(cp).ok_or_else(|| format!("\\u{cp:x} is not a character"))?);
            i += 2 + n;
        } else {
            s.push(char::from(b[i]));
            i += 1;
        }
    }
    Ok(s)
}

fn node_kind(node: &Node) -> &'static str {
    match node {
        Node::None => "None",
        Node::Bool(_) => "bool",
        Node::Int(_) | Node::BigInt(_) => "int",
        Node::Float(_) => "float",
        Node::Str(_) | Node::Str8(_) => "str",
        Node::Bytes(_) => "bytes",
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Dict(_) => "dict",
        Node::Set(_) => "set",
        Node::Global(..) => "class or function",
        Node::Object(_) => "object",
    }
}

// ============================================== from the arena to values

/// How strictly the machine's objects become values.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// numpy arrays and scalars are values.
    Any,
    /// An Algonauts mapping: plain Python values only, big ints reported as labels.
    Mapping,
}

/// Far deeper than numpy data nests (Python's own pickler stops near 1000).
const MAX_DEPTH: usize = 200;

fn is_multiarray(module: &str) -> bool {
    matches!(
        module,
        "numpy.core.multiarray"
            | "numpy._core.multiarray"
            | "numpy.core._multiarray_umath"
            | "numpy._core._multiarray_umath"
    )
}

fn is_builtins(module: &str) -> bool {
    matches!(module, "builtins" | "__builtin__")
}

/// The key of a dict entry, for Python's "a key set twice keeps its first
/// place and its last value" (ints, bools, integral floats and strs).
#[derive(PartialEq, Eq, Hash)]
enum KeyRef {
    Int(i64),
    Str(String),
}

fn key_ref(v: &PyValue) -> Option<KeyRef> {
    match v {
        PyValue::Int(i) => Some(KeyRef::Int(*i)),
        PyValue::Bool(b) => Some(KeyRef::Int(i64::from(*b))),
        PyValue::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => Some(KeyRef::Int(*f as i64)),
        PyValue::Str(s) => Some(KeyRef::Str(s.clone())),
        _ => None,
    }
}

/// Turns the arena into [`PyValue`]s, recognising numpy's objects.
struct Convert<'n> {
    nodes: &'n [Node],
    mode: Mode,
    /// Values and bytes still allowed to be produced: a few times the
    /// input's length, so that shared references cannot multiply memory.
    budget: usize,
    visiting: Vec<bool>,
}

impl<'n> Convert<'n> {
    fn new(nodes: &'n [Node], mode: Mode, input_len: usize) -> Self {
        Convert {
            nodes,
            mode,
            budget: input_len.saturating_mul(8).saturating_add(1 << 16),
            visiting: vec![false; nodes.len()],
        }
    }

    fn charge(&mut self, n: usize) -> Res<()> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            "the pickle expands to far more values than its length allows \
             (one object referred to over and over)"
                .to_string()
        })?;
        Ok(())
    }

    fn value(&mut self, id: Id, depth: usize) -> Res<PyValue> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "the pickle nests values deeper than {MAX_DEPTH} levels"
            ));
        }
        if self.visiting[id] {
            return Err("the pickle holds a container that contains itself".into());
        }
        self.charge(1)?;
        self.visiting[id] = true;
        let out = self.value_inner(id, depth + 1);
        self.visiting[id] = false;
        out
    }

    fn values(&mut self, ids: &[Id], depth: usize) -> Res<Vec<PyValue>> {
        ids.iter().map(|&id| self.value(id, depth)).collect()
    }

    fn too_big(&self, what: &str) -> String {
        match self.mode {
            Mode::Mapping => {
                format!("label {what} does not fit in 64 bits; labels are small integers")
            }
            Mode::Any => format!("the int {what} does not fit in 64 bits"),
        }
    }

    fn value_inner(&mut self, id: Id, depth: usize) -> Res<PyValue> {
        let nodes = self.nodes;
        Ok(match &nodes[id] {
            Node::None => PyValue::None,
            Node::Bool(b) => PyValue::Bool(*b),
            Node::Int(v) => {
                PyValue::Int(i64::try_from(*v).map_err(|_| self.too_big(&v.to_string()))?)
            }
            Node::BigInt(n) => return Err(self.too_big(&format!("of {n} bytes"))),
            Node::Float(v) => PyValue::Float(*v),
            Node::Str(s) => {
                self.charge(s.len())?;
                PyValue::Str(s.clone())
            }
            Node::Str8(b) => {
                self.charge(b.len())?;
                if !b.is_ascii() {
                    return Err(
                        "a Python 2 str that is not ASCII (numpy reads it only with \
                         encoding='latin1' or 'bytes')"
                            .into(),
                    );
                }
                PyValue::Str(String::from_utf8(b.clone()).unwrap())
            }
            Node::Bytes(b) => {
                self.charge(b.len())?;
                PyValue::Bytes(b.clone())
            }
            Node::List(ids) => PyValue::List(self.values(ids, depth)?),
            Node::Tuple(ids) => PyValue::Tuple(self.values(ids, depth)?),
            Node::Set(ids) => PyValue::Set(self.values(ids, depth)?),
            Node::Dict(pairs) => self.dict(pairs, depth)?,
            Node::Global(m, n) => {
                return Err(match self.mode {
                    Mode::Mapping => NOT_PLAIN.into(),
                    Mode::Any => format!("the class or function {m}.{n} where a value belongs"),
                });
            }
            Node::Object(o) => self.object(o, depth)?,
        })
    }

    fn dict(&mut self, pairs: &[(Id, Id)], depth: usize) -> Res<PyValue> {
        let mut out: Vec<(PyValue, PyValue)> = Vec::with_capacity(pairs.len());
        let mut seen: HashMap<KeyRef, usize> = HashMap::new();
        for &(k, v) in pairs {
            let k = self.value(k, depth)?;
            let v = self.value(v, depth)?;
            match key_ref(&k) {
                Some(key) => match seen.get(&key) {
                    Some(&i) => out[i].1 = v,
                    None => {
                        seen.insert(key, out.len());
                        out.push((k, v));
                    }
                },
                None => out.push((k, v)),
            }
        }
        Ok(PyValue::Dict(out))
    }

    /// The (module, name) of an object's class or function.
    fn callable(&self, o: &Object) -> Option<(&'n str, &'n str)> {
        match &self.nodes[o.callable] {
            Node::Global(m, n) => Some((m, n)),
            _ => None,
        }
    }

    fn tuple(&self, id: Id) -> Option<&'n [Id]> {
        match &self.nodes[id] {
            Node::Tuple(items) => Some(items),
            _ => None,
        }
    }

    fn object(&mut self, o: &Object, depth: usize) -> Res<PyValue> {
        let Some((m, n)) = self.callable(o) else {
            return Err(format!(
                "the pickle calls a {}, not a class or function",
                node_kind(&self.nodes[o.callable])
            ));
        };
        let numpy = (is_multiarray(m) && matches!(n, "_reconstruct" | "scalar"))
            || (matches!(m, "numpy._core.numeric" | "numpy.core.numeric") && n == "_frombuffer");
        if numpy && self.mode == Mode::Mapping {
            return Err(NOT_PLAIN.into());
        }
        let args = self.tuple(o.args).unwrap_or(&[]);
        match (m, n) {
            _ if numpy && n == "_reconstruct" => self.reconstruct(o, depth),
            _ if numpy && n == "_frombuffer" => self.frombuffer(args, depth),
            _ if numpy => self.scalar(args, depth),
            ("_codecs", "encode") => Ok(PyValue::Bytes(self.bytes_of_call(m, n, args, depth)?)),
            (_, "bytes" | "bytearray") if is_builtins(m) => {
                Ok(PyValue::Bytes(self.bytes_of_call(m, n, args, depth)?))
            }
            (_, "set" | "frozenset") if is_builtins(m) => match args {
                [] => Ok(PyValue::Set(Vec::new())),
                [items] => match self.value(*items, depth)? {
                    PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) => Ok(PyValue::Set(v)),
                    other => Err(format!("{n}() of {}", describe(&other))),
                },
                _ => Err(format!("{n}() with {} arguments", args.len())),
            },
            ("collections", "OrderedDict" | "defaultdict") => self.dict(&o.pairs, depth),
            _ => Err(match self.mode {
                Mode::Mapping => NOT_PLAIN.into(),
                Mode::Any => {
                    // copyreg._reconstructor(cls, base, state): name the class.
                    let class = match (m, n, args.first().map(|&a| &self.nodes[a])) {
                        ("copyreg" | "copy_reg", "_reconstructor", Some(Node::Global(cm, cn))) => {
                            format!("{cm}.{cn}")
                        }
                        ("numpy", "dtype", _) => {
                            return Err("a numpy dtype object where a value belongs".into());
                        }
                        _ => format!("{m}.{n}"),
                    };
                    format!(
                        "holds a Python object built by {class}, which runner does not read \
                         (it runs no Python code)"
                    )
                }
            }),
        }
    }

    /// `_codecs.encode(str, 'latin1')` (bytes at protocols 0–2), `bytes()`, `bytearray(...)`.
    fn bytes_of_call(&mut self, m: &str, n: &str, args: &[Id], depth: usize) -> Res<Vec<u8>> {
        match args {
            [] if m != "_codecs" => Ok(Vec::new()),
            [b] if m != "_codecs" => self.bytes_of(*b, depth),
            [s, enc] => {
                let (Node::Str(s), Node::Str(enc)) = (&self.nodes[*s], &self.nodes[*enc]) else {
                    return Err(format!("{m}.{n}() of other than (str, encoding)"));
                };
                if !matches!(
                    enc.to_ascii_lowercase().as_str(),
                    "latin1" | "latin-1" | "iso-8859-1"
                ) {
                    return Err(format!("{m}.{n}() with encoding {enc:?}, not latin1"));
                }
                self.charge(s.len())?;
                latin1(s)
            }
            _ => Err(format!("{m}.{n}() with {} arguments", args.len())),
        }
    }

    /// An array's or scalar's raw bytes, in any of the ways pickles carry them.
    fn bytes_of(&mut self, id: Id, depth: usize) -> Res<Vec<u8>> {
        match &self.nodes[id] {
            Node::Bytes(b) | Node::Str8(b) => {
                self.charge(b.len())?;
                Ok(b.clone())
            }
            // numpy accepts a str for data pickled by Python 2 and read as latin1.
            Node::Str(s) => {
                self.charge(s.len())?;
                latin1(s)
            }
            Node::Object(_) => match self.value(id, depth)? {
                PyValue::Bytes(b) => Ok(b),
                other => Err(format!(
                    "array data that is {}, not bytes",
                    describe(&other)
                )),
            },
            other => Err(format!(
                "array data that is a {}, not bytes",
                node_kind(other)
            )),
        }
    }

    /// An array's shape; one whose nonzero dimensions multiply past `usize`
    /// is refused, as numpy refuses it, so that no product of dimensions overflows.
    fn shape(&self, id: Id) -> Res<Vec<usize>> {
        let bad = || "a numpy array whose shape is not a tuple of sizes".to_string();
        let dims = self.tuple(id).ok_or_else(bad)?;
        let shape = dims
            .iter()
            .map(|&d| match &self.nodes[d] {
                Node::Int(v) => usize::try_from(*v).map_err(|_| bad()),
                _ => Err(bad()),
            })
            .collect::<Res<Vec<usize>>>()?;
        if shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_none()
        {
            return Err(format!(
                "a numpy array of shape {} is too large to address",
                py_shape(&shape)
            ));
        }
        Ok(shape)
    }

    /// numpy's `dtype.str` of a pickled `numpy.dtype(...)` with its BUILD state.
    fn descr(&mut self, id: Id) -> Res<String> {
        self.charge(8)?;
        let bad = |why: &str| format!("a numpy dtype that runner cannot read ({why})");
        let Node::Object(o) = &self.nodes[id] else {
            return Err(bad(&format!(
                "a {}, not numpy.dtype(...)",
                node_kind(&self.nodes[id])
            )));
        };
        if self.callable(o) != Some(("numpy", "dtype")) {
            return Err(bad("not numpy.dtype(...)"));
        }
        let name = match self
            .tuple(o.args)
            .and_then(|a| a.first())
            .map(|&a| &self.nodes[a])
        {
            Some(Node::Str(s)) => s.as_str(),
            _ => return Err(bad("its name is not a str")),
        };
        let state = o.state.and_then(|s| self.tuple(s)).unwrap_or(&[]);
        if state.len() < 8 {
            return Err(bad("no byte order (BUILD state)"));
        }
        let order = match &self.nodes[state[1]] {
            Node::Str(s) if s == "=" => {
                if cfg!(target_endian = "big") {
                    ">"
                } else {
                    "<"
                }
            }
            Node::Str(s) if matches!(s.as_str(), "<" | ">" | "|") => s.as_str(),
            _ => return Err(bad("its byte order is not '<', '>', '|' or '='")),
        };
        if !state[2..5]
            .iter()
            .all(|&s| matches!(self.nodes[s], Node::None))
        {
            return Err(format!(
                "a structured or subarray numpy dtype ({name}), which runner does not read"
            ));
        }
        let kind = name.chars().next().unwrap_or(' ');
        let descr = match kind {
            'O' => "|O".to_string(),
            'b' | 'i' | 'u' | 'f' | 'c' | 'U' | 'S' | 'V' => format!("{order}{name}"),
            _ => {
                return Err(format!(
                    "a numpy dtype {name} (datetime or other), which runner does not read"
                ));
            }
        };
        descr
            .parse::<TypeStr>()
            .map_err(|_| bad(&format!("{descr:?}")))?;
        Ok(descr)
    }

    /// `_reconstruct(ndarray, (0,), b'b')` with BUILD `(1, shape, dtype, fortran, data)`.
    fn reconstruct(&mut self, o: &Object, depth: usize) -> Res<PyValue> {
        let args = self.tuple(o.args).unwrap_or(&[]);
        match args.first().map(|&a| &self.nodes[a]) {
            Some(Node::Global(m, n)) if m == "numpy" && n == "ndarray" => {}
            Some(Node::Global(m, n)) => {
                return Err(format!(
                    "holds a numpy array of class {m}.{n}, which runner does not read"
                ));
            }
            _ => return Err("numpy's _reconstruct of something other than a class".into()),
        }
        let state = o.state.and_then(|s| self.tuple(s)).unwrap_or(&[]);
        let (shape, dtype, fortran, data) = match state {
            [_, s, d, f, x] | [s, d, f, x] => (*s, *d, *f, *x),
            _ => return Err("a numpy array pickled without its state (shape, dtype, data)".into()),
        };
        let shape = self.shape(shape)?;
        let descr = self.descr(dtype)?;
        let fortran_order = match self.nodes[fortran] {
            Node::Bool(b) => b,
            Node::Int(v @ (0 | 1)) => v == 1,
            _ => return Err("a numpy array whose Fortran flag is not a bool".into()),
        };
        if descr == "|O" {
            // Object items are pickled in C order whatever the flag says.
            let items = match &self.nodes[data] {
                Node::List(items) => items,
                other => {
                    return Err(format!(
                        "an object array whose items are a {}, not a list",
                        node_kind(other)
                    ));
                }
            };
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if n != Some(items.len()) {
                return Err(format!(
                    "an object array of shape {} with {} items",
                    py_shape(&shape),
                    items.len()
                ));
            }
            let items = self.values(items, depth)?;
            return self.nest(items, &shape);
        }
        let data = self.bytes_of(data, depth)?;
        self.array(descr, shape, fortran_order, data)
    }

    /// Protocol 5's `_frombuffer(buffer, dtype, shape, order)`.
    fn frombuffer(&mut self, args: &[Id], depth: usize) -> Res<PyValue> {
        let [buf, dtype, shape, order] = args else {
            return Err(format!("numpy's _frombuffer with {} arguments", args.len()));
        };
        let fortran_order = match &self.nodes[*order] {
            Node::Str(s) if s == "C" => false,
            Node::Str(s) if s == "F" => true,
            _ => return Err("numpy's _frombuffer with an order other than 'C' or 'F'".into()),
        };
        let shape = self.shape(*shape)?;
        let descr = self.descr(*dtype)?;
        let data = self.bytes_of(*buf, depth)?;
        self.array(descr, shape, fortran_order, data)
    }

    fn array(
        &mut self,
        descr: String,
        shape: Vec<usize>,
        fortran_order: bool,
        data: Vec<u8>,
    ) -> Res<PyValue> {
        let a = NdArray {
            descr,
            shape,
            fortran_order,
            data,
        };
        a.dtype()?; // the data's length against the shape
        Ok(PyValue::Array(a))
    }

    /// Object-array items (C order) as nested lists following `shape`.
    fn nest(&mut self, items: Vec<PyValue>, shape: &[usize]) -> Res<PyValue> {
        let Some((&d0, rest)) = shape.split_first() else {
            return Ok(items.into_iter().next().unwrap_or(PyValue::None));
        };
        if rest.is_empty() || d0 == 0 {
            return Ok(PyValue::List(items));
        }
        let inner: usize = rest.iter().product();
        let mut it = items.into_iter();
        let mut out = Vec::new();
        for _ in 0..d0 {
            self.charge(1)?;
            out.push(self.nest(it.by_ref().take(inner).collect(), rest)?);
        }
        Ok(PyValue::List(out))
    }

    /// `multiarray.scalar(dtype, bytes)`: np.int64(3), np.float32(0.5), np.str_('x'), ...
    fn scalar(&mut self, args: &[Id], depth: usize) -> Res<PyValue> {
        let [dtype, data] = args else {
            return Err(format!("a numpy scalar with {} arguments", args.len()));
        };
        let descr = self.descr(*dtype)?;
        let data = self.bytes_of(*data, depth)?;
        let ty: TypeStr = descr.parse().map_err(|_| format!("dtype {descr:?}"))?;
        if ty.num_bytes() != Some(data.len()) {
            return Err(format!("a numpy {descr} scalar of {} bytes", data.len()));
        }
        let big = ty.endianness() == Endianness::Big;
        if let Some(decode) = num_decoder(&ty) {
            return match decode(&data, big) {
                Num::Bool(b) => Ok(PyValue::Bool(b)),
                Num::Int(v) => Ok(PyValue::Int(v)),
                Num::Uint(v) => i64::try_from(v)
                    .map(PyValue::Int)
                    .map_err(|_| self.too_big(&v.to_string())),
                Num::Float(v) => Ok(PyValue::Float(v)),
            };
        }
        match ty.type_char() {
            TypeChar::UnicodeStr => {
                let mut s: String = data
                    .chunks_exact(4)
                    .map(|c| {
                        let a: [u8; 4] = c.try_into().unwrap();
                        let cp = if big {
                            u32::from_be_bytes(a)
                        } else {
                            u32::from_le_bytes(a)
                        };
                        char::from_u32(cp).ok_or_else(|| format!("a numpy str holding U+{cp:X}"))
                    })
                    .collect::<Res<_>>()?;
                s.truncate(s.trim_end_matches('\0').len());
                Ok(PyValue::Str(s))
            }
            TypeChar::ByteStr => {
                let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                Ok(PyValue::Bytes(data[..end].to_vec()))
            }
            _ => Err(format!(
                "a numpy scalar of dtype {descr}, which runner does not read"
            )),
        }
    }

    /// The id of the one item of a pickled object ndarray (what `np.save` of
    /// a dict writes), or None when `root` is not such an array.
    fn object_array_item(&mut self, root: Id) -> Option<Id> {
        let Node::Object(o) = &self.nodes[root] else {
            return None;
        };
        let (m, n) = self.callable(o)?;
        if !is_multiarray(m) || n != "_reconstruct" {
            return None;
        }
        match self.tuple(o.args)?.first().map(|&a| &self.nodes[a]) {
            Some(Node::Global(m, n)) if m == "numpy" && n == "ndarray" => {}
            _ => return None,
        }
        let state = self.tuple(o.state?)?;
        let (dtype, data) = match state {
            [_, _, d, _, x] | [_, d, _, x] => (*d, *x),
            _ => return None,
        };
        if self.descr(dtype).ok()? != "|O" {
            return None;
        }
        match &self.nodes[data] {
            Node::List(items) if items.len() == 1 => Some(items[0]),
            _ => None,
        }
    }

    /// "a list of 2 items", "a numpy.ma.core._mareconstruct object", ...
    fn describe_node(&self, id: Id) -> String {
        match &self.nodes[id] {
            Node::List(x) => format!("a list of {} items", x.len()),
            Node::Tuple(x) => format!("a tuple of {} items", x.len()),
            Node::Global(m, n) => format!("the class or function {m}.{n}"),
            Node::Object(o) => match self.callable(o) {
                Some((m, n)) => format!("a {m}.{n}(...) object"),
                None => "an object".into(),
            },
            Node::Int(_) | Node::BigInt(_) => "an int".into(),
            Node::None => "None".into(),
            other => format!("a {}", node_kind(other)),
        }
    }
}

/// A str whose characters are all below 256, as the bytes they stand for.
fn latin1(s: &str) -> Res<Vec<u8>> {
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| "latin-1 bytes holding a character above U+00FF".to_string())
        })
        .collect()
}

// ==================================================================== writer

/// Writes `map` as `np.save(path, dict(sorted(map.items())))` does (numpy 2.x).
pub fn write_mapping(path: &Path, map: &Mapping) -> io::Result<()> {
    std::fs::write(path, mapping_npy_bytes(map))
}

/// The bytes of [`write_mapping`].
pub fn mapping_npy_bytes(map: &Mapping) -> Vec<u8> {
    let dict = map
        .iter()
        .map(|(&k, v)| (PyValue::Int(k), PyValue::Str(v.clone())))
        .collect();
    object_npy_bytes(&PyValue::Dict(dict))
}

/// Writes `v` as `np.save(path, v)` does (numpy 2.x); see [`object_npy_bytes`].
pub fn write_object(path: &Path, v: &PyValue) -> io::Result<()> {
    std::fs::write(path, object_npy_bytes(v))
}

/// numpy's `.npy` v1.0 header for a 0-d object array, then the protocol-4
/// pickle CPython writes for it, holding `v`: what `np.save(path, v)` writes
/// for a dict of arrays, tuples, dicts and plain values, byte for byte under
/// the identity assumptions in the module doc.
///
/// # Panics
/// On an [`NdArray`] whose descr numpy could not have pickled as written
/// (not bool, int, uint, float, complex, `U` or `S`), or whose data does not
/// match its shape: such an array is a bug in the caller, not input.
pub fn object_npy_bytes(v: &PyValue) -> Vec<u8> {
    let mut out = npy_object_header();
    out.extend(Pickler::dump(v));
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

/// Python's pickler writes list, dict and set items in batches of this many.
const BATCHSIZE: usize = 1000;
/// Protocol 4's frame size target (pickle.py `_FRAME_SIZE_TARGET`).
const FRAME_TARGET: usize = 64 * 1024;
/// Smaller frames lose their FRAME opcode (`_FRAME_SIZE_MIN`).
const FRAME_MIN: usize = 4;
/// numpy 2.x's module of `_reconstruct` and `scalar`.
const MULTIARRAY: &str = "numpy._core.multiarray";

/// CPython's protocol-4 pickler (Modules/_pickle.c), for the objects np.save
/// meets: same opcodes, same memo, same frames.
struct Pickler {
    out: Vec<u8>,
    /// The current frame, written out with its FRAME header on commit.
    frame: Vec<u8>,
    memo_len: u32,
    globals: HashMap<(&'static str, &'static str), u32>,
    /// Module names: one str object per module, shared by its globals.
    modules: HashMap<&'static str, u32>,
    /// CPython's singleton strs (empty, one latin-1 character) and bytes
    /// (empty, one byte), memoized by value.
    small_strs: HashMap<String, u32>,
    small_bytes: HashMap<Vec<u8>, u32>,
    /// numpy's singleton (native byte order) dtypes, by descr.
    dtypes: HashMap<String, u32>,
}

impl Pickler {
    /// `pickle.dumps(np.array(v, dtype=object), protocol=4)`.
    fn dump(v: &PyValue) -> Vec<u8> {
        let mut p = Pickler {
            out: vec![PROTO, 4],
            frame: Vec::new(),
            memo_len: 0,
            globals: HashMap::new(),
            modules: HashMap::new(),
            small_strs: HashMap::new(),
            small_bytes: HashMap::new(),
            dtypes: HashMap::new(),
        };
        p.save_array(
            &[],
            "|O",
            false,
            ArrayData::Objects(std::slice::from_ref(v)),
        );
        p.w(&[STOP]);
        p.commit();
        p.out
    }

    fn w(&mut self, bytes: &[u8]) {
        self.frame.extend_from_slice(bytes);
    }

    /// Ends the current frame (pickle.py `commit_frame(force=True)`).
    fn commit(&mut self) {
        if self.frame.len() >= FRAME_MIN {
            self.out.push(FRAME);
            self.out.extend((self.frame.len() as u64).to_le_bytes());
        }
        self.out.append(&mut self.frame);
    }

    /// Where every `save()` starts: a frame that reached the target is committed.
    fn boundary(&mut self) {
        if self.frame.len() >= FRAME_TARGET {
            self.commit();
        }
    }

    /// A str or bytes payload: one of 64 KiB or more goes outside any frame.
    fn large(&mut self, header: &[u8], payload: &[u8]) {
        if payload.len() >= FRAME_TARGET {
            self.commit();
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(payload);
        } else {
            self.w(header);
            self.w(payload);
        }
    }

    fn memoize(&mut self) -> u32 {
        self.w(&[MEMOIZE]);
        self.memo_len += 1;
        self.memo_len - 1
    }

    fn get(&mut self, i: u32) {
        match u8::try_from(i) {
            Ok(i) => self.w(&[BINGET, i]),
            Err(_) => {
                self.w(&[LONG_BINGET]);
                self.w(&i.to_le_bytes());
            }
        }
    }

    fn save(&mut self, v: &PyValue) {
        self.boundary();
        match v {
            PyValue::None => self.w(&[NONE]),
            PyValue::Bool(true) => self.w(&[NEWTRUE]),
            PyValue::Bool(false) => self.w(&[NEWFALSE]),
            PyValue::Int(i) => {
                let mut b = Vec::new();
                int(&mut b, *i);
                self.w(&b);
            }
            PyValue::Float(x) => {
                self.w(&[BINFLOAT]);
                self.w(&x.to_be_bytes());
            }
            PyValue::Str(s) => self.save_str(s),
            PyValue::Bytes(b) => self.save_bytes(b),
            PyValue::Tuple(items) => self.save_tuple(items),
            PyValue::List(items) => self.save_list(items),
            PyValue::Dict(pairs) => {
                self.w(&[EMPTY_DICT]);
                self.memoize();
                if let [(k, v)] = &pairs[..] {
                    self.save(k);
                    self.save(v);
                    self.w(&[SETITEM]);
                } else if !pairs.is_empty() {
                    // _pickle.c's batch_dict_exact: a full last batch is
                    // followed by an empty one.
                    for batch in pairs.chunks(BATCHSIZE) {
                        self.w(&[MARK]);
                        for (k, v) in batch {
                            self.save(k);
                            self.save(v);
                        }
                        self.w(&[SETITEMS]);
                    }
                    if pairs.len() % BATCHSIZE == 0 {
                        self.w(&[MARK, SETITEMS]);
                    }
                }
            }
            PyValue::Set(items) => {
                self.w(&[EMPTY_SET]);
                self.memoize();
                if !items.is_empty() {
                    for batch in items.chunks(BATCHSIZE) {
                        self.w(&[MARK]);
                        batch.iter().for_each(|x| self.save(x));
                        self.w(&[ADDITEMS]);
                    }
                    if items.len() % BATCHSIZE == 0 {
                        self.w(&[MARK, ADDITEMS]);
                    }
                }
            }
            PyValue::Array(a) => {
                if let Err(e) = a.dtype() {
                    panic!("object_npy_bytes: {e}");
                }
                self.save_array(
                    &a.shape,
                    &a.descr,
                    a.fortran_order,
                    ArrayData::Bytes(&a.data),
                );
            }
        }
    }

    /// The body of `save(str)` after its boundary.
    fn save_str(&mut self, s: &str) {
        let mut chars = s.chars();
        let small = match (chars.next(), chars.next()) {
            (None, _) => true,
            (Some(c), None) => u32::from(c) < 256,
            _ => false,
        };
        if small && let Some(&i) = self.small_strs.get(s) {
            return self.get(i);
        }
        let b = s.as_bytes();
        if b.len() < 256 {
            self.w(&[SHORT_BINUNICODE, b.len() as u8]);
            self.w(b);
        } else if let Ok(n) = u32::try_from(b.len()) {
            self.large(&[&[BINUNICODE][..], &n.to_le_bytes()].concat(), b);
        } else {
            self.large(
                &[&[BINUNICODE8][..], &(b.len() as u64).to_le_bytes()].concat(),
                b,
            );
        }
        let i = self.memoize();
        if small {
            self.small_strs.insert(s.to_string(), i);
        }
    }

    /// The body of `save(bytes)` after its boundary.
    fn save_bytes(&mut self, b: &[u8]) {
        let small = b.len() <= 1;
        if small && let Some(&i) = self.small_bytes.get(b) {
            return self.get(i);
        }
        if b.len() < 256 {
            self.w(&[SHORT_BINBYTES, b.len() as u8]);
            self.w(b);
        } else if let Ok(n) = u32::try_from(b.len()) {
            self.large(&[&[BINBYTES][..], &n.to_le_bytes()].concat(), b);
        } else {
            self.large(
                &[&[BINBYTES8][..], &(b.len() as u64).to_le_bytes()].concat(),
                b,
            );
        }
        let i = self.memoize();
        if small {
            self.small_bytes.insert(b.to_vec(), i);
        }
    }

    fn save_tuple(&mut self, items: &[PyValue]) {
        match items.len() {
            0 => self.w(&[EMPTY_TUPLE]), // the empty tuple is never memoized
            n @ 1..=3 => {
                items.iter().for_each(|x| self.save(x));
                self.w(&[TUPLE1 + (n as u8 - 1)]);
                self.memoize();
            }
            _ => {
                self.w(&[MARK]);
                items.iter().for_each(|x| self.save(x));
                self.w(&[TUPLE]);
                self.memoize();
            }
        }
    }

    fn save_list(&mut self, items: &[PyValue]) {
        self.w(&[EMPTY_LIST]);
        self.memoize();
        if let [x] = items {
            self.save(x);
            self.w(&[APPEND]);
        } else if !items.is_empty() {
            // batch_list_exact: no empty batch after a full one.
            for batch in items.chunks(BATCHSIZE) {
                self.w(&[MARK]);
                batch.iter().for_each(|x| self.save(x));
                self.w(&[APPENDS]);
            }
        }
    }

    /// `save(module.name)`: STACK_GLOBAL of two strs, memoized as one object.
    fn save_global(&mut self, module: &'static str, name: &'static str) {
        self.boundary();
        if let Some(&i) = self.globals.get(&(module, name)) {
            return self.get(i);
        }
        self.boundary();
        match self.modules.get(module) {
            Some(&i) => self.get(i),
            None => {
                self.save_str(module);
                let i = self.memo_len - 1;
                self.modules.insert(module, i);
            }
        }
        self.boundary();
        self.save_str(name);
        self.w(&[STACK_GLOBAL]);
        let i = self.memoize();
        self.globals.insert((module, name), i);
    }

    /// `save(dtype)`: `numpy.dtype` REDUCE'd with `(name, False, True)`, then
    /// BUILD with `(3, byteorder, None, None, None, elsize, alignment, flags)`.
    fn save_dtype(&mut self, descr: &str) {
        self.boundary();
        let ty: TypeStr = descr
            .parse()
            .unwrap_or_else(|_| panic!("object_npy_bytes: {descr:?} is not a numpy dtype"));
        let size = ty.size_field() as i64;
        let native = if cfg!(target_endian = "big") {
            '>'
        } else {
            '<'
        };
        let order = match ty.endianness() {
            Endianness::Little => '<',
            Endianness::Big => '>',
            Endianness::Irrelevant => '|',
        };
        // name, byte order, elsize, alignment, flags; whether numpy has one object of it.
        let (name, order, elsize, align, flags, singleton) = match ty.type_char() {
            TypeChar::Object => ("O8".to_string(), '|', -1, -1, 63, true),
            c @ (TypeChar::Bool
            | TypeChar::Int
            | TypeChar::Uint
            | TypeChar::Float
            | TypeChar::Complex) => {
                let order = if size == 1 { '|' } else { order };
                (
                    format!("{c}{size}"),
                    order,
                    -1,
                    -1,
                    0,
                    order == '|' || order == native,
                )
            }
            TypeChar::UnicodeStr => (format!("U{size}"), order, 4 * size, 4, 8, false),
            TypeChar::ByteStr => (format!("S{size}"), '|', size, 1, 0, false),
            _ => panic!("object_npy_bytes: cannot pickle a numpy array of dtype {descr}"),
        };
        let key = format!("{order}{name}");
        if singleton && let Some(&i) = self.dtypes.get(&key) {
            return self.get(i);
        }
        self.save_global("numpy", "dtype");
        self.save(&PyValue::Tuple(vec![
            PyValue::Str(name),
            PyValue::Bool(false),
            PyValue::Bool(true),
        ]));
        self.w(&[REDUCE]);
        let i = self.memoize();
        if singleton {
            self.dtypes.insert(key, i);
        }
        self.save(&PyValue::Tuple(vec![
            PyValue::Int(3),
            PyValue::Str(order.to_string()),
            PyValue::None,
            PyValue::None,
            PyValue::None,
            PyValue::Int(elsize),
            PyValue::Int(align),
            PyValue::Int(flags),
        ]));
        self.w(&[BUILD]);
    }

    /// `save(ndarray)`: `_reconstruct(ndarray, (0,), b'b')`, then BUILD with
    /// `(1, shape, dtype, is_fortran, data)`.
    fn save_array(&mut self, shape: &[usize], descr: &str, fortran: bool, data: ArrayData) {
        self.boundary();
        self.save_global(MULTIARRAY, "_reconstruct");
        self.boundary();
        self.save_global("numpy", "ndarray");
        self.save(&PyValue::Tuple(vec![PyValue::Int(0)]));
        self.boundary();
        self.save_bytes(b"b");
        self.w(&[TUPLE3]);
        self.memoize();
        self.w(&[REDUCE]);
        self.memoize();
        self.boundary();
        self.w(&[MARK]);
        self.save(&PyValue::Int(1));
        let dims = shape.iter().map(|&d| PyValue::Int(d as i64)).collect();
        self.save(&PyValue::Tuple(dims));
        self.save_dtype(descr);
        self.save(&PyValue::Bool(fortran));
        self.boundary();
        match data {
            ArrayData::Bytes(b) => self.save_bytes(b),
            ArrayData::Objects(items) => self.save_list(items),
        }
        self.w(&[TUPLE]);
        self.memoize();
        self.w(&[BUILD]);
    }
}

/// What BUILD gives an array: raw bytes, or the items of an object array.
enum ArrayData<'a> {
    Bytes(&'a [u8]),
    Objects(&'a [PyValue]),
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

/// Lab08-like ROI files (tests/fixtures/make_roi_info_fixtures.py), the
/// object writer against np.save, and the machine on hostile input.
#[cfg(test)]
mod object_tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roi_info")
    }

    fn read(name: &str) -> PyValue {
        read_object(&dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn err(name: &str) -> String {
        let e = read_object(&dir().join(name)).expect_err(name).to_string();
        assert!(e.contains(name), "`{e}` does not name the file");
        e
    }

    fn array<'a>(v: &'a PyValue, key: &str) -> &'a NdArray {
        match v.get(key) {
            Some(PyValue::Array(a)) => a,
            other => panic!("{key}: {other:?}"),
        }
    }

    fn same_f64(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(g.to_bits() == w.to_bits(), "element {i}: {g} != {w}");
        }
    }

    fn strs(items: &[(&str, i64)], f: impl Fn(i64) -> PyValue) -> PyValue {
        PyValue::Dict(
            items
                .iter()
                .map(|&(k, v)| (PyValue::Str(k.into()), f(v)))
                .collect(),
        )
    }

    const RET: &[(&str, i64)] = &[
        ("Unknown", 0),
        ("V1v", 1),
        ("V1d", 2),
        ("V2v", 3),
        ("V2d", 4),
        ("V3v", 5),
        ("V3d", 6),
        ("hV4", 7),
    ];
    const FACE: &[(&str, i64)] = &[("Unknown", 0), ("OFA", 1), ("FFA-1", 2), ("FFA-2", 3)];
    const PLACE: &[(&str, i64)] = &[("Unknown", 0), ("OPA", 1), ("PPA", 2)];
    const BODY: &[(&str, i64)] = &[("Unknown", 0), ("EBA", 1), ("FBA-1", 2)];

    /// The script's `lab08(shape)` formulas.
    struct Lab08 {
        mask: Vec<bool>,
        nc: Vec<f64>,
        retino: Vec<i64>,
        face: Vec<i64>,
        place: Vec<i64>,
        body: Vec<i64>,
    }

    fn lab08(n: usize) -> Lab08 {
        let i = || 0..n as i64;
        let mask: Vec<bool> = i().map(|i| (i * 7) % 10 < 6).collect();
        let m = mask.iter().filter(|&&b| b).count() as i64;
        let mut nc: Vec<f64> = (0..m).map(|k| ((k * 37) % 1000) as f64 / 8.0).collect();
        nc[1] = f64::NAN;
        Lab08 {
            mask,
            nc,
            retino: i().map(|i| (i * 5) % 9 - 1).collect(),
            face: i().map(|i| (i * 3) % 4).collect(),
            place: i().map(|i| (i * 11) % 3).collect(),
            body: i().map(|i| (i * 13) % 5).collect(),
        }
    }

    fn nd(descr: &str, n: usize, data: Vec<u8>) -> PyValue {
        PyValue::Array(NdArray {
            descr: descr.into(),
            shape: vec![n],
            fortran_order: false,
            data,
        })
    }

    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }

    /// The script's `lab08(shape, plain_ints=True)` as a value, for the writer.
    fn lab08_value(shape: [usize; 3]) -> PyValue {
        let n = shape.iter().product();
        let l = lab08(n);
        let f8 = |v: &[i64]| nd("<f8", n, le(v, |x| (x as f64).to_le_bytes()));
        let int = |v| PyValue::Int(v);
        let s = |k: &str| PyValue::Str(k.into());
        PyValue::Dict(vec![
            (
                s("voxel_mask"),
                nd("|b1", n, l.mask.iter().map(|&b| u8::from(b)).collect()),
            ),
            (
                s("brain_nii_shape"),
                PyValue::Tuple(shape.iter().map(|&d| int(d as i64)).collect()),
            ),
            (
                s("noise_ceiling_avgreps"),
                nd("<f8", l.nc.len(), le(&l.nc, f64::to_le_bytes)),
            ),
            (s("ret_prf_roi_names"), strs(RET, int)),
            (s("floc_face_roi_names"), strs(FACE, int)),
            (s("floc_place_roi_names"), strs(PLACE, int)),
            (s("floc_body_roi_names"), strs(BODY, int)),
            (
                s("roi_labels_retino"),
                nd("<i4", n, le(&l.retino, |x| (x as i32).to_le_bytes())),
            ),
            (s("roi_labels_face"), f8(&l.face)),
            (
                s("roi_labels_place"),
                nd("<i8", n, le(&l.place, i64::to_le_bytes)),
            ),
            (s("roi_labels_body"), f8(&l.body)),
        ])
    }

    /// Every lab08 fixture: dtypes, shapes and values, and numpy scalars in the name dicts.
    fn check_lab08(v: &PyValue, f32: bool) {
        let n = 6 * 7 * 5;
        let want = lab08(n);
        let keys: Vec<_> = match v {
            PyValue::Dict(items) => items.iter().map(|(k, _)| k.clone()).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(keys.len(), 11);
        assert_eq!(keys[0], PyValue::Str("voxel_mask".into()));
        let mask = array(v, "voxel_mask");
        assert_eq!(
            (mask.descr.as_str(), mask.shape.as_slice()),
            ("|b1", &[n][..])
        );
        assert_eq!(mask.to_bool().unwrap(), want.mask);
        let nc = array(v, "noise_ceiling_avgreps");
        assert_eq!(nc.descr, if f32 { "<f4" } else { "<f8" });
        assert_eq!(nc.shape, [want.nc.len()]);
        same_f64(&nc.to_f64().unwrap(), &want.nc);
        let labels: [(&str, &str, &str, &Vec<i64>); 4] = [
            ("roi_labels_retino", "<i4", "<i2", &want.retino),
            ("roi_labels_face", "<f8", "|u1", &want.face),
            ("roi_labels_place", "<i8", "<f4", &want.place),
            ("roi_labels_body", "<f8", "<i8", &want.body),
        ];
        for (key, d64, d32, values) in labels {
            let a = array(v, key);
            assert_eq!(a.descr, if f32 { d32 } else { d64 }, "{key}");
            assert_eq!(a.shape, [n], "{key}");
            assert!(!a.fortran_order);
            assert_eq!(&a.to_i64().unwrap(), values, "{key}");
        }
        match v.get("brain_nii_shape").unwrap() {
            PyValue::Array(a) if f32 => {
                assert_eq!(
                    (a.descr.as_str(), a.to_i64().unwrap()),
                    ("<i8", vec![6, 7, 5])
                );
            }
            other => assert_eq!(
                other,
                &PyValue::Tuple(vec![PyValue::Int(6), PyValue::Int(7), PyValue::Int(5)])
            ),
        }
        // Python ints, np.int64, np.float64 and np.int32 values.
        assert_eq!(
            v.get("ret_prf_roi_names").unwrap(),
            &strs(RET, PyValue::Int)
        );
        assert_eq!(
            v.get("floc_face_roi_names").unwrap(),
            &strs(FACE, PyValue::Int)
        );
        let float = |x: i64| PyValue::Float(x as f64);
        assert_eq!(v.get("floc_place_roi_names").unwrap(), &strs(PLACE, float));
        assert_eq!(
            v.get("floc_body_roi_names").unwrap(),
            &strs(BODY, PyValue::Int)
        );
    }

    #[test]
    fn lab08_files_read_with_their_dtypes() {
        check_lab08(&read("lab08.npy"), false);
        check_lab08(&read("lab08_f32.npy"), true);
        // Plain pickles: protocol 2 (GLOBAL, BINPUT, _codecs.encode bytes)
        // and 5 (_frombuffer of BYTEARRAY8).
        check_lab08(&read("lab08_p2.pkl"), false);
        check_lab08(&read("lab08_p5.pkl"), false);
    }

    #[test]
    fn protocols_0_and_1_read_alike() {
        for name in ["small_p0.pkl", "small_p1.pkl"] {
            let v = read(name);
            let a = array(&v, "a");
            assert_eq!(a.descr, "<f8");
            assert_eq!(a.to_f64().unwrap(), [0.0, 0.25, 0.5, 0.75], "{name}");
            assert_eq!(v.get("n"), Some(&PyValue::Int(-3)));
            assert_eq!(v.get("big"), Some(&PyValue::Int(1 << 40)));
            assert_eq!(
                v.get("s"),
                Some(&PyValue::Str("h\u{e9}\u{9854}\\\n".into()))
            );
            let t = PyValue::Tuple(vec![
                PyValue::Float(1.5),
                PyValue::None,
                PyValue::Bool(true),
            ]);
            assert_eq!(v.get("t"), Some(&t), "{name}");
            assert_eq!(v.get("b"), Some(&PyValue::Bytes(vec![0, 255])), "{name}");
        }
    }

    #[test]
    fn fortran_order_arrays_come_back_in_c_order() {
        for name in ["fortran.npy", "fortran_p5.pkl"] {
            let v = read(name);
            let f8 = array(&v, "f8");
            assert!(f8.fortran_order, "{name}");
            assert_eq!(f8.shape, [3, 4]);
            let want: Vec<f64> = (0..12).map(|i| i as f64 / 2.0).collect();
            assert_eq!(f8.to_f64().unwrap(), want, "{name}");
            let i4 = array(&v, "i4");
            assert!(i4.fortran_order && i4.descr == "<i4" && i4.shape == [2, 3, 4]);
            assert_eq!(i4.to_i64().unwrap(), (0..24).collect::<Vec<_>>(), "{name}");
            let c = array(&v, "c");
            assert!(!c.fortran_order);
            assert_eq!(c.to_i64().unwrap(), (0..6).collect::<Vec<_>>(), "{name}");
        }
    }

    #[test]
    fn big_endian_arrays_read() {
        let v = read("bigendian.npy");
        let f8 = array(&v, "f8");
        assert_eq!(f8.descr, ">f8");
        assert_eq!(f8.to_f64().unwrap(), [1.5, -2.0, 1e300]);
        assert_eq!(array(&v, "i4").to_i64().unwrap(), [-1, 2, 70000]);
        let u2 = array(&v, "u2");
        assert_eq!(
            (u2.descr.as_str(), u2.to_i64().unwrap()),
            (">u2", vec![1, 65535])
        );
    }

    #[test]
    fn python_and_numpy_values() {
        use PyValue::*;
        let v = read("values.npy");
        let get = |k: &str| v.get(k).unwrap_or_else(|| panic!("{k}")).clone();
        assert_eq!(get("none"), None);
        assert_eq!((get("true"), get("false")), (Bool(true), Bool(false)));
        assert_eq!(get("float"), Float(-0.25));
        assert_eq!(get("int"), Int(-7));
        assert_eq!(get("int40"), Int(1 << 40));
        assert_eq!(get("int_min"), Int(i64::MIN));
        assert_eq!(get("bytes"), Bytes(b"ab\0".to_vec()));
        assert_eq!(get("list"), List(vec![Int(1), List(vec![Int(2), Int(3)])]));
        assert_eq!(
            get("tuple"),
            Tuple(vec![Int(1), Tuple(vec![Int(2)]), Tuple(vec![])])
        );
        assert_eq!(get("set"), Set(vec![Int(3)]));
        assert_eq!(get("frozenset"), Set(vec![]));
        assert_eq!(get("str"), Str("V1v".into()));
        // numpy scalars become plain values.
        assert_eq!(get("np_bool"), Bool(true));
        assert_eq!(get("np_int8"), Int(-5));
        assert_eq!(get("np_uint64"), Int(i64::MAX));
        assert_eq!(get("np_float32"), Float(0.5));
        assert_eq!(get("np_float16"), Float(1.5));
        assert_eq!(get("np_str"), Str("FFA-1".into()));
        assert_eq!(get("np_bytes"), Bytes(b"ab".to_vec()));
        // A nested object array is what .tolist() gives.
        assert_eq!(
            get("objects"),
            List(vec![
                List(vec![Int(1), Str("x".into())]),
                List(vec![None, List(vec![Float(2.5)])])
            ])
        );
        let z = array(&v, "zero_d");
        assert_eq!((z.shape.len(), z.to_f64().unwrap()), (0, vec![2.5]));
        assert_eq!(get("zero_d").type_name(), "ndarray <f8 ()");
        let e = array(&v, "empty");
        assert_eq!(
            (e.descr.as_str(), &e.shape[..], e.len()),
            ("<i4", &[0, 3][..], 0)
        );
        assert_eq!(get("empty").type_name(), "ndarray <i4 (0, 3)");
        assert_eq!(
            array(&v, "bool_arr").to_bool().unwrap(),
            [true, false, true]
        );
        assert_eq!(v.type_name(), "dict");
        assert_eq!(v.get("missing"), Option::None);
        assert_eq!(get("list").get("x"), Option::None);
    }

    #[test]
    fn what_runner_refuses_is_an_error_naming_the_file() {
        assert!(
            err("huge_int.npy").contains("the int 1180591620717411303424 does not fit in 64 bits")
        );
        assert!(err("fraction.npy").contains("a Python object built by fractions.Fraction"));
        let e = err("masked.npy");
        assert!(e.contains("numpy.ma.core._mareconstruct"), "{e}");
        assert!(err("datetime.npy").contains("a numpy dtype M8 (datetime or other)"));
        assert!(
            err("object_2.npy").contains("object array of shape [2] (2 elements), not one dict")
        );
        // Not a dict, but a value all the same: the caller decides.
        let l = read("list.npy");
        assert_eq!((l.type_name(), l.get("a")), ("list".into(), Option::None));
        // The Algonauts fixtures' numeric array and garbage.
        let strings = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/algonauts_mappings/strings.npy");
        let e = read_object(&strings).unwrap_err().to_string();
        assert!(
            e.contains("'<U3' array of shape [2], not a pickled dict"),
            "{e}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("S1_voxel_roi_info.npy");
        std::fs::write(&p, b"voxel,roi\n1,2\n").unwrap();
        let e = read_object(&p).unwrap_err().to_string();
        assert!(
            e.contains("S1_voxel_roi_info.npy")
                && e.contains("is neither an .npy file nor a pickle runner can read: unknown opcode 0x76 at byte 0"),
            "{e}"
        );
    }

    #[test]
    fn malformed_pickles_say_what_and_where() {
        let header = npy_object_header();
        let npy = |body: &[u8]| [&header[..], body].concat();
        let e = |bytes: &[u8]| parse_object(bytes).unwrap_err();
        assert_eq!(
            e(&npy(b"\x80\x04\xff")),
            "cannot read the pickle after the .npy header: unknown opcode 0xff at byte 2; \
             not a pickle, or a newer protocol"
        );
        assert_eq!(
            e(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00K\x01."),
            "is neither an .npy file nor a pickle runner can read: FRAME at byte 2: \
             a frame of 16 bytes, but only 3 remain"
        );
        assert!(e(b"\x80\x04K\x01").ends_with("the pickle ends at byte 4 before its STOP opcode"));
        assert!(e(b"\x8e\xff\xff\xff\xff\xff\xff\xff\x7f").ends_with(
            "the pickle ends inside BINBYTES8 at byte 0 (it needs 9223372036854775807 more bytes, 0 remain)"
        ));
        assert!(e(b"\x80\x02a.").ends_with("APPEND at byte 2: the stack is empty"));
        assert!(e(b"K\x01a.").ends_with("APPEND at byte 2: the stack is empty"));
        assert!(e(b"]K\x01u.").ends_with("SETITEMS at byte 3: no MARK before it"));
        assert!(e(b"]N\x85b.").ends_with("BUILD at byte 3: sets the state of a list"));
        assert!(e(b"h\x05.").ends_with("BINGET at byte 0: memo entry 5 was never stored"));
        assert!(e(b"\x80\x06.").ends_with("PROTO at byte 0: protocol 6 is newer than 5"));
        assert!(e(b"Q.").contains("BINPERSID at byte 0: a persistent id"));
        assert!(e(b"\x8b\xff\xff\xff\xff.").ends_with("LONG4 at byte 0: a negative length"));
        assert!(
            e(b"X\x02\x00\x00\x00\xff\xfe.")
                .ends_with("BINUNICODE at byte 0: the string is not valid UTF-8")
        );
        // A pickle that is not numpy's object array behind an object header.
        assert_eq!(
            e(&npy(b"\x80\x04]\x94.")),
            "the pickle after the .npy header is not numpy's pickle of an object array \
             (found a list of 0 items)"
        );
        assert!(e(b"cos\nsystem\n(S'ls'\ntR.").contains("STRING at byte 12"));
        assert_eq!(
            e(b"cos\nsystem\n(V ls\ntR."),
            "holds a Python object built by os.system, which runner does not read (it runs no Python code)"
        );
        // Truncated anywhere: an error, never a panic.
        let lab = std::fs::read(dir().join("lab08.npy")).unwrap();
        for cut in (0..lab.len()).step_by(97) {
            let msg = e(&lab[..cut]);
            assert!(
                msg.contains("ends") || msg.contains("header"),
                "{cut}: {msg}"
            );
        }
    }

    #[test]
    fn hostile_structures_are_bounded() {
        // A list holding itself.
        assert!(
            parse_object(b"]\x94h\x00a.")
                .unwrap_err()
                .contains("contains itself")
        );
        // 64 doublings of one list: 2^64 references from 200 bytes.
        let mut p = b"]\x94".to_vec();
        for i in 0..64u8 {
            p.extend([b'h', i, b'h', i, 0x86, 0x94]);
        }
        p.push(b'.');
        assert!(parse_object(&p).unwrap_err().contains("far more values"));
        // Deep nesting.
        let mut p = Vec::new();
        for _ in 0..10_000 {
            p.extend(b"(");
        }
        p.extend(b"]");
        for _ in 0..10_000 {
            p.extend(b"l");
        }
        p.push(b'.');
        assert!(
            parse_object(&p)
                .unwrap_err()
                .contains("deeper than 200 levels")
        );
    }

    #[test]
    fn array_conversions_report_the_first_bad_element() {
        let a = |descr: &str, shape: Vec<usize>, data: Vec<u8>| NdArray {
            descr: descr.into(),
            shape,
            fortran_order: false,
            data,
        };
        let f = a("<f8", vec![3], le(&[1.0f64, 2.0, 2.5], f64::to_le_bytes));
        assert_eq!(
            f.to_i64().unwrap_err(),
            "element 2 of a <f8 array is 2.5, not an integer"
        );
        assert_eq!(
            f.to_bool().unwrap_err(),
            "a <f8 array is not boolean (bool, or integers that are 0 or 1)"
        );
        let nan = a("<f4", vec![1], f32::NAN.to_le_bytes().to_vec());
        assert!(nan.to_i64().unwrap_err().contains("NaN, not an integer"));
        let i = a("<i4", vec![3], le(&[0i32, 1, 2], i32::to_le_bytes));
        assert_eq!(
            i.to_bool().unwrap_err(),
            "element 2 of a <i4 array is 2, not 0 or 1"
        );
        let i = a(">i2", vec![2], le(&[1i16, 0], i16::to_be_bytes));
        assert_eq!(i.to_bool().unwrap(), [true, false]);
        let u = a("<u8", vec![1], u64::MAX.to_le_bytes().to_vec());
        assert_eq!(
            u.to_i64().unwrap_err(),
            "element 0 is 18446744073709551615, beyond 64-bit integers"
        );
        assert_eq!(u.to_f64().unwrap(), [u64::MAX as f64]);
        let big = a("<f8", vec![1], 1e19f64.to_le_bytes().to_vec());
        assert!(big.to_i64().unwrap_err().contains("beyond 64-bit integers"));
        let h = a(
            "<f2",
            vec![1],
            npyz::half::f16::from_f64(-0.5)
                .to_bits()
                .to_le_bytes()
                .to_vec(),
        );
        assert_eq!(h.to_f64().unwrap(), [-0.5]);
        let s = a("<U3", vec![1], vec![0; 12]);
        assert_eq!(
            s.to_f64().unwrap_err(),
            "a <U3 array does not hold real numbers"
        );
        let short = a("<f8", vec![2, 2], vec![0; 24]);
        assert_eq!(
            short.to_f64().unwrap_err(),
            "a <f8 array of shape (2, 2) needs 32 bytes of data, but has 24"
        );
        let mut fo = a("|u1", vec![2, 3], vec![0, 3, 1, 4, 2, 5]);
        fo.fortran_order = true;
        assert_eq!(fo.to_i64().unwrap(), [0, 1, 2, 3, 4, 5]);
    }

    /// The writer reproduces np.save's bytes for a dict of every kind of value it holds.
    #[test]
    fn writer_matches_np_save_of_a_dict() {
        let numpy = std::fs::read(dir().join("writer_exact.npy")).unwrap();
        let v = parse_object(&numpy).unwrap();
        assert_eq!(array(&v, "u3").descr, "<U3");
        assert_eq!(array(&v, "s2").descr, "|S2");
        assert_eq!(array(&v, "c16").descr, "<c16");
        assert!(array(&v, "fortran").fortran_order);
        assert_eq!(v.get("lab08").unwrap(), &lab08_value([6, 7, 5]));
        let ours = object_npy_bytes(&v);
        if ours != numpy {
            let at = ours.iter().zip(&numpy).position(|(a, b)| a != b);
            panic!(
                "runner's bytes differ from np.save's at {at:?} (lengths {} and {})",
                ours.len(),
                numpy.len()
            );
        }
    }

    /// Dicts over 64 KiB, checked against np.save by length and CRC-32: one
    /// bytes object outside the frames, frames that grow past the target,
    /// many small opcodes, and a lab08 dict for a 30³ brain.
    #[test]
    fn writer_frames_large_dicts_as_np_save() {
        let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
        let want: serde_json::Value = serde_json::from_str(&text).unwrap();
        let u1 = |n: usize| nd("|u1", n, (0..n).map(|i| (i * 7 % 256) as u8).collect());
        let s = |k: &str| PyValue::Str(k.into());
        let ints = |v: &[i64]| PyValue::Tuple(v.iter().map(|&i| PyValue::Int(i)).collect());
        let cases = [
            ("bypass", PyValue::Dict(vec![(s("a"), u1(70000))])),
            ("exact_64k", PyValue::Dict(vec![(s("a"), u1(65536))])),
            (
                "two_40k",
                PyValue::Dict(vec![
                    (s("a"), u1(40000)),
                    (s("b"), u1(40000)),
                    (s("c"), ints(&[1, 2, 3])),
                ]),
            ),
            (
                "many_names",
                PyValue::Dict(vec![(
                    s("names"),
                    PyValue::Dict(
                        (0..7000)
                            .map(|i| (s(&format!("r{i}")), PyValue::Int(i)))
                            .collect(),
                    ),
                )]),
            ),
            ("brain_30", lab08_value([30, 30, 30])),
        ];
        for (name, v) in cases {
            let bytes = object_npy_bytes(&v);
            let got = (bytes.len() as u64, u64::from(crc32fast::hash(&bytes)));
            let w = &want[name];
            assert_eq!(
                got,
                (w["len"].as_u64().unwrap(), w["crc32"].as_u64().unwrap()),
                "{name}"
            );
            assert_eq!(parse_object(&bytes).unwrap(), v, "{name}");
        }
    }

    #[test]
    fn written_files_read_back_equal() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            "lab08.npy",
            "values.npy",
            "fortran.npy",
            "bigendian.npy",
            "lab08_p5.pkl",
        ] {
            let v = read(name);
            let p = tmp.path().join("out.npy");
            write_object(&p, &v).unwrap();
            assert_eq!(read_object(&p).unwrap(), v, "{name}");
        }
        // A set with a full batch, a long str and bytes over 64 KiB, a long list.
        let v = PyValue::Dict(vec![
            (
                PyValue::Str("set".into()),
                PyValue::Set((0..1000i64).map(PyValue::Int).collect()),
            ),
            (
                PyValue::Str("long".into()),
                PyValue::Str("é".repeat(40_000)),
            ),
            (
                PyValue::Bytes(vec![1; 70_000]),
                PyValue::List(
                    (0..2500)
                        .map(|i| PyValue::Float(f64::from(i) * 0.5))
                        .collect(),
                ),
            ),
        ]);
        assert_eq!(parse_object(&object_npy_bytes(&v)).unwrap(), v);
    }

    #[test]
    fn a_key_set_twice_keeps_its_place_and_last_value() {
        // {'a': 1, 'b': 2, 'a': 3} as SETITEMS
        let v = parse_object(b"}(\x8c\x01aK\x01\x8c\x01bK\x02\x8c\x01aK\x03u.").unwrap();
        let s = |k: &str| PyValue::Str(k.into());
        assert_eq!(
            v,
            PyValue::Dict(vec![(s("a"), PyValue::Int(3)), (s("b"), PyValue::Int(2))])
        );
    }

    fn fixture_bytes() -> Vec<Vec<u8>> {
        [
            "lab08.npy",
            "lab08_p2.pkl",
            "values.npy",
            "small_p0.pkl",
            "fortran_p5.pkl",
        ]
        .iter()
        .map(|n| std::fs::read(dir().join(n)).unwrap())
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Truncated fixtures are errors; mutated ones never panic.
        #[test]
        fn mutated_fixtures_never_panic(
            which in 0usize..5,
            cut in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        ) {
            let bytes = &fixture_bytes()[which];
            let short = &bytes[..cut.index(bytes.len())];
            prop_assert!(parse_object(short).is_err());
            let _ = parse_mapping(short);
            let mut m = bytes.clone();
            for (at, b) in edits {
                let i = at.index(m.len());
                m[i] = b;
            }
            let _ = parse_object(&m);
            let _ = parse_mapping(&m);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_object(&bytes);
            let mut with_header = npy_object_header();
            with_header.extend(&bytes);
            let _ = parse_object(&with_header);
        }
    }
}
