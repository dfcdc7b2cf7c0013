//! PCA exactly as scikit-learn defines it, for the Algonauts devkit's
//! `IncrementalPCA(n_components=100).partial_fit(batch)` loop (streamed, so
//! that 8857 × 46656 features never sit in memory at once) and for
//! `PCA(n_components, svd_solver="full")`.
//!
//! Both compute in f64. scikit-learn's incremental fit runs its first batch in
//! float32 and every later one in float64 (the mean-correction row is f64, so
//! `np.vstack` promotes the stacked matrix); runner's results are therefore at
//! least as accurate, and agree with scikit-learn's to the float32 rounding of
//! the input (see the tests for the measured differences).
//!
//! The SVD of the stacked (k + b + 1) × p matrix A is taken through its small
//! Gram matrix A Aᵀ: one (k+b+1)² eigendecomposition plus two skinny matmuls,
//! instead of LAPACK's bidiagonalisation of a 201 × 46656 matrix. Squaring the
//! matrix squares its condition number, so the route is only used when the
//! k-th singular value is within [`GRAM_MIN_RATIO`] of the first; otherwise the
//! SVD is taken directly.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

/// The Gram route's relative error in the k-th component grows like
/// ε·(σ₁/σ_k)²; with σ_k/σ₁ ≥ 1e-3 that is ≤ 1e-10, far below the float32
/// rounding scikit-learn's results carry. Below it, a direct SVD is used.
pub const GRAM_MIN_RATIO: f64 = 1e-3;

/// Features per work item in the column statistics: 100 rows × 512 features
/// of f32 stay in L2 across the three passes over them.
const FEATURE_CHUNK: usize = 512;

/// Rows per block when projecting: bounds the f64 copy of one feature slab
/// to SLAB × 256 values.
const TRANSFORM_BLOCK: usize = 256;

/// Rows of the long dimension per task in [`matmul_tn`] and [`matmul_tall`]:
/// a 4096 × 201 f64 slab (6.6 MB) is one task's worth of a sequential kernel.
const SLAB: usize = 4096;

/// Partial products [`matmul_tn`] may hold at once (f64 values): beyond this
/// the output is large enough for faer's own parallelism.
const MAX_PARTIALS: usize = 1 << 23;

fn par() -> Par {
    Par::rayon(0)
}

/// `dst = lhsᵀ · rhs` for tall `lhs` (p × a) and `rhs` (p × b), p ≫ a, b;
/// with `lower`, only the lower triangle (of a symmetric result: half the
/// flops), the rest of `dst` being zeroed.
///
/// faer parallelises a product over blocks of its output, and a 201 × 201 or
/// 100 × 100 output has too few: at p = 46656 two threads ran slower than
/// one. Here each task multiplies one fixed slab of the p rows sequentially
/// and the partial products are added in slab order (fixed slabs, so the
/// result does not depend on the number of threads).
pub(super) fn matmul_tn(
    mut dst: MatMut<'_, f64>,
    lhs: MatRef<'_, f64>,
    rhs: MatRef<'_, f64>,
    lower: bool,
) {
    let (p, a, b) = (lhs.nrows(), lhs.ncols(), rhs.ncols());
    let product = |mut g: MatMut<'_, f64>, l: MatRef<'_, f64>, r: MatRef<'_, f64>, par: Par| {
        if lower {
            g.fill(0.0);
            triangular::matmul(
                g,
                BlockStructure::TriangularLower,
                Accum::Replace,
                l.transpose(),
                BlockStructure::Rectangular,
                r,
                BlockStructure::Rectangular,
                1.0,
                par,
            );
        } else {
            matmul(g, Accum::Replace, l.transpose(), r, 1.0, par);
        }
    };
    let slabs = p.div_ceil(SLAB);
    if slabs < 2 || slabs * a * b > MAX_PARTIALS {
        product(dst, lhs, rhs, par());
        return;
    }
    let partials: Vec<Mat<f64>> = (0..slabs)
        .into_par_iter()
        .map(|s| {
            let (r0, len) = (s * SLAB, SLAB.min(p - s * SLAB));
            let mut g = Mat::<f64>::zeros(a, b);
            product(
                g.as_mut(),
                lhs.subrows(r0, len),
                rhs.subrows(r0, len),
                Par::Seq,
            );
            g
        })
        .collect();
    dst.copy_from(&partials[0]);
    for g in &partials[1..] {
        dst += g;
    }
}

/// `dst = lhs · rhs` for a tall `lhs` (p × m) and a small `rhs` (m × k):
/// row slabs of the output in parallel, one sequential product each (faer's
/// own split of this shape reached a third of the machine's f64 rate).
pub(super) fn matmul_tall(dst: MatMut<'_, f64>, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>) {
    // 1024 rows: measured a little faster than 256 or 4096 for 46656 × 201 · 201 × 100.
    dst.par_row_chunks_mut(1024)
        .zip(lhs.par_row_chunks(1024))
        .for_each(|(d, l)| matmul(d, Accum::Replace, l, rhs, 1.0, Par::Seq));
}

