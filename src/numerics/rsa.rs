//! Representational similarity analysis (seed 004, csci591: a CNN's layers
//! against mouse V1 by RSA), scipy-exact: representational dissimilarity
//! matrices (RDMs), their comparison, a bootstrap over stimuli.
//!
//! # RDMs — [`rdm`]
//!
//! `x` is n × p row-major (stimuli × units), read as f64.
//!
//! - [`RdmMethod::Correlation`], the seed's:
//!   `z = scipy.stats.zscore(x, axis=1)` (each stimulus' pattern z-scored
//!   across units, ddof 0), `RDM = 1 − z zᵀ / p`, i.e. 1 − Pearson r between
//!   patterns. z zᵀ is one faer GEMM (lower triangle only, mirrored). The
//!   diagonal is set to exactly 0 (numpy leaves ~1e-16 there).
//!   A *constant* pattern (all p values bit-equal) has no z-score: numpy gives
//!   NaN in its row and column. Here too — its whole row **and** column are
//!   NaN, its diagonal entry included — but the pattern is also listed in
//!   [`Rdm::constant_patterns`] so that the caller can report it (and drop it
//!   with [`keep`] / [`without`]). (numpy's test is its computed std being 0;
//!   for a constant row whose mean does not round back to the value, numpy
//!   gives ±1 z-scores of rounding noise instead. Here the test is exact
//!   equality.) Non-finite inputs are not checked: they propagate as NaN, and
//!   [`compare`] then returns `None`.
//! - [`RdmMethod::Euclidean`]: `squareform(pdist(x, 'euclidean'))` (plain
//!   distances, not squared; diagonal 0). Computed as ‖a‖² + ‖b‖² − 2 a·b by
//!   one GEMM, clamped at 0, then √. The cancellation is real for
//!   near-identical patterns (and for patterns far from the origin): the
//!   error of d² is ~ε·√p·(‖a‖² + ‖b‖²), so d itself is only good to
//!   ~√ε·‖a‖ when a ≈ b (the `near` fixture, offset 100: numpy's own
//!   GEMM route gives 0 for two rows 7.2e-7 apart and 1.1e-5 for two
//!   identical ones, relative error 1). Every pair with
//!   d² < 10⁻²·(‖a‖² + ‖b‖²) is therefore recomputed directly as
//!   √Σ(aₖ − bₖ)², as pdist does, which keeps the GEMM pairs to ~1e-12
//!   relative. (Patterns with a large common offset thus fall back to the
//!   direct O(n²p) loop: correct, slower; the columns are deliberately not
//!   centred, so that integer-valued patterns give exactly pdist's
//!   distances — and exactly its ties, which ranks depend on.)
//!   [`Rdm::constant_patterns`] is always empty for this method.
//!
//! # Vectors and comparisons
//!
//! - [`upper`]: the off-diagonal upper triangle (`np.triu_indices(n, k=1)`,
//!   row-major), n(n−1)/2 entries.
//! - [`compare`] with [`Compare::Pearson`] (`np.corrcoef(a, b)[0, 1]`, clipped
//!   to [−1, 1] as numpy does), [`Compare::Spearman`]
//!   (`scipy.stats.spearmanr`: Pearson of [`ranks`], scipy's `rankdata`
//!   'average'), [`Compare::KendallTauA`] (τa = (n_c − n_d) / (n(n−1)/2), tied
//!   pairs count 0, rsatoolbox's 'tau-a'; [`kendall_tau_a`], Knight's
//!   O(n log n) algorithm).
//!   `None` (never NaN) when the comparison is undefined: fewer than 2
//!   entries, a non-finite entry, or a constant vector — for τa too (where
//!   the formula would give 0, as rsatoolbox returns), so that all three
//!   methods agree on what they cannot compare. Sums run over fixed chunks
//!   in a fixed order, so results do not depend on the thread count.
//!
//! # Bootstrap over stimuli — [`bootstrap`]
//!
//! Takes the two full n × n RDMs. Sample k (0-based) draws n stimulus indices
//! with replacement, `i_0 … i_{n−1}`, from its own generator
//! `Pcg64::seed_from_u64(splitmix64(splitmix64(seed) ^ k))` (rand_pcg 0.10;
//! splitmix64 as in `runner synth`) as `rng.random_range(0..n)` in order;
//! the compared vectors are `A[i_a, i_b]`, `B[i_a, i_b]` over positions
//! a < b (row-major) **with i_a ≠ i_b** (rsatoolbox's pattern bootstrap
//! drops the self-pairs). Samples run in parallel (rayon) and are collected
//! in order, so [`Bootstrap::values`] depends on neither thread count nor
//! scheduling. Undefined samples are skipped and counted. The interval is
//! the `numpy.percentile` ('linear') of the defined values at
//! q = 50 (1 − level) and 100 − q.
//!
//! [`keep`] takes the sub-RDM of some stimuli (e.g. [`without`] the constant
//! patterns of either RDM) before comparing.
//!
//! Checked against numpy 2.4.6 / scipy 1.17.1 / rsatoolbox 0.3.2 fixtures in
//! `tests/rsa_reference.rs`.

