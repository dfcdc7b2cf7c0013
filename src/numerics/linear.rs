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

use super::pca::{column_means, matmul_tall};

/// `LinearRegression(tol=1e-6)` passes `cond=tol` to `scipy.linalg.lstsq`:
/// singular values at or below `RCOND · σ₁` count as zero, which yields the
/// minimum-norm solution for rank-deficient features.
pub const RCOND: f64 = 1e-6;

/// Rows of Y per step of the fit, and rows of X per block when predicting.
const ROW_BLOCK: usize = 256;

/// Vertices per task of the fit: a 512-vertex × 256-row f64 block of Y
/// (1 MB) is converted and multiplied while it sits in L2.
const VERTEX_CHUNK: usize = 512;

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
            // Bᵀ = Yᵀ Pᵀ (v × k; column-major v × k is the row-major k × v
            // layout of `coef`), by vertex chunks in parallel and, within
            // one, by row blocks of Y converted to f64.
            let pt = pt.as_ref();
            MatMut::from_column_major_slice_mut(&mut coef, v, k)
                .par_row_chunks_mut(VERTEX_CHUNK)
                .enumerate()
                .for_each(|(c, mut dst)| {
                    let (c0, w) = (c * VERTEX_CHUNK, dst.nrows());
                    let mut yb = vec![0.0f64; w * ROW_BLOCK.min(n)];
                    for r0 in (0..n).step_by(ROW_BLOCK) {
                        let rb = ROW_BLOCK.min(n - r0);
                        for i in 0..rb {
                            let row = &y[(r0 + i) * v + c0..(r0 + i) * v + c0 + w];
                            for (d, &s) in yb[i * w..(i + 1) * w].iter_mut().zip(row) {
                                *d = s as f64;
                            }
                        }
                        matmul(
                            dst.as_mut(),
                            if r0 == 0 { Accum::Replace } else { Accum::Add },
                            MatRef::from_column_major_slice(&yb[..w * rb], w, rb),
                            pt.subrows(r0, rb),
                            1.0,
                            Par::Seq,
                        );
                    }
                });
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
            matmul_tall(
                MatMut::from_column_major_slice_mut(&mut o[..rb * v], v, rb),
                bt,
                xb.as_ref(),
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

    /// Row-major data, rows, columns.
    type Matrix = (Vec<f32>, usize, usize);

    fn fx32(name: &str) -> Matrix {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/algonauts_numerics")
            .join(format!("{name}.npy"));
        let a = crate::npy::read_f32(&p).unwrap();
        let (r, c) = a.rows_cols();
        (a.data, r, c)
    }

    /// max |a − b| / max |b|.
    fn rel(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        d / b.iter().fold(0.0f64, |m, x| m.max(x.abs()))
    }

    /// The fixture's regressors: scikit-learn's IPCA scores rounded to f32,
    /// as runner's transform returns them (read_f32 rounds like astype).
    fn regressors() -> (Matrix, Matrix) {
        (fx32("ipca_transform_train"), fx32("ipca_transform_val"))
    }

    #[test]
    fn linear_regression_matches_sklearn() {
        let ((x, n, k), (xv, nv, _)) = regressors();
        let (y, _, v) = fx32("lin_y_train");
        let fit = LinearFit::fit(&x, n, k, &y, v);
        assert_eq!((fit.rank, fit.n_features, fit.n_targets), (k, k, v));
        let e64 = (
            rel(&fit.coef, &fx("lin64_coef")),
            rel(&fit.intercept, &fx("lin64_intercept")),
        );
        let e32 = (
            rel(&fit.coef, &fx("lin_coef")),
            rel(&fit.intercept, &fx("lin_intercept")),
        );
        let pred: Vec<f64> = fit.predict(&xv, nv).iter().map(|&p| p as f64).collect();
        let ep = rel(&pred, &fx("lin_pred_val"));
        eprintln!("coef/intercept vs f64 {e64:?}, vs f32 {e32:?}, pred {ep:e}");
        // Same inputs, both in f64: the features are well conditioned
        // (σ₁/σ₂₀ ≈ 8), so only rounding of the order of 1e-15 is left;
        // measured 4.9e-15 / 0 (the intercept is ȳ, the scores' mean is ~0).
        assert!(e64.0 < 1e-12 && e64.1 < 1e-12, "{e64:?}");
        // scikit-learn's float32 gelsd: ε₃₂·κ ≈ 5e-7 of the largest
        // coefficient; measured 9.0e-7 / 6.6e-7.
        assert!(e32.0 < 5e-6 && e32.1 < 5e-6, "{e32:?}");
        // float32 coefficients and products on scikit-learn's side; measured 8.2e-7.
        assert!(ep < 2e-6, "{ep:e}");
    }

    #[test]
    fn rank_deficient_features_give_the_minimum_norm_solution() {
        let ((x, n, k), _) = regressors();
        // A duplicate of feature 3 as feature 20.
        let x: Vec<f32> = x
            .chunks_exact(k)
            .flat_map(|r| r.iter().copied().chain([r[3]]))
            .collect();
        let (y, _, v) = fx32("lin_y_train");
        let fit = LinearFit::fit(&x, n, k + 1, &y, v);
        // The duplicate's singular value is rounding (~1e-16·σ₁), far below
        // the 1e-6·σ₁ cutoff.
        assert_eq!(fit.rank, k);
        assert!(fit.singular_values[k] < 1e-12 * fit.singular_values[0]);
        // Minimum norm: the weight is split evenly between the two copies.
        for c in 0..v {
            let (a, b) = (fit.coef[3 * v + c], fit.coef[k * v + c]);
            assert!(
                (a - b).abs() < 1e-12 * a.abs().max(1.0),
                "vertex {c}: {a} vs {b}"
            );
        }
        let e64 = (
            rel(&fit.coef, &fx("lindef64_coef")),
            rel(&fit.intercept, &fx("lindef64_intercept")),
        );
        let e32 = (
            rel(&fit.coef, &fx("lindef_coef")),
            rel(&fit.intercept, &fx("lindef_intercept")),
        );
        eprintln!("rank-deficient vs f64 {e64:?}, vs f32 {e32:?}");
        // As in the full-rank case: measured 6.0e-15 / 0 and 9.0e-7 / 6.6e-7.
        assert!(e64.0 < 1e-12 && e64.1 < 1e-12, "{e64:?}");
        assert!(e32.0 < 5e-6 && e32.1 < 5e-6, "{e32:?}");
        // And the same predictions as the full-rank model.
        let full = LinearFit::fit(&regressors().0.0, n, k, &y, v);
        let a: Vec<f64> = fit
            .predict(&x[..5 * (k + 1)], 5)
            .iter()
            .map(|&p| p as f64)
            .collect();
        let b: Vec<f64> = full
            .predict(&regressors().0.0[..5 * k], 5)
            .iter()
            .map(|&p| p as f64)
            .collect();
        assert!(rel(&a, &b) < 1e-6);
    }

    #[test]
    fn exact_linear_data_is_recovered() {
        let (n, k, v) = (50, 3, 4);
        let x: Vec<f32> = (0..n * k)
            .map(|t| ((t * 37 % 17) as f32) * 0.25 - 2.0)
            .collect();
        let b = [
            1.0, -2.0, 0.5, 3.0, 0.0, 0.25, -1.0, 2.0, 4.0, 1.5, -0.5, 0.75,
        ];
        let c = [10.0, -3.0, 0.0, 1.0];
        let y: Vec<f32> = (0..n * v)
            .map(|t| {
                let (i, c_) = (t / v, t % v);
                (c[c_]
                    + (0..k)
                        .map(|j| x[i * k + j] as f64 * b[j * v + c_])
                        .sum::<f64>()) as f32
            })
            .collect();
        let fit = LinearFit::fit(&x, n, k, &y, v);
        // y is exact in f32 here (quarter-integer arithmetic), so the fit is
        // exact up to f64 rounding.
        assert!(rel(&fit.coef, &b) < 1e-12, "{:?}", fit.coef);
        assert!(rel(&fit.intercept, &c) < 1e-12, "{:?}", fit.intercept);
        // No targets, or features that are all constant (rank 0: the
        // intercept is the mean, as lstsq's zero solution gives).
        assert!(LinearFit::fit(&x, n, k, &[], 0).predict(&x, n).is_empty());
        let flat = LinearFit::fit(&vec![2.5; n * k], n, k, &y, v);
        assert_eq!(flat.rank, 0);
        assert!(flat.coef.iter().all(|&c| c == 0.0));
        let mean: Vec<f64> = (0..v)
            .map(|t| (0..n).map(|i| y[i * v + t] as f64).sum::<f64>() / n as f64)
            .collect();
        assert!(rel(&flat.intercept, &mean) < 1e-14);
    }

    #[test]
    fn pearson_matches_scipy() {
        let (pred, n, v) = fx32("pearson_pred");
        let (truth, _, _) = fx32("pearson_truth");
        let r = pearson_r_columns(&pred, &truth, n, v);
        let (r32, r64) = (fx("pearson_r"), fx("pearson64_r"));
        let mut e = (0.0f64, 0.0f64);
        for j in 0..v {
            if j == 5 || j == 7 {
                // Constant truth (5) or prediction (7): scipy returns NaN.
                assert!(
                    r[j].is_nan() && r32[j].is_nan() && r64[j].is_nan(),
                    "column {j}"
                );
                continue;
            }
            e.0 = e.0.max((r[j] - r64[j]).abs());
            e.1 = e.1.max((r[j] - r32[j]).abs());
        }
        eprintln!("pearson vs f64 {:e}, vs f32 {:e}", e.0, e.1);
        // f64 on both sides: rounding of 31-term sums; measured 6.7e-16.
        assert!(e.0 < 1e-13, "{e:?}");
        // scipy on the float32 inputs computes in float32; measured 1.5e-7.
        assert!(e.1 < 1e-6, "{e:?}");
    }

    #[test]
    fn pearson_edge_cases_follow_scipy() {
        // n = 2: scipy rounds to exactly ±1.
        let r = pearson_r_columns(&[1.0, 5.0, 2.0, 4.0], &[0.3, 0.0, 0.7, 1.0], 2, 2);
        assert_eq!(r, vec![1.0, -1.0]);
        // n < 2 is undefined (scipy raises).
        assert!(
            pearson_r_columns(&[1.0, 2.0], &[3.0, 4.0], 1, 2)
                .iter()
                .all(|x| x.is_nan())
        );
        // Perfect (anti)correlation is clipped to [−1, 1] exactly.
        let x: Vec<f32> = (0..300)
            .map(|i| (i as f32 * 0.1).sin() * 1e3 + 7.0)
            .collect();
        let y: Vec<f32> = x.iter().map(|v| -v).collect();
        let r = pearson_r_columns(&x, &y, 300, 1);
        assert!(r[0] >= -1.0 && (r[0] + 1.0).abs() < 1e-12, "{}", r[0]);
    }
}
