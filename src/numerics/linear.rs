//! The devkit's encoding model and its score: `LinearRegression().fit(X, Y)`
//! (ordinary least squares with an intercept, one model per vertex) and
//! `scipy.stats.pearsonr` between predicted and measured responses, vertex by
//! vertex.
//!
//! The devkit regresses 19 004 + 20 544 vertices on 100 PCA features, so the
//! cost is the one product of the k × n pseudo-inverse with Y; the
//! pseudo-inverse itself comes from a thin SVD of the centred n × k features
//! (not the normal equations), which keeps the rank decision on σ rather than
//! σ² and so decides rank deficiency as LAPACK's `gelsd` does.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::pca::column_means;

/// `LinearRegression(tol=1e-6)` passes `cond=tol` to `scipy.linalg.lstsq`:
/// singular values at or below `RCOND · σ₁` count as zero, which yields the
/// minimum-norm solution for rank-deficient features.
pub const RCOND: f64 = 1e-6;

/// Rows of Y converted to f64 at a time: bounds the f64 copy (42 MB for the
/// devkit's 20 544 right-hemisphere vertices) while keeping the inner
/// dimension of each product long enough for full matmul speed.
const ROW_BLOCK: usize = 256;

/// Columns per work item when scoring: each row's slice of them is contiguous.
const COLUMN_CHUNK: usize = 256;

fn par() -> Par {
    Par::rayon(0)
}

/// A fitted `LinearRegression()` (fit_intercept=True, multi-output).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearFit {
    pub n_features: usize,
    pub n_targets: usize,
    /// Row-major `n_features × n_targets` (scikit-learn's `coef_.T`).
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    /// scikit-learn's `rank_` and `singular_` (of the centred features).
    pub rank: usize,
    pub singular_values: Vec<f64>,
}

impl LinearFit {
    /// Least squares of `y` (row-major `n × v`) on `x` (row-major `n × k`)
    /// with an intercept; the minimum-norm solution when the centred `x` is
    /// rank-deficient.
    ///
    /// # Panics
    /// If the slices are not `n × k` and `n × v`, or the SVD fails to converge
    /// (only on non-finite input).
    pub fn fit(x: &[f32], n: usize, k: usize, y: &[f32], v: usize) -> LinearFit {
        assert_eq!(x.len(), n * k, "fit: x must be {n} × {k}");
        assert_eq!(y.len(), n * v, "fit: y must be {n} × {v}");
        let x_mean = column_means(x, n, k);
        let y_mean = column_means(y, n, v);
        let mut coef = vec![0.0f64; k * v];
        let (rank, singular_values) = if n == 0 || k == 0 {
            (0, Vec::new())
        } else {
            let xc = Mat::<f64>::from_fn(n, k, |i, j| x[i * k + j] as f64 - x_mean[j]);
            let svd = xc
                .thin_svd()
                .expect("SVD of the centred features did not converge");
            let (u, s, w) = (svd.U(), svd.S(), svd.V());
            let sv: Vec<f64> = (0..s.dim()).map(|i| s[i]).collect();
            let rank = sv.iter().filter(|&&s| s > RCOND * sv[0]).count();
            // Pseudo-inverse, transposed: Pᵀ = U_r Σ_r⁻¹ V_rᵀ (n × k).
            let us = Mat::<f64>::from_fn(n, rank, |i, j| u[(i, j)] / sv[j]);
            let mut pt = Mat::<f64>::zeros(n, k);
            matmul(
                pt.as_mut(),
                Accum::Replace,
                us.as_ref(),
                w.subcols(0, rank).transpose(),
                1.0,
                par(),
            );
            // Bᵀ = Σ over row blocks of Y_blockᵀ · Pᵀ[block]; column-major
            // v × k is the row-major k × v layout of `coef`.
            let mut yb = vec![0.0f64; ROW_BLOCK.min(n) * v];
            for (b, ys) in y.chunks(ROW_BLOCK * v.max(1)).enumerate() {
                let rb = if v == 0 { 0 } else { ys.len() / v };
                if rb == 0 {
                    continue;
                }
                yb[..rb * v]
                    .par_iter_mut()
                    .zip(ys.par_iter())
                    .for_each(|(d, &s)| *d = s as f64);
                matmul(
                    MatMut::from_column_major_slice_mut(&mut coef, v, k),
                    if b == 0 { Accum::Replace } else { Accum::Add },
                    MatRef::from_column_major_slice(&yb[..rb * v], v, rb),
                    pt.as_ref().subrows(b * ROW_BLOCK, rb),
                    1.0,
                    par(),
                );
            }
            // P·(Y − 1ȳᵀ) = P·Y − (P·1)ȳᵀ: centring Y without a copy of it.
            // (P·1 vanishes in exact arithmetic, since the columns of X_c sum
            // to zero; this removes its rounding residue exactly.)
            for j in 0..k {
                let p1: f64 = (0..n).map(|i| pt[(i, j)]).sum();
                for (c, m) in coef[j * v..(j + 1) * v].iter_mut().zip(&y_mean) {
                    *c -= p1 * m;
                }
            }
            (rank, sv)
        };
        // Column-major v × k → row-major k × v is the same buffer: `coef[j*v + c]`
        // is B[j, c].
        let intercept = (0..v)
            .map(|c| y_mean[c] - (0..k).map(|j| x_mean[j] * coef[j * v + c]).sum::<f64>())
            .collect();
        LinearFit {
            n_features: k,
            n_targets: v,
            coef,
            intercept,
            rank,
            singular_values,
        }
    }