use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;

/// How an RDM measures the dissimilarity of two stimulus patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RdmMethod {
    /// 1 − Pearson r of the patterns (the seed's z-score route).
    Correlation,
    /// Euclidean distance (scipy pdist 'euclidean').
    Euclidean,
}

impl RdmMethod {
    pub fn name(&self) -> &'static str {
        match self {
            RdmMethod::Correlation => "correlation",
            RdmMethod::Euclidean => "euclidean",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "correlation" => Some(RdmMethod::Correlation),
            "euclidean" => Some(RdmMethod::Euclidean),
            _ => None,
        }
    }
}

/// How two RDM vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// `np.corrcoef(a, b)[0, 1]`.
    Pearson,
    /// `scipy.stats.spearmanr(a, b)`: Pearson of average ranks.
    Spearman,
    /// Kendall's τa (ties count 0; rsatoolbox 'tau-a').
    KendallTauA,
}

impl Compare {
    pub fn name(&self) -> &'static str {
        match self {
            Compare::Pearson => "pearson",
            Compare::Spearman => "spearman",
            Compare::KendallTauA => "kendall_tau_a",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pearson" => Some(Compare::Pearson),
            "spearman" => Some(Compare::Spearman),
            "kendall_tau_a" => Some(Compare::KendallTauA),
            _ => None,
        }
    }
}

/// An n × n RDM, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Rdm {
    pub n: usize,
    pub data: Vec<f64>,
    /// Patterns (row indices, ascending) that a correlation RDM cannot
    /// measure (constant across units): their rows and columns are NaN.
    pub constant_patterns: Vec<usize>,
}

fn par() -> Par {
    Par::rayon(0)
}

/// Chunk of the fixed-order reductions (independent of the thread count).
const CHUNK: usize = 1 << 14;

/// Σ f(i) over 0..len, in fixed chunks summed in order.
fn chunked_sum(len: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    let parts: Vec<f64> = (0..len.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| (c * CHUNK..((c + 1) * CHUNK).min(len)).map(&f).sum())
        .collect();
    parts.iter().sum()
}

/// `G = Zᵀ Z` in place in `out` (n × n, any layout since it is symmetric),
/// for `zt` p × n column-major (so each pattern contiguous); only the lower
/// triangle (column-major) is computed then mirrored.
fn gram(zt: &[f64], n: usize, p: usize, out: &mut [f64]) {
    let z = MatRef::from_column_major_slice(zt, p, n);
    let mut g = MatMut::from_column_major_slice_mut(out, n, n);
    triangular::matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        z.transpose(),
        BlockStructure::Rectangular,
        z,
        BlockStructure::Rectangular,
        1.0,
        par(),
    );
    // Lower triangle of the column-major matrix = upper triangle of the
    // row-major one: copy it to the other half.
    for i in 0..n {
        for j in 0..i {
            out[i * n + j] = out[j * n + i];
        }
    }
}