/// A fitted PCA: the fields scikit-learn exposes with a trailing underscore.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    pub n_components: usize,
    pub n_features: usize,
    /// Principal axes, row-major `n_components × n_features`, signs as
    /// scikit-learn's `svd_flip(u_based_decision=False)` leaves them.
    pub components: Vec<f64>,
    pub mean: Vec<f64>,
    pub singular_values: Vec<f64>,
    pub explained_variance: Vec<f64>,
    pub explained_variance_ratio: Vec<f64>,
    pub n_samples_seen: usize,
}

impl Pca {
    /// `PCA(n_components=k, svd_solver="full").fit(x)` for a row-major
    /// `rows × cols` matrix. Holds one f64 copy of `x`.
    pub fn fit(x: &[f32], rows: usize, cols: usize, k: usize) -> Result<Pca, String> {
        check_len(x, rows, cols)?;
        if k > rows.min(cols) {
            return Err(format!(
                "n_components={k} must be between 0 and min(n_samples, n_features)={} \
                 with svd_solver='full'",
                rows.min(cols)
            ));
        }
        check_finite(x)?;
        let mean = column_means(x, rows, cols);
        let mut xc = vec![0.0f64; rows * cols];
        xc.par_chunks_mut(cols.max(1))
            .zip(x.par_chunks(cols.max(1)))
            .for_each(|(d, s)| {
                for ((d, &s), m) in d.iter_mut().zip(s).zip(&mean) {
                    *d = s as f64 - m;
                }
            });
        // scikit-learn divides by the sum of all explained variances, i.e. by
        // ‖X_c‖²_F/(n−1); summing the squares directly is the same number
        // without needing every singular value.
        let total: f64 = xc.par_iter().map(|v| v * v).sum();
        // Row-major n × p is column-major p × n: Aᵀ, one column per sample.
        let mut components = Vec::new();
        let sigma = top_svd(
            MatRef::from_column_major_slice(&xc, cols, rows),
            k,
            &mut components,
        )?;
        let dof = rows as f64 - 1.0;
        let sv = sigma[..k].to_vec();
        Ok(Pca {
            n_components: k,
            n_features: cols,
            components,
            mean,
            explained_variance: sv.iter().map(|s| s * s / dof).collect(),
            explained_variance_ratio: sv.iter().map(|s| s * s / total).collect(),
            singular_values: sv,
            n_samples_seen: rows,
        })
    }

    /// `(x − mean) · componentsᵀ` for a row-major `rows × n_features` batch,
    /// computed in f64 and returned row-major `rows × n_components`.
    pub fn transform(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (p, k) = (self.n_features, self.n_components);
        assert_eq!(
            x.len(),
            rows * p,
            "transform: expected {rows} × {p} values, got {}",
            x.len()
        );
        let mut out = vec![0.0f32; rows * k];
        if k == 0 || rows == 0 {
            return out;
        }
        let comps = MatRef::from_column_major_slice(&self.components, p, k);
        let slabs = p.div_ceil(SLAB);
        for (xb, ob) in x
            .chunks(TRANSFORM_BLOCK * p)
            .zip(out.chunks_mut(TRANSFORM_BLOCK * k))
        {
            let rb = xb.len() / p;
            // As `matmul_tn`, with the centring and the f64 conversion done
            // per feature slab inside each task: the f64 copy is one slab
            // (≤ 8 MB), never the whole batch.
            let partials: Vec<Mat<f64>> = (0..slabs)
                .into_par_iter()
                .map(|s| {
                    let (f0, len) = (s * SLAB, SLAB.min(p - s * SLAB));
                    let mean = &self.mean[f0..f0 + len];
                    let mut xs = vec![0.0f64; len * rb];
                    for (d, row) in xs.chunks_exact_mut(len).zip(xb.chunks_exact(p)) {
                        for ((d, &x), m) in d.iter_mut().zip(&row[f0..f0 + len]).zip(mean) {
                            *d = x as f64 - m;
                        }
                    }
                    let mut g = Mat::<f64>::zeros(k, rb);
                    matmul(
                        g.as_mut(),
                        Accum::Replace,
                        comps.subrows(f0, len).transpose(),
                        MatRef::from_column_major_slice(&xs, len, rb),
                        1.0,
                        Par::Seq,
                    );
                    g
                })
                .collect();
            // Column-major k × rb is row-major rb × k, the output layout.
            let mut sum = partials[0].clone();
            for g in &partials[1..] {
                sum += g;
            }
            for (i, o) in ob.chunks_exact_mut(k).enumerate() {
                for (j, o) in o.iter_mut().enumerate() {
                    *o = sum[(j, i)] as f32;
                }
            }
        }
        out
    }
}