    /// `x · coef + intercept` for row-major `x` (`n × n_features`), computed
    /// in f64, returned row-major `n × n_targets`.
    pub fn predict(&self, x: &[f32], n: usize) -> Vec<f32> {
        let (k, v) = (self.n_features, self.n_targets);
        assert_eq!(x.len(), n * k, "predict: x must be {n} × {k}");
        let mut out = vec![0.0f32; n * v];
        if n == 0 || v == 0 {
            return out;
        }
        let bt = MatRef::from_column_major_slice(&self.coef, v, k);
        let block = ROW_BLOCK.min(n);
        let mut o = vec![0.0f64; v * block];
        for (b, ob) in out.chunks_mut(block * v).enumerate() {
            let rb = ob.len() / v;
            let xs = &x[b * block * k..(b * block + rb) * k];
            let xb = Mat::<f64>::from_fn(k, rb, |j, i| xs[i * k + j] as f64);
            // Ŷᵀ (v × rb, column-major) is the row-major rb × v output block.
            matmul(
                MatMut::from_column_major_slice_mut(&mut o[..rb * v], v, rb),
                Accum::Replace,
                bt,
                xb.as_ref(),
                1.0,
                par(),
            );
            ob.par_chunks_mut(v)
                .zip(o.par_chunks(v))
                .for_each(|(d, s)| {
                    for ((d, s), c) in d.iter_mut().zip(s).zip(&self.intercept) {
                        *d = (s + c) as f32;
                    }
                });
        }
        out
    }
}

/// `scipy.stats.pearsonr(pred[:, j], truth[:, j]).statistic` for every column
/// of two row-major `n × v` matrices, in f64 (scipy computes in the inputs'
/// float32). As in scipy: NaN where either column is constant (scipy warns),
/// r clipped to [−1, 1], and rounded to ±1 when n = 2. scipy refuses n < 2;
/// here those columns are NaN.
pub fn pearson_r_columns(pred: &[f32], truth: &[f32], n: usize, v: usize) -> Vec<f64> {
    assert_eq!(
        pred.len(),
        n * v,
        "pearson_r_columns: pred must be {n} × {v}"
    );
    assert_eq!(
        truth.len(),
        n * v,
        "pearson_r_columns: truth must be {n} × {v}"
    );
    let mut r = vec![f64::NAN; v];
    if n < 2 {
        return r;
    }
    r.par_chunks_mut(COLUMN_CHUNK)
        .enumerate()
        .for_each(|(c, out)| {
            let c0 = c * COLUMN_CHUNK;
            let w = out.len();
            let cols = |i: usize| i * v + c0..i * v + c0 + w;
            let mut mx = vec![0.0f64; w];
            let mut my = vec![0.0f64; w];
            let mut const_x = vec![true; w];
            let mut const_y = vec![true; w];
            let (x0, y0) = (&pred[cols(0)], &truth[cols(0)]);
            for i in 0..n {
                let (xs, ys) = (&pred[cols(i)], &truth[cols(i)]);
                for j in 0..w {
                    mx[j] += xs[j] as f64;
                    my[j] += ys[j] as f64;
                    const_x[j] &= xs[j] == x0[j];
                    const_y[j] &= ys[j] == y0[j];
                }
            }
            for j in 0..w {
                mx[j] /= n as f64;
                my[j] /= n as f64;
            }
            let mut sxy = vec![0.0f64; w];
            let mut sxx = vec![0.0f64; w];
            let mut syy = vec![0.0f64; w];
            for i in 0..n {
                let (xs, ys) = (&pred[cols(i)], &truth[cols(i)]);
                for j in 0..w {
                    let a = xs[j] as f64 - mx[j];
                    let b = ys[j] as f64 - my[j];
                    sxy[j] += a * b;
                    sxx[j] += a * a;
                    syy[j] += b * b;
                }
            }
            for j in 0..w {
                out[j] = if const_x[j] || const_y[j] {
                    f64::NAN
                } else {
                    let r = (sxy[j] / (sxx[j].sqrt() * syy[j].sqrt())).clamp(-1.0, 1.0);
                    if n == 2 { r.round() } else { r }
                };
            }
        });
    r
}