/// The RDM of the n patterns (rows) of `x`, n × p row-major.
pub fn rdm(x: &[f64], n: usize, p: usize, method: RdmMethod) -> Rdm {
    assert_eq!(x.len(), n * p, "rdm: x is not n × p");
    let mut data = vec![0.0; n * n];
    if n == 0 {
        return Rdm {
            n,
            data,
            constant_patterns: Vec::new(),
        };
    }
    if p == 0 {
        // No units: every pattern is (vacuously) constant; distances are 0.
        return match method {
            RdmMethod::Correlation => Rdm {
                n,
                data: vec![f64::NAN; n * n],
                constant_patterns: (0..n).collect(),
            },
            RdmMethod::Euclidean => Rdm {
                n,
                data,
                constant_patterns: Vec::new(),
            },
        };
    }
    match method {
        RdmMethod::Correlation => {
            // z-score each pattern; constant ones become 0 (then NaN below).
            let mut z = x.to_vec();
            let constant: Vec<bool> = z
                .par_chunks_mut(p.max(1))
                .map(|row| {
                    if row.iter().all(|v| *v == row[0]) {
                        row.fill(0.0);
                        return true;
                    }
                    let m = row.iter().sum::<f64>() / p as f64;
                    let var = row.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / p as f64;
                    let sd = var.sqrt();
                    for v in row.iter_mut() {
                        *v = (*v - m) / sd;
                    }
                    false
                })
                .collect();
            gram(&z, n, p, &mut data);
            drop(z);
            let inv_p = 1.0 / p as f64;
            data.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = if constant[i] || constant[j] {
                        f64::NAN
                    } else if i == j {
                        0.0
                    } else {
                        1.0 - *v * inv_p
                    };
                }
            });
            let constant_patterns = (0..n).filter(|&i| constant[i]).collect();
            Rdm {
                n,
                data,
                constant_patterns,
            }
        }
        RdmMethod::Euclidean => {
            let norms: Vec<f64> = x
                .par_chunks(p.max(1))
                .map(|row| row.iter().map(|v| v * v).sum())
                .collect();
            gram(x, n, p, &mut data);
            data.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
                for (j, v) in row.iter_mut().enumerate() {
                    if i == j {
                        *v = 0.0;
                        continue;
                    }
                    let s = norms[i] + norms[j];
                    let d2 = s - 2.0 * *v;
                    *v = if d2 < 1e-2 * s {
                        let (a, b) = (&x[i * p..(i + 1) * p], &x[j * p..(j + 1) * p]);
                        a.iter()
                            .zip(b)
                            .map(|(u, w)| (u - w) * (u - w))
                            .sum::<f64>()
                            .sqrt()
                    } else {
                        d2.max(0.0).sqrt()
                    };
                }
            });
            Rdm {
                n,
                data,
                constant_patterns: Vec::new(),
            }
        }
    }
}

/// The off-diagonal upper triangle of an n × n row-major matrix, in
/// `np.triu_indices(n, k=1)` order.
pub fn upper(rdm: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(rdm.len(), n * n, "upper: not n × n");
    let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        out.extend_from_slice(&rdm[i * n + i + 1..(i + 1) * n]);
    }
    out
}

/// The stimuli of 0..n not in `drop`, ascending.
pub fn without(n: usize, drop: &[usize]) -> Vec<usize> {
    let mut gone = vec![false; n];
    for &i in drop {
        if i < n {
            gone[i] = true;
        }
    }
    (0..n).filter(|&i| !gone[i]).collect()
}

/// The sub-RDM of the stimuli `keep` (in that order) of an n × n RDM, and
/// its size `keep.len()`.
pub fn keep(rdm: &[f64], n: usize, keep: &[usize]) -> (Vec<f64>, usize) {
    assert_eq!(rdm.len(), n * n, "keep: not n × n");
    let m = keep.len();
    let mut out = Vec::with_capacity(m * m);
    for &i in keep {
        assert!(i < n, "keep: stimulus {i} out of 0..{n}");
        out.extend(keep.iter().map(|&j| rdm[i * n + j]));
    }
    (out, m)
}

/// `scipy.stats.rankdata(x, 'average')`: 1-based ranks, ties get the mean of
/// their positions. NaN entries sort last and each gets its own rank (scipy
/// would give all NaN; [`compare`] rejects them before ranking).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    assert!(x.len() <= u32::MAX as usize, "ranks: more than 2³² entries");
    let mut v: Vec<(f64, u32)> = x.iter().copied().zip(0u32..).collect();
    v.par_sort_unstable_by(|a, b| {
        a.0.partial_cmp(&b.0)
            .unwrap_or_else(|| a.0.is_nan().cmp(&b.0.is_nan()))
    });
    let mut r = vec![0.0; x.len()];
    let mut s = 0;
    while s < v.len() {
        let mut e = s + 1;
        while e < v.len() && v[e].0 == v[s].0 {
            e += 1;
        }
        // Positions s..e (0-based) share rank mean(s+1..=e) = (s + 1 + e) / 2.
        let rank = (s + 1 + e) as f64 / 2.0;
        for &(_, k) in &v[s..e] {
            r[k as usize] = rank;
        }
        s = e;
    }
    r
}