/// `IncrementalPCA(n_components=k, whiten=False)` fed through `partial_fit`.
/// Holds O(k·p) state plus one stacked-matrix buffer, whatever the number of
/// batches.
#[derive(Debug, Clone)]
pub struct IncrementalPca {
    n_components: usize,
    fitted: Option<Pca>,
    var: Vec<f64>,
    /// The stacked matrix, kept between calls so that its 75 MB (at the
    /// devkit's sizes) are not faulted in again for every batch.
    scratch: Vec<f64>,
}

impl IncrementalPca {
    pub fn new(n_components: usize) -> Self {
        IncrementalPca {
            n_components,
            fitted: None,
            var: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The fit so far; `None` before the first successful `partial_fit`.
    pub fn fitted(&self) -> Option<&Pca> {
        self.fitted.as_ref()
    }

    /// scikit-learn's `var_`: per-feature population variance of all rows seen.
    pub fn var(&self) -> &[f64] {
        &self.var
    }

    /// One `partial_fit(batch)` on a row-major `rows × cols` batch. On error
    /// the state is unchanged.
    pub fn partial_fit(&mut self, batch: &[f32], rows: usize, cols: usize) -> Result<(), String> {
        let k = self.n_components;
        if k == 0 {
            return Err("n_components must be at least 1, got 0".into());
        }
        check_len(batch, rows, cols)?;
        if rows == 0 {
            return Err("partial_fit needs a batch of at least one row, got 0".into());
        }
        match &self.fitted {
            None => {
                if k > cols {
                    return Err(format!(
                        "n_components={k} invalid for n_features={cols}, need more rows than \
                         columns for IncrementalPCA processing"
                    ));
                }
                if k > rows {
                    return Err(format!(
                        "n_components={k} must be less or equal to the batch number of samples \
                         {rows} for the first partial_fit call."
                    ));
                }
            }
            Some(f) if f.n_features != cols => {
                return Err(format!(
                    "X has {cols} features, but IncrementalPCA is expecting {} features as input.",
                    f.n_features
                ));
            }
            Some(_) => {}
        }
        check_finite(batch)?;

        let p = cols;
        let last_n = self.fitted.as_ref().map_or(0, |f| f.n_samples_seen);
        let stats = incremental_mean_and_var(
            batch,
            rows,
            p,
            self.fitted
                .as_ref()
                .map(|f| (&f.mean[..], &self.var[..], last_n)),
        );
        let n_total = last_n + rows;

        // The stacked matrix, transposed (p × m, one column per row of A):
        // first batch: X − mean; later: [diag(S)·components; X − batch mean;
        // mean correction], as scikit-learn stacks it.
        let prev = self.fitted.as_ref();
        let m = match prev {
            None => rows,
            Some(_) => k + rows + 1,
        };
        self.scratch.resize(p * m, 0.0);
        let lead = prev.map_or(0, |_| k);
        let correction = (last_n as f64 / n_total as f64 * rows as f64).sqrt();
        self.scratch
            .par_chunks_mut(p)
            .enumerate()
            .for_each(|(j, col)| {
                if j < lead {
                    let f = prev.unwrap();
                    let s = f.singular_values[j];
                    for (d, c) in col.iter_mut().zip(&f.components[j * p..(j + 1) * p]) {
                        *d = s * c;
                    }
                } else if j < lead + rows {
                    let row = &batch[(j - lead) * p..(j - lead + 1) * p];
                    for ((d, &x), m) in col.iter_mut().zip(row).zip(&stats.batch_mean) {
                        *d = x as f64 - m;
                    }
                } else {
                    let f = prev.unwrap();
                    for ((d, a), b) in col.iter_mut().zip(&f.mean).zip(&stats.batch_mean) {
                        *d = correction * (a - b);
                    }
                }
            });

        // The previous components are in the stacked matrix now; their
        // buffer takes the new ones (37 MB at the devkit's sizes, which a
        // fresh allocation would page-fault in again every batch).
        let mut components = self
            .fitted
            .as_mut()
            .map(|f| std::mem::take(&mut f.components))
            .unwrap_or_default();
        let at = MatRef::from_column_major_slice(&self.scratch, p, m);
        let sigma = match top_svd(at, k, &mut components) {
            Ok(s) => s,
            Err(e) => {
                // top_svd fails before writing: the old components are intact.
                if let Some(f) = self.fitted.as_mut() {
                    f.components = components;
                }
                return Err(e);
            }
        };
        let total: f64 = stats.var.iter().map(|v| v * n_total as f64).sum();
        let dof = n_total as f64 - 1.0;
        let sv = sigma[..k].to_vec();
        self.fitted = Some(Pca {
            n_components: k,
            n_features: p,
            components,
            mean: stats.mean,
            explained_variance: sv.iter().map(|s| s * s / dof).collect(),
            explained_variance_ratio: sv.iter().map(|s| s * s / total).collect(),
            singular_values: sv,
            n_samples_seen: n_total,
        });
        self.var = stats.var;
        Ok(())
    }

    /// [`Pca::transform`] with the current fit.
    ///
    /// # Panics
    /// Before the first successful `partial_fit`, or on a batch whose length
    /// is not `rows × n_features`.
    pub fn transform(&self, batch: &[f32], rows: usize) -> Vec<f32> {
        self.fitted
            .as_ref()
            .expect("IncrementalPca::transform before any partial_fit")
            .transform(batch, rows)
    }
}

fn check_len(x: &[f32], rows: usize, cols: usize) -> Result<(), String> {
    if Some(x.len()) != rows.checked_mul(cols) {
        return Err(format!(
            "expected rows × cols = {rows} × {cols} values, got {}",
            x.len()
        ));
    }
    Ok(())
}

/// scikit-learn's `validate_data` refuses NaN and infinity; so do we, before
/// they poison the running mean for every later batch.
fn check_finite(x: &[f32]) -> Result<(), String> {
    if x.par_iter().any(|v| !v.is_finite()) {
        return Err("input contains NaN or infinity".into());
    }
    Ok(())
}

/// Column means of a row-major f32 matrix, accumulated in f64.
pub(super) fn column_means(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut mean = vec![0.0f64; cols];
    mean.par_chunks_mut(FEATURE_CHUNK)
        .enumerate()
        .for_each(|(c, out)| {
            let f0 = c * FEATURE_CHUNK;
            let w = out.len();
            for row in x.chunks_exact(cols).take(rows) {
                for (o, &v) in out.iter_mut().zip(&row[f0..f0 + w]) {
                    *o += v as f64;
                }
            }
            for o in out {
                *o /= rows as f64;
            }
        });
    mean
}

struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
    batch_mean: Vec<f64>,
}

/// scikit-learn's `_incremental_mean_and_var` (Chan, Golub & LeVeque's
/// pairwise update with the corrected two-pass batch variance), in f64 as it
/// is there, plus the batch's own mean that the stacking needs.
fn incremental_mean_and_var(
    x: &[f32],
    rows: usize,
    p: usize,
    last: Option<(&[f64], &[f64], usize)>,
) -> Stats {
    let mut mean = vec![0.0f64; p];
    let mut var = vec![0.0f64; p];
    let mut batch_mean = vec![0.0f64; p];
    let b = rows as f64;
    let last_n = last.map_or(0.0, |l| l.2 as f64);
    let n_total = last_n + b;
    mean.par_chunks_mut(FEATURE_CHUNK)
        .zip(var.par_chunks_mut(FEATURE_CHUNK))
        .zip(batch_mean.par_chunks_mut(FEATURE_CHUNK))
        .enumerate()
        .for_each(|(c, ((mean, var), bm))| {
            let f0 = c * FEATURE_CHUNK;
            let w = mean.len();
            let range = f0..f0 + w;
            let mut sum = vec![0.0f64; w];
            for row in x.chunks_exact(p) {
                for (s, &v) in sum.iter_mut().zip(&row[range.clone()]) {
                    *s += v as f64;
                }
            }
            for (t, s) in bm.iter_mut().zip(&sum) {
                *t = s / b;
            }
            let mut corr = vec![0.0f64; w];
            let mut sq = vec![0.0f64; w];
            for row in x.chunks_exact(p) {
                for (((c, q), &v), t) in corr
                    .iter_mut()
                    .zip(&mut sq)
                    .zip(&row[range.clone()])
                    .zip(&*bm)
                {
                    let d = v as f64 - t;
                    *c += d;
                    *q += d * d;
                }
            }
            for j in 0..w {
                let new_unnorm = sq[j] - corr[j] * corr[j] / b;
                let (last_mean, last_var) = match last {
                    Some((m, v, _)) => (m[f0 + j], v[f0 + j]),
                    None => (0.0, 0.0),
                };
                let last_sum = last_mean * last_n;
                mean[j] = (last_sum + sum[j]) / n_total;
                let unnorm = if last_n == 0.0 {
                    new_unnorm
                } else {
                    let last_over_new = last_n / b;
                    last_var * last_n
                        + new_unnorm
                        + last_over_new / n_total * (last_sum / last_over_new - sum[j]).powi(2)
                };
                var[j] = unnorm / n_total;
            }
        });
    Stats {
        mean,
        var,
        batch_mean,
    }
}

/// All min(m, p) singular values (nonincreasing) of the m × p matrix A,
/// given as its transpose `at` (p × m), and into `v` its first k right
/// singular vectors, column-major p × k (= row-major k × p, scikit-learn's
/// `components_` layout), sign-flipped. On error `v` is untouched.
fn top_svd(at: MatRef<'_, f64>, k: usize, v: &mut Vec<f64>) -> Result<Vec<f64>, String> {
    let (p, m) = (at.nrows(), at.ncols());
    let d = p.min(m);
    assert!(k <= d, "top_svd: k = {k} > min(m, p) = {d}");

    // Gram matrix of the short side: A Aᵀ (m × m) when A is wide, AᵀA
    // (p × p) when it is tall. Only the lower triangle is formed and read.
    let wide = m <= p;
    let mut g = Mat::<f64>::zeros(d, d);
    if wide {
        matmul_tn(g.as_mut(), at, at, true);
    } else {
        triangular::matmul(
            g.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            at,
            BlockStructure::Rectangular,
            at.transpose(),
            BlockStructure::Rectangular,
            1.0,
            par(),
        );
    }
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| format!("eigendecomposition of the Gram matrix failed: {e:?}"))?;
    let s = evd.S();
    // Eigenvalues come nondecreasing; rounding can leave the null ones
    // slightly negative.
    let mut sigma: Vec<f64> = (0..d).map(|i| s[d - 1 - i].max(0.0).sqrt()).collect();
    let gram_ok = k == 0
        || (sigma[k - 1] >= GRAM_MIN_RATIO * sigma[0] && sigma.iter().all(|x| x.is_finite()));

