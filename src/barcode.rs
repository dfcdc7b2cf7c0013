//! HW2's synthetic "Barcode" task, bit-exact with the homework's Python
//! `BarcodeDataset` (CPython 3.11 `random`, numpy, torch).
//!
//! # The task
//!
//! Every example is a 32-bit unsigned integer drawn as a 224 × 224 RGB image
//! of 32 vertical stripes, each 7 pixels wide (32 · 7 = 224): stripe `i`
//! (columns `7i .. 7i+7`, counted from the left) shows bit `31 - i` of the
//! number, so the most significant bit is the leftmost stripe. A set bit is
//! a black stripe (0.0 in all three channels), a clear bit is white (1.0).
//! Every row of every channel is therefore the same 224-pixel profile
//! ([`row_profile`]). The label is the 32 bits as `f32`, MSB first
//! ([`label`]); the network learns to read the image back into its bits.
//!
//! # The splits
//!
//! * **Validation integers** (runner's definition; the homework leaves the
//!   choice to the student): [`val_numbers`]`(count, val_seed)` is the first
//!   `count` *distinct* values of `random.Random(val_seed).randrange(0, 2**32)`,
//!   in draw order (a repeated draw is skipped, not counted). Defaults:
//!   50 000 numbers, `val_seed = 2025` ([`BarcodeConfig`]). In Python:
//!
//!   ```python
//!   rng, seen, out = random.Random(val_seed), set(), []
//!   while len(out) < count:
//!       v = rng.randrange(0, 2**32)
//!       if v not in seen:
//!           seen.add(v); out.append(v)
//!   ```
//!
//! * **Validation order**: the homework's val dataset copies that list and
//!   shuffles it once with `random.Random(seed + 9999).shuffle`
//!   ([`val_order`]); item `index` is `order[index % order.len()]`.
//!
//! * **Training stream**: the train dataset owns one `random.Random(seed)` and
//!   every `__getitem__` call — whatever its `index` — draws
//!   `randrange(0, 2**32)` until the value is not a validation integer. The
//!   n-th *call* therefore gets the n-th accepted draw ([`TrainStream`]); the
//!   sequence depends on call order only. [`TrainStream::skip`] replays `n`
//!   accepted draws, so a resumed run sees the same numbers as an
//!   uninterrupted one (the draws cannot be jumped over: each rejection
//!   depends on the value drawn).
//!
//! # CPython's `random`, ported ([`PyRandom`])
//!
//! * `random.Random(n)` for an int `n`: MT19937 `init_by_array` with the
//!   32-bit words of `|n|`, least significant first (`[0]` for `n = 0`).
//! * `getrandbits(k)`: for `k ≤ 32`, one output `>> (32 - k)`; otherwise
//!   `ceil(k/32)` outputs fill the result from its *least* significant word
//!   up, the last one shifted right to keep its top `k mod 32` bits.
//! * `_randbelow(n)`: `k = n.bit_length()` (not `(n-1).bit_length()`), then
//!   `getrandbits(k)` until `< n`. So `randrange(0, 2**32)` is
//!   `getrandbits(33)`: two outputs, the first is the value, the top bit of
//!   the second must be 0, else both are thrown away (half of all tries).
//! * `shuffle(x)`: for `i` from `len-1` down to 1, swap `x[i]` with
//!   `x[_randbelow(i + 1)]`.

use std::collections::HashSet;

/// Image side in pixels.
pub const IMAGE_SIZE: usize = 224;
/// Colour channels (RGB, all identical).
pub const CHANNELS: usize = 3;
/// Bits per number = stripes per image = label length.
pub const BITS: usize = 32;
/// Width of one stripe in pixels (`BITS * STRIPE_WIDTH == IMAGE_SIZE`).
pub const STRIPE_WIDTH: usize = IMAGE_SIZE / BITS;
/// Floats in one CHW image: 3 × 224 × 224.
pub const IMAGE_LEN: usize = CHANNELS * IMAGE_SIZE * IMAGE_SIZE;

const _: () = assert!(BITS * STRIPE_WIDTH == IMAGE_SIZE);

/// The homework's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarcodeConfig {
    /// Items per training epoch (`BarcodeDataset('train', length, ...)`).
    pub train_length: usize,
    /// Items in the validation split; also how many validation integers
    /// [`BarcodeConfig::val_numbers`] draws.
    pub val_length: usize,
    /// The dataset seed: training draws use `Random(seed)`, the validation
    /// shuffle `Random(seed + 9999)`.
    pub seed: u64,
    /// Seed of the validation integers ([`val_numbers`]).
    pub val_seed: u64,
}