/// `np.corrcoef(a, b)[0, 1]`, or `None` if undefined.
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len();
    let ma = chunked_sum(n, |i| a[i]) / n as f64;
    let mb = chunked_sum(n, |i| b[i]) / n as f64;
    let sab = chunked_sum(n, |i| (a[i] - ma) * (b[i] - mb));
    let saa = chunked_sum(n, |i| (a[i] - ma) * (a[i] - ma));
    let sbb = chunked_sum(n, |i| (b[i] - mb) * (b[i] - mb));
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    // numpy: c_ab / √c_aa / √c_bb (the 1/(n−1) cancels), clipped.
    Some((sab / saa.sqrt() / sbb.sqrt()).clamp(-1.0, 1.0))
}

fn constant(x: &[f64]) -> bool {
    x.iter().all(|v| *v == x[0])
}

/// Compares two RDM vectors (e.g. [`upper`]s). `None` when undefined:
/// fewer than 2 entries, a non-finite entry, or a constant vector.
///
/// # Panics
/// If the lengths differ.
pub fn compare(a: &[f64], b: &[f64], method: Compare) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "compare: vectors of different lengths");
    if a.len() < 2 || !a.par_iter().chain(b.par_iter()).all(|v| v.is_finite()) {
        return None;
    }
    if constant(a) || constant(b) {
        return None;
    }
    match method {
        Compare::Pearson => pearson(a, b),
        Compare::Spearman => {
            let (ra, rb) = rayon::join(|| ranks(a), || ranks(b));
            pearson(&ra, &rb)
        }
        Compare::KendallTauA => kendall_tau_a(a, b),
    }
}

/// Pairs i < j tied in `key` over a sequence sorted so that equal keys are
/// adjacent.
fn tied_pairs(sorted_keys: impl Iterator<Item = (f64, f64)>, both: bool) -> u64 {
    let mut total = 0u64;
    let mut run = 0u64;
    let mut prev: Option<(f64, f64)> = None;
    for k in sorted_keys {
        let same = match prev {
            Some(p) => p.0 == k.0 && (!both || p.1 == k.1),
            None => false,
        };
        if same {
            run += 1;
        } else {
            total += run * run.saturating_sub(1) / 2;
            run = 1;
        }
        prev = Some(k);
    }
    total + run * run.saturating_sub(1) / 2
}

/// Sorts `v` (by y) with `buf` as scratch, returning the strict inversions
/// (pairs i < j with v[i] > v[j]).
fn merge_count(v: &mut [f64], buf: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 32 {
        // Insertion sort: each shift past a strictly greater element is
        // one inversion.
        let mut inv = 0u64;
        for i in 1..n {
            let x = v[i];
            let mut j = i;
            while j > 0 && v[j - 1] > x {
                v[j] = v[j - 1];
                j -= 1;
            }
            inv += (i - j) as u64;
            v[j] = x;
        }
        return inv;
    }
    let mid = n / 2;
    let (lo, hi) = v.split_at_mut(mid);
    let (blo, bhi) = buf.split_at_mut(mid);
    let (a, b) = if n > 1 << 16 {
        rayon::join(|| merge_count(lo, blo), || merge_count(hi, bhi))
    } else {
        (merge_count(lo, blo), merge_count(hi, bhi))
    };
    let mut inv = a + b;
    let (mut i, mut j, mut k) = (0, 0, 0);
    while i < lo.len() && j < hi.len() {
        // Equal y is not an inversion: take the left one first.
        if hi[j] < lo[i] {
            buf[k] = hi[j];
            inv += (lo.len() - i) as u64;
            j += 1;
        } else {
            buf[k] = lo[i];
            i += 1;
        }
        k += 1;
    }
    buf[k..k + lo.len() - i].copy_from_slice(&lo[i..]);
    k += lo.len() - i;
    buf[k..k + hi.len() - j].copy_from_slice(&hi[j..]);
    v.copy_from_slice(buf);
    inv
}