    if gram_ok {
        let u = evd.U();
        if wide {
            // V_k = Aᵀ U_k Σ_k⁻¹.
            let uk = Mat::<f64>::from_fn(m, k, |i, j| u[(i, d - 1 - j)] / sigma[j]);
            v.resize(p * k, 0.0);
            matmul_tall(
                MatMut::from_column_major_slice_mut(v, p, k),
                at,
                uk.as_ref(),
            );
        } else {
            v.resize(p * k, 0.0);
            for j in 0..k {
                for i in 0..p {
                    v[j * p + i] = u[(i, d - 1 - j)];
                }
            }
        }
    } else {
        // Aᵀ = W Σ Zᵀ, so A's right singular vectors are W's columns.
        let svd = at
            .thin_svd()
            .map_err(|e| format!("SVD of the stacked matrix failed: {e:?}"))?;
        let (w, s) = (svd.U(), svd.S());
        sigma = (0..d).map(|i| s[i]).collect();
        v.resize(p * k, 0.0);
        for j in 0..k {
            for i in 0..p {
                v[j * p + i] = w[(i, j)];
            }
        }
    }
    if p > 0 {
        v.par_chunks_exact_mut(p).for_each(flip_sign);
    }
    Ok(sigma)
}

/// `svd_flip(u_based_decision=False)`: the entry of largest magnitude (the
/// first, on ties, as `np.argmax`) of each row of Vt becomes positive.
fn flip_sign(row: &mut [f64]) {
    let mut best = 0;
    for (i, x) in row.iter().enumerate() {
        if x.abs() > row[best].abs() {
            best = i;
        }
    }
    let sign = match row[best] {
        x if x > 0.0 => 1.0,
        x if x < 0.0 => -1.0,
        _ => 0.0,
    };
    for x in row {
        *x *= sign;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fx(name: &str) -> Vec<f64> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/algonauts_numerics")
            .join(format!("{name}.npy"));
        crate::npy::read_f64(&p).unwrap().data
    }

    fn fx32(name: &str) -> (Vec<f32>, usize, usize) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/algonauts_numerics")
            .join(format!("{name}.npy"));
        let a = crate::npy::read_f32(&p).unwrap();
        let (r, c) = a.rows_cols();
        (a.data, r, c)
    }

    fn max_abs(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / y.abs())
            .fold(0.0, f64::max)
    }

    fn scale(a: &[f64]) -> f64 {
        a.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    /// The fixture's train rows, fed in `ipca_order` in batches of 100.
    fn fit_fixture_ipca() -> IncrementalPca {
        let (x, n, p) = fx32("features_train");
        let order: Vec<usize> = fx("ipca_order").iter().map(|&i| i as usize).collect();
        let mut ipca = IncrementalPca::new(20);
        for idx in order.chunks(100) {
            let batch: Vec<f32> = idx
                .iter()
                .flat_map(|&i| x[i * p..(i + 1) * p].iter().copied())
                .collect();
            ipca.partial_fit(&batch, idx.len(), p).unwrap();
        }
        assert_eq!(ipca.fitted().unwrap().n_samples_seen, n);
        ipca
    }

    #[test]
    fn incremental_pca_matches_sklearn() {
        let ipca = fit_fixture_ipca();
        let f = ipca.fitted().unwrap();
        let errs = [
            (
                "mean",
                max_abs(&f.mean, &fx("ipca_mean")) / scale(&fx("ipca_mean")),
            ),
            ("var", max_rel(ipca.var(), &fx("ipca_var"))),
            (
                "sv64",
                max_rel(&f.singular_values, &fx("ipca64_singular_values")),
            ),
            ("comp64", max_abs(&f.components, &fx("ipca64_components"))),
            (
                "sv",
                max_rel(&f.singular_values, &fx("ipca_singular_values")),
            ),
            (
                "ev",
                max_rel(&f.explained_variance, &fx("ipca_explained_variance")),
            ),
            (
                "evr",
                max_rel(
                    &f.explained_variance_ratio,
                    &fx("ipca_explained_variance_ratio"),
                ),
            ),
            ("comp", max_abs(&f.components, &fx("ipca_components"))),
        ];
        eprintln!("{errs:?}");
        for (name, tol) in [
            // scikit-learn accumulates mean and variance in f64 too: only the
            // summation order differs.
            ("mean", 1e-13),
            ("var", 1e-12),
            // Against scikit-learn on the float64 cast (no float32 anywhere):
            // the Gram route costs ε·(σ₁/σ₂₀)² ≈ 7e-15 on σ and
            // ε·σ₁²/(σ₂₀·gap) ≈ 7e-14 on components; measured 8.5e-15 / 5.4e-15.
            ("sv64", 1e-12),
            ("comp64", 1e-11),
            // Against the devkit's float32 input: scikit-learn's first batch
            // is a float32 SVD (ε₃₂ = 6e-8, times σ₁/gap ≈ 10 for components),
            // which later batches carry along; measured sv 2.6e-7, ev/evr
            // 5.2e-7 (σ² doubles it), components 3.5e-7.
            ("sv", 1e-6),
            ("ev", 2e-6),
            ("evr", 2e-6),
            ("comp", 2e-6),
        ] {
            let e = errs.iter().find(|e| e.0 == name).unwrap().1;
            assert!(e <= tol, "{name}: error {e:e} > {tol:e}");
        }
    }

    #[test]
    fn incremental_pca_transform_matches_sklearn() {
        let ipca = fit_fixture_ipca();
        for split in ["train", "val", "test"] {
            let (x, n, _) = fx32(&format!("features_{split}"));
            let ours: Vec<f64> = ipca.transform(&x, n).iter().map(|&v| v as f64).collect();
            let want = fx(&format!("ipca_transform_{split}"));
            let e = max_abs(&ours, &want) / scale(&want);
            eprintln!("transform {split}: {e:e}");
            // Relative to the largest score: this is scikit-learn's own
            // float32 noise (its float32 and float64 fits differ by 1.6e-6
            // here), not ours; measured 1.6e-6–2.0e-6.
            assert!(e < 1e-5, "{split}: {e:e}");
        }
        let (x, n, _) = fx32("features_val");
        let ours: Vec<f64> = ipca.transform(&x, n).iter().map(|&v| v as f64).collect();
        let want = fx("ipca64_transform_val");
        let e = max_abs(&ours, &want) / scale(&want);
        // Against the all-f64 reference only our f32 output rounding remains.
        assert!(e < 1e-7, "val vs f64 reference: {e:e}");
    }

    #[test]
    fn full_pca_matches_sklearn() {
        let (x, n, p) = fx32("features_train");
        let pca = Pca::fit(&x, n, p, 20).unwrap();
        assert_eq!(
            (pca.n_samples_seen, pca.n_features, pca.n_components),
            (n, p, 20)
        );
        let errs = [
            (
                "sv64",
                max_rel(&pca.singular_values, &fx("pca64_singular_values")),
            ),
            ("comp64", max_abs(&pca.components, &fx("pca64_components"))),
            (
                "mean",
                max_abs(&pca.mean, &fx("pca_mean")) / scale(&fx("pca_mean")),
            ),
            (
                "sv",
                max_rel(&pca.singular_values, &fx("pca_singular_values")),
            ),
            (
                "ev",
                max_rel(&pca.explained_variance, &fx("pca_explained_variance")),
            ),
            (
                "evr",
                max_rel(
                    &pca.explained_variance_ratio,
                    &fx("pca_explained_variance_ratio"),
                ),
            ),
            ("comp", max_abs(&pca.components, &fx("pca_components"))),
        ];
        eprintln!("{errs:?}");
        for (name, tol) in [
            // f64 vs f64: as for the incremental fit; measured 3.3e-15 / 4.7e-15.
            ("sv64", 1e-12),
            ("comp64", 1e-11),
            // scikit-learn's full solver stays float32 throughout (np.mean in
            // float32, float32 gesdd): ε₃₂·σ₁/σ_k ≈ 5e-7 on the smallest
            // singular values, components ε₃₂·σ₁/gap; measured mean 4.9e-7,
            // sv 9.6e-7, ev 1.9e-6, evr 1.3e-6, components 5.5e-7.
            ("mean", 2e-6),
            ("sv", 5e-6),
            ("ev", 1e-5),
            ("evr", 1e-5),
            ("comp", 5e-6),
        ] {
            let e = errs.iter().find(|e| e.0 == name).unwrap().1;
            assert!(e <= tol, "{name}: error {e:e} > {tol:e}");
        }
        let (xv, nv, _) = fx32("features_val");
        let ours: Vec<f64> = pca.transform(&xv, nv).iter().map(|&v| v as f64).collect();
        let want = fx("pca_transform_val");
        let e = max_abs(&ours, &want) / scale(&want);
        eprintln!("pca transform val: {e:e}");
        // float32 components and a float32 product on scikit-learn's side;
        // measured 2.0e-6.
        assert!(e < 1e-5, "{e:e}");
    }

    /// scikit-learn's statistics are exact updates: any split of the same
    /// rows gives the mean and variance of all of them.
    #[test]
    fn one_batch_or_several_give_the_same_mean_and_var() {
        let (x, n, p) = fx32("features_train");
        let mut one = IncrementalPca::new(20);
        one.partial_fit(&x, n, p).unwrap();
        let mut several = IncrementalPca::new(20);
        for (rows, chunk) in [(100, 0..100), (1, 100..101), (99, 101..200), (57, 200..257)] {
            several
                .partial_fit(&x[chunk.start * p..chunk.end * p], rows, p)
                .unwrap();
        }
        let (a, b) = (one.fitted().unwrap(), several.fitted().unwrap());
        assert_eq!((a.n_samples_seen, b.n_samples_seen), (n, n));
        // Two-pass statistics of all rows, directly.
        let mean: Vec<f64> = (0..p)
            .map(|j| (0..n).map(|i| x[i * p + j] as f64).sum::<f64>() / n as f64)
            .collect();
        let var: Vec<f64> = (0..p)
            .map(|j| {
                (0..n)
                    .map(|i| (x[i * p + j] as f64 - mean[j]).powi(2))
                    .sum::<f64>()
                    / n as f64
            })
            .collect();
        // Only the f64 summation order differs (257 terms of O(1)).
        for (name, got) in [("one", a), ("several", b)] {
            let em = max_abs(&got.mean, &mean) / scale(&mean);
            assert!(em < 1e-14, "{name} mean: {em:e}");
        }
        assert!(max_rel(one.var(), &var) < 1e-13);
        assert!(
            max_rel(several.var(), &var) < 1e-12,
            "{:e}",
            max_rel(several.var(), &var)
        );
        // A single batch is an exact PCA: the same fit as the full solver.
        let full = Pca::fit(&x, n, p, 20).unwrap();
        assert!(max_abs(&a.components, &full.components) < 1e-10);
        assert!(max_rel(&a.singular_values, &full.singular_values) < 1e-12);
    }

    #[test]
    fn first_batch_smaller_than_k_is_refused() {
        let mut ipca = IncrementalPca::new(20);
        let err = ipca.partial_fit(&[0.5; 10 * 30], 10, 30).unwrap_err();
        assert_eq!(
            err,
            "n_components=20 must be less or equal to the batch number of samples 10 for the \
             first partial_fit call."
        );
        assert!(ipca.fitted().is_none());
        let err = ipca.partial_fit(&[0.5; 25 * 10], 25, 10).unwrap_err();
        assert!(
            err.starts_with("n_components=20 invalid for n_features=10"),
            "{err}"
        );
        // After a first batch, a later batch may be small but must keep the width.
        let x: Vec<f32> = (0..25 * 30).map(|i| ((i * 7919) % 101) as f32).collect();
        ipca.partial_fit(&x, 25, 30).unwrap();
        ipca.partial_fit(&x[..3 * 30], 3, 30).unwrap();
        let err = ipca.partial_fit(&x[..3 * 29], 3, 29).unwrap_err();
        assert_eq!(
            err,
            "X has 29 features, but IncrementalPCA is expecting 30 features as input."
        );
        let err = ipca.partial_fit(&[f32::NAN; 30], 1, 30).unwrap_err();
        assert!(err.contains("NaN"), "{err}");
        assert_eq!(ipca.fitted().unwrap().n_samples_seen, 28);
    }

    /// Tall stacked matrices (few features) take the p × p Gram route; with
    /// k = p nothing is truncated, so the incremental fit is exact.
    #[test]
    fn tall_batches_with_all_components_are_exact() {
        let (x, n, _) = fx32("features_train");
        let p = 6;
        let x: Vec<f32> = (0..n)
            .flat_map(|i| x[i * 300..i * 300 + p].to_vec())
            .collect();
        let mut ipca = IncrementalPca::new(p);
        for (b, chunk) in x.chunks(20 * p).enumerate() {
            ipca.partial_fit(chunk, chunk.len() / p, p)
                .unwrap_or_else(|e| panic!("batch {b}: {e}"));
        }
        let full = Pca::fit(&x, n, p, p).unwrap();
        let f = ipca.fitted().unwrap();
        assert!(max_rel(&f.singular_values, &full.singular_values) < 1e-10);
        assert!(max_abs(&f.components, &full.components) < 1e-8);
        assert!(max_abs(&f.explained_variance_ratio, &full.explained_variance_ratio) < 1e-12);
        // All variance is kept.
        assert!((f.explained_variance_ratio.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    /// Where σ_k ≪ σ₁ the Gram route would be inaccurate: the direct SVD
    /// takes over and the components stay orthonormal.
    #[test]
    fn ill_conditioned_batches_fall_back_to_a_direct_svd() {
        // Rank-3 rows (plus a 1e-7 perturbation), k = 5: σ₄, σ₅ ≈ 1e-7·σ₁.
        let (p, n, k) = (40, 30, 5);
        let x: Vec<f32> = (0..n * p)
            .map(|t| {
                let (i, j) = ((t / p) as f32, (t % p) as f32);
                (i * 0.3).sin() * (j * 0.2).cos()
                    + (i * 0.7).cos() * (j * 0.05).sin()
                    + 0.5 * (i * 1.3).sin() * (j * 0.9).sin()
                    + 1e-7 * ((t * 2654435761) % 1000) as f32
            })
            .collect();
        let pca = Pca::fit(&x, n, p, k).unwrap();
        assert!(pca.singular_values[k - 1] < GRAM_MIN_RATIO * pca.singular_values[0]);
        let mut ortho = 0.0f64;
        for a in 0..k {
            for b in 0..k {
                let dot: f64 = (0..p)
                    .map(|i| pca.components[a * p + i] * pca.components[b * p + i])
                    .sum();
                ortho = ortho.max((dot - f64::from(u8::from(a == b))).abs());
            }
        }
        assert!(ortho < 1e-12, "orthonormality error {ortho:e}");
    }

    /// The slabbed products against faer's plain one, at sizes that take
    /// the slab path (p > 2·SLAB).
    #[test]
    fn slab_products_match_plain_matmul() {
        let (p, a, b) = (2 * SLAB + 123, 17, 9);
        assert!(p.div_ceil(SLAB) * a * b <= MAX_PARTIALS);
        let val = |i: usize| ((i * 2654435761) % 1009) as f64 / 1009.0 - 0.5;
        let l = Mat::<f64>::from_fn(p, a, |i, j| val(i * a + j));
        let r = Mat::<f64>::from_fn(p, b, |i, j| val(7 + i * b + j));
        let mut want = Mat::<f64>::zeros(a, b);
        matmul(
            want.as_mut(),
            Accum::Replace,
            l.transpose(),
            r.as_ref(),
            1.0,
            Par::Seq,
        );
        let mut got = Mat::<f64>::zeros(a, b);
        matmul_tn(got.as_mut(), l.as_ref(), r.as_ref(), false);
        // Sums of ~8000 O(0.25) terms in a different order: rounding only.
        assert!(
            (&got - &want).norm_max() < 1e-12,
            "{:e}",
            (&got - &want).norm_max()
        );
        let mut want = Mat::<f64>::zeros(a, a);
        matmul(
            want.as_mut(),
            Accum::Replace,
            l.transpose(),
            l.as_ref(),
            1.0,
            Par::Seq,
        );
        let mut got = Mat::<f64>::from_fn(a, a, |_, _| f64::NAN);
        matmul_tn(got.as_mut(), l.as_ref(), l.as_ref(), true);
        for i in 0..a {
            for j in 0..a {
                let w = if j <= i { want[(i, j)] } else { 0.0 };
                assert!(
                    (got[(i, j)] - w).abs() < 1e-12,
                    "({i}, {j}): {} vs {w}",
                    got[(i, j)]
                );
            }
        }

        let s = Mat::<f64>::from_fn(a, b, |i, j| val(3 + i * b + j));
        let mut want = Mat::<f64>::zeros(p, b);
        matmul(
            want.as_mut(),
            Accum::Replace,
            l.as_ref(),
            s.as_ref(),
            1.0,
            Par::Seq,
        );
        let mut got = Mat::<f64>::zeros(p, b);
        matmul_tall(got.as_mut(), l.as_ref(), s.as_ref());
        assert!(
            (&got - &want).norm_max() < 1e-14,
            "{:e}",
            (&got - &want).norm_max()
        );
    }

    /// Wide batches are projected slab by slab; against the product written out.
    #[test]
    fn transform_of_wide_batches_matches_the_direct_product() {
        let (p, k, rows) = (2 * SLAB + 77, 3, TRANSFORM_BLOCK + 5);
        let val = |i: usize| ((i * 2654435761) % 1009) as f64 / 1009.0 - 0.5;
        let pca = Pca {
            n_components: k,
            n_features: p,
            components: (0..k * p).map(val).collect(),
            mean: (0..p).map(|i| val(i + 11)).collect(),
            singular_values: vec![1.0; k],
            explained_variance: vec![1.0; k],
            explained_variance_ratio: vec![0.1; k],
            n_samples_seen: 10,
        };
        let x: Vec<f32> = (0..rows * p).map(|i| val(i + 5) as f32).collect();
        let got = pca.transform(&x, rows);
        for i in 0..rows {
            for j in 0..k {
                let want: f64 = (0..p)
                    .map(|f| (x[i * p + f] as f64 - pca.mean[f]) * pca.components[j * p + f])
                    .sum();
                // f32 output rounding of a value of size ~10.
                assert!((got[i * k + j] as f64 - want).abs() < 1e-5 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn signs_follow_svd_flip() {
        let mut row = [0.1, -0.7, 0.7, 0.2];
        flip_sign(&mut row);
        // |−0.7| = |0.7|: the first one decides, as np.argmax does.
        assert_eq!(row, [-0.1, 0.7, -0.7, -0.2]);
    }
}