impl Default for BarcodeConfig {
    fn default() -> Self {
        BarcodeConfig {
            train_length: 1_000_000,
            val_length: 50_000,
            seed: 1110,
            val_seed: 2025,
        }
    }
}

impl BarcodeConfig {
    /// `val_numbers(self.val_length, self.val_seed)`.
    pub fn val_numbers(&self) -> Vec<u32> {
        val_numbers(self.val_length, self.val_seed)
    }

    /// The validation split in item order: `val_order(val_numbers, self.seed)`.
    pub fn val_order(&self, val_numbers: &[u32]) -> Vec<u32> {
        val_order(val_numbers, self.seed)
    }

    /// A fresh training stream, `TrainStream::new(self.seed, val_numbers)`.
    pub fn train_stream(&self, val_numbers: &[u32]) -> TrainStream {
        TrainStream::new(self.seed, val_numbers)
    }
}

// ---------------------------------------------------------------------------
// CPython's random.Random (Modules/_randommodule.c, Lib/random.py, 3.11)
// ---------------------------------------------------------------------------

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// CPython's `random.Random` (MT19937) for the operations the dataset uses.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative int seed (a negative one seeds
    /// as its absolute value in CPython, so pass that). `u128` so that
    /// `seed + 9999` never overflows for a `u64` seed.
    pub fn new(seed: u128) -> Self {
        let mut key = Vec::with_capacity(4);
        let mut s = seed;
        loop {
            key.push(s as u32);
            s >>= 32;
            if s == 0 {
                break;
            }
        }
        Self::from_key(&key)
    }

    /// MT19937 `init_by_array`, as `random_seed` calls it.
    fn from_key(key: &[u32]) -> Self {
        let mut mt = [0u32; N];
        mt[0] = 19_650_218;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        PyRandom { mt, index: N }
    }

    fn twist(&mut self) {
        let mt = &mut self.mt;
        for k in 0..N {
            let y = (mt[k] & UPPER_MASK) | (mt[(k + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            mt[k] = mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// `genrand_uint32`: one tempered 32-bit output (= `getrandbits(32)`).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `k ≤ 64`.
    #[inline]
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(k <= 64, "getrandbits({k}): only k <= 64 is ported");
        match k {
            0 => 0,
            1..=32 => (self.next_u32() >> (32 - k)) as u64,
            _ => {
                // Least significant word first; the last keeps its top k-32 bits.
                let lo = self.next_u32() as u64;
                let hi = (self.next_u32() >> (64 - k)) as u64;
                lo | (hi << 32)
            }
        }
    }

    /// `_randbelow(n)` (`_randbelow_with_getrandbits`), `n > 0`.
    #[inline]
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0)");
        let k = 64 - n.leading_zeros(); // n.bit_length()
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(0, 2**32)` = `_randbelow(2**32)` = `getrandbits(33)` until
    /// its bit 32 is clear.
    #[inline]
    pub fn randrange_u32(&mut self) -> u32 {
        loop {
            let value = self.next_u32();
            if self.next_u32() & 0x8000_0000 == 0 {
                return value;
            }
        }
    }

    /// `shuffle(x)`: Fisher–Yates from the end with `_randbelow(i + 1)`.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------
// Splits
// ---------------------------------------------------------------------------

/// The validation integers: the first `count` distinct values of
/// `random.Random(val_seed).randrange(0, 2**32)`, in draw order.
///
/// # Panics
/// If `count > 2**32` (there are not that many distinct values).
pub fn val_numbers(count: usize, val_seed: u64) -> Vec<u32> {
    assert!(
        count as u128 <= 1u128 << 32,
        "val_numbers: {count} distinct 32-bit values do not exist"
    );
    let mut rng = PyRandom::new(val_seed as u128);
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let v = rng.randrange_u32();
        if seen.insert(v) {
            out.push(v);
        }
    }
    out
}

/// The validation split in item order: `val_numbers` copied and shuffled by
/// `random.Random(seed + 9999)` (the homework's `val_numbers_list`). Item
/// `index` of the split is `order[index % order.len()]`.
pub fn val_order(val_numbers: &[u32], seed: u64) -> Vec<u32> {
    let mut order = val_numbers.to_vec();
    PyRandom::new(seed as u128 + 9999).shuffle(&mut order);
    order
}

/// The training split's stateful number stream: call `n` of the homework's
/// `train_dataset[...]` returns the `n`-th value of [`TrainStream::next`].
#[derive(Debug, Clone)]
pub struct TrainStream {
    rng: PyRandom,
    /// Validation integers, sorted and deduplicated (binary search: 16
    /// comparisons for 50 000, no hashing).
    val: Vec<u32>,
    accepted: u64,
    rejected: u64,
}

impl TrainStream {
    /// `Random(seed)` and the validation integers to exclude (any order,
    /// duplicates allowed).
    pub fn new(seed: u64, val_numbers: &[u32]) -> Self {
        let mut val = val_numbers.to_vec();
        val.sort_unstable();
        val.dedup();
        TrainStream {
            rng: PyRandom::new(seed as u128),
            val,
            accepted: 0,
            rejected: 0,
        }
    }

    /// The next training number: `randrange(0, 2**32)` until it is not a
    /// validation integer.
    #[allow(clippy::should_implement_trait)] // infinite: never `None`
    #[inline]
    pub fn next(&mut self) -> u32 {
        loop {
            let candidate = self.rng.randrange_u32();
            if self.val.binary_search(&candidate).is_err() {
                self.accepted += 1;
                return candidate;
            }
            self.rejected += 1;
        }
    }

    /// Advances past `n` accepted draws, as if [`next`](Self::next) had been
    /// called `n` times (to resume: `skip(items already served)`).
    pub fn skip(&mut self, n: u64) {
        for _ in 0..n {
            self.next();
        }
    }

    /// Numbers returned (or skipped) so far: the stream's position.
    pub fn position(&self) -> u64 {
        self.accepted
    }

    /// Draws thrown away so far because they were validation integers.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

// ---------------------------------------------------------------------------
// Images and labels
// ---------------------------------------------------------------------------

/// One image row (identical for every row and channel): pixel `x` is 0.0 if
/// bit `31 - x / 7` of `number` is set, else 1.0.
#[inline]
pub fn row_profile(number: u32) -> [f32; IMAGE_SIZE] {
    let mut row = [1.0f32; IMAGE_SIZE];
    for (i, stripe) in row.chunks_exact_mut(STRIPE_WIDTH).enumerate() {
        if (number >> (BITS - 1 - i)) & 1 == 1 {
            stripe.fill(0.0);
        }
    }
    row
}

/// `make_barcode_data(number)`: the 3 × 224 × 224 CHW image, 1.0 white,
/// 0.0 black stripes, the MSB leftmost.
pub fn image(number: u32) -> Vec<f32> {
    let row = row_profile(number);
    let mut out = Vec::with_capacity(IMAGE_LEN);
    for _ in 0..CHANNELS * IMAGE_SIZE {
        out.extend_from_slice(&row);
    }
    out
}

/// [`image`] into `out` (one slot of a batch); no allocation.
///
/// # Panics
/// If `out.len() != IMAGE_LEN`.
#[inline]
pub fn write_image(number: u32, out: &mut [f32]) {
    assert_eq!(out.len(), IMAGE_LEN, "write_image: buffer is not 3×224×224");
    let row = row_profile(number);
    for dst in out.chunks_exact_mut(IMAGE_SIZE) {
        dst.copy_from_slice(&row);
    }
}

/// `int_to_32bit_label(number)`: the bits as 0.0/1.0, MSB first.
#[inline]
pub fn label(number: u32) -> [f32; BITS] {
    std::array::from_fn(|i| ((number >> (BITS - 1 - i)) & 1) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_outputs() {
        // init_by_array({0x123, 0x234, 0x345, 0x456}): mt19937ar.out's first
        // outputs, the reference CPython's generator is built from.
        let mut r = PyRandom::from_key(&[0x123, 0x234, 0x345, 0x456]);
        let want = [
            1_067_595_299u32,
            955_945_823,
            477_289_528,
            4_107_218_783,
            4_228_976_476,
        ];
        for w in want {
            assert_eq!(r.next_u32(), w);
        }
    }

    #[test]
    fn seed_key_words() {
        // 2**32 seeds with key [0, 1], not [0]: different streams.
        let a = PyRandom::new(0).next_u32();
        let b = PyRandom::new(1 << 32).next_u32();
        assert_ne!(a, b);
    }

    #[test]
    fn image_layout() {
        let img = image(0x8000_0001);
        assert_eq!(img.len(), IMAGE_LEN);
        for c in 0..CHANNELS {
            for y in [0, 111, 223] {
                let row = &img[(c * IMAGE_SIZE + y) * IMAGE_SIZE..][..IMAGE_SIZE];
                assert!(row[..7].iter().all(|&p| p == 0.0));
                assert!(row[7..217].iter().all(|&p| p == 1.0));
                assert!(row[217..].iter().all(|&p| p == 0.0));
            }
        }
        let l = label(0x8000_0001);
        assert_eq!((l[0], l[1], l[30], l[31]), (1.0, 0.0, 0.0, 1.0));
        let mut buf = vec![0.5; IMAGE_LEN];
        write_image(0x8000_0001, &mut buf);
        assert_eq!(buf, img);
    }
}