/// Kendall's τa = (n_concordant − n_discordant) / (n(n−1)/2), pairs tied in
/// either vector counting 0, by Knight's algorithm: sort by (a, b), count
/// the pairs tied in a (n₁) and in both (n₃), merge-sort b counting swaps
/// (the discordant pairs, n_d), count the pairs tied in b (n₂); then
/// n_c = n₀ − n₁ − n₂ + n₃ − n_d. O(n log n). `None` as for [`compare`].
pub fn kendall_tau_a(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(
        a.len(),
        b.len(),
        "kendall_tau_a: vectors of different lengths"
    );
    let n = a.len();
    if n < 2 || !a.iter().chain(b).all(|v| v.is_finite()) || constant(a) || constant(b) {
        return None;
    }
    let mut pairs: Vec<(f64, f64)> = a.iter().copied().zip(b.iter().copied()).collect();
    pairs.par_sort_unstable_by(|p, q| {
        p.0.partial_cmp(&q.0)
            .unwrap()
            .then(p.1.partial_cmp(&q.1).unwrap())
    });
    let n1 = tied_pairs(pairs.iter().copied(), false);
    let n3 = tied_pairs(pairs.iter().copied(), true);
    let mut ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    drop(pairs);
    let mut buf = vec![0.0; n];
    let nd = merge_count(&mut ys, &mut buf);
    drop(buf);
    let n2 = tied_pairs(ys.iter().map(|&y| (y, 0.0)), false);
    let n0 = (n as u64) * (n as u64 - 1) / 2;
    // n_c − n_d = n₀ − n₁ − n₂ + n₃ − 2 n_d (n₁ + n₂ may exceed n₀: signed).
    let num = n0 as i128 - n1 as i128 - n2 as i128 + n3 as i128 - 2 * nd as i128;
    Some(num as f64 / n0 as f64)
}

/// `numpy.percentile(x, q)` (method 'linear') of an ascending, non-empty
/// `sorted`, q in [0, 100].
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of nothing");
    let n = sorted.len();
    // numpy: virtual index (n − 1)·q/100, then _lerp(a, b, γ), which is
    // b − (b − a)(1 − γ) for γ ≥ 0.5 (monotone and exact at the ends).
    let vi = (n - 1) as f64 * (q / 100.0);
    let lo = vi.floor().clamp(0.0, (n - 1) as f64);
    let g = vi - lo;
    let i = lo as usize;
    let (a, b) = (sorted[i], sorted[(i + 1).min(n - 1)]);
    let d = b - a;
    if g >= 0.5 {
        b - d * (1.0 - g)
    } else {
        a + d * g
    }
}

/// Bootstrap over stimuli of one comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The defined comparison of each sample, in sample order.
    pub values: Vec<f64>,
    /// Samples whose comparison was undefined (skipped).
    pub undefined: usize,
    /// Percentile interval of `values` at the level asked; `None` if no
    /// sample was defined.
    pub ci: Option<(f64, f64)>,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stimuli sample `k` of [`bootstrap`] draws (n indices in 0..n).
pub fn bootstrap_indices(n: usize, seed: u64, k: u64) -> Vec<usize> {
    let mut rng = Pcg64::seed_from_u64(splitmix64(splitmix64(seed) ^ k));
    (0..n).map(|_| rng.random_range(0..n)).collect()
}

/// The pairs a < b of a resample `idx` with `idx[a] != idx[b]`, read from
/// the n × n RDMs `a` and `b`.
fn resampled(a: &[f64], b: &[f64], n: usize, idx: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let m = idx.len();
    let mut va = Vec::with_capacity(m * m.saturating_sub(1) / 2);
    let mut vb = Vec::with_capacity(va.capacity());
    for (s, &i) in idx.iter().enumerate() {
        let (ra, rb) = (&a[i * n..(i + 1) * n], &b[i * n..(i + 1) * n]);
        for &j in &idx[s + 1..] {
            if i != j {
                va.push(ra[j]);
                vb.push(rb[j]);
            }
        }
    }
    (va, vb)
}

/// Bootstrap over stimuli of `compare(upper(a), upper(b), method)` for two
/// n × n RDMs: `n_boot` samples (see the module doc for the streams), the
/// defined values and a `level` (e.g. 0.95) percentile interval.
pub fn bootstrap(
    a: &[f64],
    b: &[f64],
    n: usize,
    method: Compare,
    n_boot: usize,
    seed: u64,
    level: f64,
) -> Bootstrap {
    assert_eq!(a.len(), n * n, "bootstrap: a is not n × n");
    assert_eq!(b.len(), n * n, "bootstrap: b is not n × n");
    assert!(
        level > 0.0 && level < 1.0,
        "bootstrap: level outside (0, 1)"
    );
    let all: Vec<Option<f64>> = (0..n_boot as u64)
        .into_par_iter()
        .map(|k| {
            let idx = bootstrap_indices(n, seed, k);
            let (va, vb) = resampled(a, b, n, &idx);
            compare(&va, &vb, method)
        })
        .collect();
    let values: Vec<f64> = all.iter().flatten().copied().collect();
    let undefined = n_boot - values.len();
    let ci = if values.is_empty() {
        None
    } else {
        let mut s = values.clone();
        s.sort_by(f64::total_cmp);
        let q = 50.0 * (1.0 - level);
        Some((percentile(&s, q), percentile(&s, 100.0 - q)))
    };
    Bootstrap {
        values,
        undefined,
        ci,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_tau_a(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len();
        let mut s = 0i64;
        for i in 0..n {
            for j in i + 1..n {
                let x = (a[i] - a[j]).partial_cmp(&0.0).unwrap() as i64;
                let y = (b[i] - b[j]).partial_cmp(&0.0).unwrap() as i64;
                s += x * y;
            }
        }
        s as f64 / (n * (n - 1) / 2) as f64
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]), [4.0, 1.0, 4.0, 2.0, 4.0]);
        assert_eq!(ranks(&[0.0, -0.0]), [1.5, 1.5]);
    }

    #[test]
    fn tau_small_with_ties() {
        let a = [1.0, 2.0, 2.0, 3.0, 1.0, 5.0, 2.0, 0.0];
        let b = [2.0, 2.0, 1.0, 3.0, 1.0, 1.0, 2.0, 2.0];
        let t = kendall_tau_a(&a, &b).unwrap();
        assert!((t - brute_tau_a(&a, &b)).abs() < 1e-15, "{t}");
        // Enough entries for the merge (not only the insertion sort).
        let a: Vec<f64> = (0..500).map(|i| ((i * 37) % 11) as f64).collect();
        let b: Vec<f64> = (0..500).map(|i| ((i * 53) % 7) as f64).collect();
        let t = kendall_tau_a(&a, &b).unwrap();
        assert!((t - brute_tau_a(&a, &b)).abs() < 1e-15, "{t}");
    }

    #[test]
    fn undefined_is_none() {
        let a = [1.0, 1.0, 1.0];
        let b = [1.0, 2.0, 3.0];
        for m in [Compare::Pearson, Compare::Spearman, Compare::KendallTauA] {
            assert_eq!(compare(&a, &b, m), None);
            assert_eq!(compare(&[1.0, f64::NAN, 2.0], &b, m), None);
            assert_eq!(compare(&[1.0], &[2.0], m), None);
            assert_eq!(Compare::parse(m.name()), Some(m));
        }
    }

    #[test]
    fn percentile_numpy_linear() {
        let s = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(percentile(&s, 0.0), 1.0);
        assert_eq!(percentile(&s, 100.0), 8.0);
        assert_eq!(percentile(&s, 50.0), 3.0);
        assert!((percentile(&s, 2.5) - 1.075).abs() < 1e-15);
    }

    #[test]
    fn no_units() {
        let r = rdm(&[], 3, 0, RdmMethod::Correlation);
        assert_eq!(r.constant_patterns, [0, 1, 2]);
        assert!(r.data.iter().all(|v| v.is_nan()));
        assert_eq!(rdm(&[], 3, 0, RdmMethod::Euclidean).data, [0.0; 9]);
    }

    #[test]
    fn euclidean_duplicate_rows_are_zero() {
        let x = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 0.0, 0.0, 1.0];
        let r = rdm(&x, 3, 3, RdmMethod::Euclidean);
        assert_eq!(r.data[1], 0.0);
        assert!((r.data[2] - (1.0f64 + 4.0 + 4.0).sqrt()).abs() < 1e-15);
    }
}
