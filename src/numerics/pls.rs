//! Partial least squares regression, numerically scikit-learn's
//! `PLSRegression(n_components, scale)` (1.9: `algorithm="nipals"`,
//! `mode="A"`, `deflation_mode="regression"`, `max_iter=500`, `tol=1e-06`).
//!
//! scikit-learn's `_PLS.fit`, per component k, on the centred (and, with
//! `scale`, unit-variance) X_k (n × p) and Y_k (n × t):
//! 1. Y columns whose entries are all below 10·eps in magnitude are zeroed;
//!    if no column has an entry above eps it warns "y residual is constant
//!    at iteration k" and stops (the remaining components stay zero).
//! 2. Power method from y_s = the first such column:
//!    w = X_kᵀy_s / y_sᵀy_s, w /= ‖w‖ + eps, x_s = X_k w,
//!    c = Y_kᵀx_s / x_sᵀx_s, y_s = Y_k c / (cᵀc + eps), until
//!    ‖w − w_old‖² < tol (never at the first iteration), or after one
//!    iteration when t = 1, or after `max_iter` (a ConvergenceWarning).
//! 3. Sign flip: the entry of w largest in magnitude made positive (c with it).
//! 4. t = X_k w, p = X_kᵀt / tᵀt, X_{k+1} = X_k − t pᵀ;
//!    q = Y_kᵀt / tᵀt, Y_{k+1} = Y_k − t qᵀ.
//!
//! Then x_rotations = W pinv(PᵀW), coef = x_rotations Qᵀ, scaled back to the
//! original units (· y_std / x_std), intercept = ȳ, and
//! predict(X) = (X − x̄) coef + ȳ.
//!
//! # The same iterates, in sample space
//!
//! X_{k+1} = (I − t tᵀ/tᵀt) X_k, so X_k = M_k X with M_k = P_{k−1}···P_0,
//! P_i = I − t_i t_iᵀ/t_iᵀt_i, and every X_k-product the power method needs
//! goes through the n × n Gram matrix K = X Xᵀ of the centred X, formed once:
//! writing w = X_kᵀu = Xᵀz with z = M_kᵀu (an n-vector),
//! ‖w‖² = zᵀKz, x_s = X_k w = M_k K z and ‖w − w_old‖² = (z − z_old)ᵀK(z − z_old).
//! X is never deflated: each power iteration costs one n × n product (and
//! k n-vector projections) instead of two n × p ones, and a component's
//! deflation n·t instead of n·p. The weights and loadings are formed at the
//! end by one product Xᵀ[Z R] (p × n · n × 2k). The sign flip needs w in
//! feature space; since every later step depends on t only through t tᵀ
//! (and on q through t qᵀ), the flip is applied to the stored vectors at the
//! end, with the same result. This is the same arithmetic reordered, not a
//! different algorithm (not SIMPLS): the iterates and the stopping test are
//! scikit-learn's up to rounding, so the iteration counts match.
//! With one target (one iteration per component), or when n > 2p, K is not
//! formed: K z = X (Xᵀz), in one pass over X.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::pca::matmul_tall;

/// scikit-learn's defaults, which `PLSRegression` does not let the seed change.
pub const MAX_ITER: usize = 500;
pub const TOL: f64 = 1e-6;

const EPS: f64 = f64::EPSILON;

/// A fitted PLS regression: scikit-learn's attributes, features × components
/// as there (`x_weights_`, `x_loadings_`), except `coef` which is p × t
/// (scikit-learn's `coef_` is t × p).
#[derive(Debug, Clone)]
pub struct Pls {
    pub x_mean: Vec<f64>,
    /// Ones without `scale`; a constant column's std is 1, as in scikit-learn.
    pub x_std: Vec<f64>,
    pub y_mean: Vec<f64>,
    pub y_std: Vec<f64>,
    /// p × t, in the original feature units (scikit-learn's `coef_.T`).
    pub coef: Mat<f64>,
    /// t: ȳ (scikit-learn's `intercept_`).
    pub intercept: Vec<f64>,
    /// Power-method iterations per component fitted (`n_iter_`).
    pub n_iter: Vec<usize>,
    /// p × n_components; columns past `components_used` are zero.
    pub x_weights: Mat<f64>,
    pub x_loadings: Mat<f64>,
    /// t × n_components.
    pub y_weights: Mat<f64>,
    pub y_loadings: Mat<f64>,
    /// Components actually fitted: less than asked when Y's residual became
    /// constant (scikit-learn warns and stops there).
    pub components_used: usize,
    /// scikit-learn's warnings, worded as there: "y residual is constant at
    /// iteration k", "Maximum number of iterations reached" (component k).
    pub warnings: Vec<String>,
    /// coef = rot · rot_y (p × k, k × t, k = components_used): what
    /// [`Pls::predict`] multiplies by, k/t times fewer flops than by coef.
    rot: Mat<f64>,
    rot_y: Mat<f64>,
}

fn par() -> Par {
    Par::rayon(0)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An n × k column-major slice as a faer view.
fn view(data: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
    MatRef::from_column_major_slice(data, rows, cols)
}

fn view_mut(data: &mut [f64], rows: usize, cols: usize) -> MatMut<'_, f64> {
    MatMut::from_column_major_slice_mut(data, rows, cols)
}

/// numpy's `a.mean(axis=0)` for one column: a sequential sum (numpy reduces a
/// C-ordered array along axis 0 row after row), then one division.
fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// `_center_scale_xy` for one column, written into `dst`: returns
/// (mean, std). The std is numpy's `std(ddof=1)` of the centred column (its
/// own mean subtracted again), replaced by 1 when exactly 0.
fn centre_scale(src: &[f64], dst: &mut [f64], scale: bool) -> (f64, f64) {
    let m = mean(src);
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s - m;
    }
    if !scale {
        return (m, 1.0);
    }
    let m2 = mean(dst);
    let ss: f64 = dst.iter().map(|d| (d - m2) * (d - m2)).sum();
    let mut sd = (ss / (dst.len() - 1) as f64).sqrt();
    if sd == 0.0 {
        sd = 1.0;
    }
    for d in dst.iter_mut() {
        *d /= sd;
    }
    (m, sd)
}

/// Centred (scaled) copy of `x`, column-major, with the column statistics.
fn centre_scale_matrix(x: MatRef<'_, f64>, scale: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, p) = (x.nrows(), x.ncols());
    let owned;
    let x = match x.try_as_col_major() {
        Some(c) => c,
        None => {
            owned = x.to_owned();
            owned
                .as_ref()
                .try_as_col_major()
                .expect("Mat is column-major")
        }
    };
    let mut out = vec![0.0; n * p];
    let stats: Vec<(f64, f64)> = out
        .par_chunks_mut(n.max(1))
        .enumerate()
        .map(|(j, dst)| centre_scale(x.col(j).as_slice(), dst, scale))
        .collect();
    let (m, s) = stats.into_iter().unzip();
    (out, m, s)
}

fn check_finite(x: MatRef<'_, f64>, name: &str) -> Result<(), String> {
    let (nan, inf) = x
        .par_col_iter()
        .map(|c| {
            c.iter().fold((false, false), |(n, i), v| {
                (n | v.is_nan(), i | v.is_infinite())
            })
        })
        .reduce(|| (false, false), |a, b| (a.0 | b.0, a.1 | b.1));
    if nan {
        Err(format!("Input {name} contains NaN."))
    } else if inf {
        Err(format!(
            "Input {name} contains infinity or a value too large for dtype('float64')."
        ))
    } else {
        Ok(())
    }
}

/// Columns of X per task, and per cache block, in the fused X (Xᵀz).
const FUSED_CHUNK: usize = 2048;
const FUSED_BLOCK: usize = 16;

/// K z for the centred X: the Gram matrix (formed once, n²p/2 flops; then
/// n² per product), or X (Xᵀz) in one pass over X (2np per product).
enum Kernel<'a> {
    Gram(Vec<f64>),
    Factored(MatRef<'a, f64>),
}

impl Kernel<'_> {
    fn apply(&self, z: &[f64], out: &mut [f64]) {
        let n = z.len();
        match self {
            Kernel::Gram(k) => matmul(
                view_mut(out, n, 1),
                Accum::Replace,
                view(k, n, n),
                view(z, n, 1),
                1.0,
                par(),
            ),
            Kernel::Factored(x) => {
                // One pass over X: column blocks small enough to stay in
                // cache between Xᵀz and X(Xᵀz); fixed chunks, partial sums
                // added in chunk order (independent of the thread count).
                let p = x.ncols();
                let partials: Vec<Vec<f64>> = (0..p.div_ceil(FUSED_CHUNK))
                    .into_par_iter()
                    .map(|c| {
                        let (j0, j1) = (c * FUSED_CHUNK, ((c + 1) * FUSED_CHUNK).min(p));
                        let mut acc = vec![0.0; n];
                        let mut s = [0.0; FUSED_BLOCK];
                        for b0 in (j0..j1).step_by(FUSED_BLOCK) {
                            let bl = FUSED_BLOCK.min(j1 - b0);
                            let xb = x.subcols(b0, bl);
                            matmul(
                                view_mut(&mut s[..bl], bl, 1),
                                Accum::Replace,
                                xb.transpose(),
                                view(z, n, 1),
                                1.0,
                                Par::Seq,
                            );
                            matmul(
                                view_mut(&mut acc, n, 1),
                                Accum::Add,
                                xb,
                                view(&s[..bl], bl, 1),
                                1.0,
                                Par::Seq,
                            );
                        }
                        acc
                    })
                    .collect();
                out.copy_from_slice(&partials[0]);
                for part in &partials[1..] {
                    for (o, v) in out.iter_mut().zip(part) {
                        *o += v;
                    }
                }
            }
        }
    }
}

/// The x scores of the components so far: the deflation projectors.
struct Projectors {
    t: Vec<Vec<f64>>,
    tt: Vec<f64>,
}

impl Projectors {
    fn project(&self, i: usize, v: &mut [f64]) {
        let t = &self.t[i];
        let c = dot(t, v) / self.tt[i];
        for (v, t) in v.iter_mut().zip(t) {
            *v -= t * c;
        }
    }
    /// v ← M_k v = P_{k−1}···P_0 v (the deflation order).
    fn m(&self, v: &mut [f64]) {
        for i in 0..self.t.len() {
            self.project(i, v);
        }
    }
    /// v ← M_kᵀ v = P_0···P_{k−1} v.
    fn mt(&self, v: &mut [f64]) {
        for i in (0..self.t.len()).rev() {
            self.project(i, v);
        }
    }
}

/// scipy's `pinv(a)` (default tolerances: singular values above
/// `max(a.shape)·eps·s_max`) of the leading k × k block of a `dim` × `dim`
/// matrix that is zero outside it, returned as that k × k block.
fn pinv(a: MatRef<'_, f64>, dim: usize) -> Result<Mat<f64>, String> {
    let k = a.nrows();
    let svd = a
        .thin_svd()
        .map_err(|e| format!("SVD of x_loadingsᵀ·x_weights failed: {e:?}"))?;
    let (u, s, v) = (svd.U(), svd.S(), svd.V());
    let sv: Vec<f64> = (0..k).map(|i| s[i]).collect();
    let smax = sv.iter().copied().fold(0.0, f64::max);
    let cut = smax * dim as f64 * EPS;
    Ok(Mat::from_fn(k, k, |i, j| {
        (0..k)
            .filter(|&r| sv[r] > cut)
            .map(|r| v[(i, r)] * (u[(j, r)] / sv[r]))
            .sum()
    }))
}

/// `PLSRegression(n_components, scale=scale).fit(x, y)` for x n × p and y
/// n × t (float64, any layout). Errors where scikit-learn raises, with its
/// messages; a degenerate fit (a component whose x scores are all zero, or
/// coefficients that come out non-finite), where scikit-learn fails on NaN
/// or returns it, is an error too.
pub fn fit(
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    n_components: usize,
    scale: bool,
) -> Result<Pls, String> {
    let (n, p, q) = (x.nrows(), x.ncols(), y.ncols());
    if n_components < 1 {
        return Err(format!(
            "The 'n_components' parameter of PLSRegression must be an int in the range \
             [1, inf). Got {n_components} instead."
        ));
    }
    if y.nrows() != n {
        return Err(format!(
            "Found input variables with inconsistent numbers of samples: [{n}, {}]",
            y.nrows()
        ));
    }
    check_finite(x, "X")?;
    if n < 2 {
        return Err(format!(
            "Found array with {n} sample(s) (shape=({n}, {p})) while a minimum of 2 is \
             required by PLSRegression."
        ));
    }
    if p < 1 {
        return Err(format!(
            "Found array with 0 feature(s) (shape=({n}, 0)) while a minimum of 1 is \
             required by PLSRegression."
        ));
    }
    check_finite(y, "y")?;
    if q < 1 {
        return Err(format!(
            "Found array with 0 feature(s) (shape=({n}, 0)) while a minimum of 1 is required."
        ));
    }
    // PLSRegression's bound (deflation_mode="regression"): the rank of XᵀX,
    // min(n_samples, n_features), not min(n, p, t) as for PLSCanonical/CCA.
    let bound = n.min(p);
    if n_components > bound {
        return Err(format!(
            "`n_components` upper bound is {bound}. Got {n_components} instead. Reduce \
             `n_components`."
        ));
    }

    let (xc, x_mean, x_std) = centre_scale_matrix(x, scale);
    let (mut yk, y_mean, y_std) = centre_scale_matrix(y, scale);
    let xv = view(&xc, n, p);

    // The Gram matrix pays off when there are many products: with several
    // targets (tens of power iterations per component at the project's
    // size) and p not much below n. One target takes exactly one iteration
    // per component, n_components products in all: one pass over X each.
    let kernel = if q > 1 && 2 * p >= n {
        let mut g = vec![0.0; n * n];
        triangular::matmul(
            view_mut(&mut g, n, n),
            BlockStructure::TriangularLower,
            Accum::Replace,
            xv,
            BlockStructure::Rectangular,
            xv.transpose(),
            BlockStructure::Rectangular,
            1.0,
            par(),
        );
        for j in 0..n {
            for i in j + 1..n {
                g[i * n + j] = g[j * n + i];
            }
        }
        Kernel::Gram(g)
    } else {
        Kernel::Factored(xv)
    };

    let mut proj = Projectors {
        t: Vec::new(),
        tt: Vec::new(),
    };
    // Per component: z (w = Xᵀz), r (x loadings = Xᵀr), c, q.
    let (mut zs, mut rs) = (Vec::<f64>::new(), Vec::<f64>::new());
    let (mut cs, mut qs) = (Vec::<f64>::new(), Vec::<f64>::new());
    let mut n_iter = Vec::new();
    let mut warnings = Vec::new();
    let (mut z, mut v) = (vec![0.0; n], vec![0.0; n]);
    let (mut z_old, mut v_old) = (vec![0.0; n], vec![0.0; n]);
    let mut xs = vec![0.0; n];
    let (mut c, mut ys) = (vec![0.0; q], vec![0.0; n]);

    for k in 0..n_components {
        // Columns all close to zero are zeroed; start from the first column
        // with an entry above eps.
        yk.par_chunks_mut(n).for_each(|col| {
            if col.iter().all(|v| v.abs() < 10.0 * EPS) {
                col.fill(0.0);
            }
        });
        let Some(first) = yk
            .chunks(n)
            .position(|col| col.iter().any(|v| v.abs() > EPS))
        else {
            warnings.push(format!("y residual is constant at iteration {k}"));
            break;
        };
        ys.copy_from_slice(&yk[first * n..(first + 1) * n]);
        let yv = view(&yk, n, q);

        let mut iters = 0;
        for i in 0..MAX_ITER {
            iters = i + 1;
            // w = X_kᵀ y_s / y_sᵀy_s, as z with w = Xᵀz.
            let yy = dot(&ys, &ys);
            for (z, y) in z.iter_mut().zip(&ys) {
                *z = y / yy;
            }
            proj.mt(&mut z);
            kernel.apply(&z, &mut v);
            let s = dot(&z, &v).max(0.0).sqrt() + EPS;
            for (z, v) in z.iter_mut().zip(v.iter_mut()) {
                *z /= s;
                *v /= s;
            }
            // x_s = X_k w = M_k K z.
            xs.copy_from_slice(&v);
            proj.m(&mut xs);
            let xx = dot(&xs, &xs);
            matmul(
                view_mut(&mut c, q, 1),
                Accum::Replace,
                yv.transpose(),
                view(&xs, n, 1),
                1.0 / xx,
                par(),
            );
            if q == 1 {
                break;
            }
            let cc = dot(&c, &c) + EPS;
            matmul(
                view_mut(&mut ys, n, 1),
                Accum::Replace,
                yv,
                view(&c, q, 1),
                1.0 / cc,
                par(),
            );
            // ‖w − w_old‖² = (z − z_old)ᵀ K (z − z_old); the first
            // iteration compares with 100 (every entry) and never stops.
            if i > 0 {
                let d: f64 = (0..n).map(|r| (z[r] - z_old[r]) * (v[r] - v_old[r])).sum();
                if d < TOL {
                    break;
                }
            }
            z_old.copy_from_slice(&z);
            v_old.copy_from_slice(&v);
        }
        if iters == MAX_ITER {
            warnings.push(format!(
                "Maximum number of iterations reached (component {k})"
            ));
        }
        n_iter.push(iters);

        // The scores are x_s itself (t = X_k w). Loadings and deflation.
        let tt = dot(&xs, &xs);
        if !(tt > 0.0 && tt.is_finite()) {
            // scikit-learn divides 0 by 0 here and fails later in pinv
            // ("A has a NaN entry").
            return Err(format!(
                "PLS component {k}: the x scores are all zero (X's residual is orthogonal \
                 to Y's); scikit-learn fails here too (NaN loadings). Reduce n_components"
            ));
        }
        let mut ql = vec![0.0; q];
        matmul(
            view_mut(&mut ql, q, 1),
            Accum::Replace,
            yv.transpose(),
            view(&xs, n, 1),
            1.0,
            par(),
        );
        for v in &mut ql {
            *v /= tt;
        }
        yk.par_chunks_mut(n)
            .zip(ql.par_iter())
            .for_each(|(col, &qj)| {
                for (y, t) in col.iter_mut().zip(&xs) {
                    *y -= t * qj;
                }
            });
        // x loadings = X_kᵀ t / tᵀt = Xᵀ (M_kᵀ t) / tᵀt.
        let mut r = xs.clone();
        proj.mt(&mut r);
        for v in &mut r {
            *v /= tt;
        }
        zs.extend_from_slice(&z);
        rs.extend_from_slice(&r);
        cs.extend_from_slice(&c);
        qs.extend_from_slice(&ql);
        proj.t.push(xs.clone());
        proj.tt.push(tt);
    }
    let used = n_iter.len();

    // [W P] = Xᵀ [Z R].
    let mut zr = zs;
    zr.extend_from_slice(&rs);
    let mut wp = Mat::<f64>::zeros(p, 2 * used);
    if used > 0 {
        matmul_tall(wp.as_mut(), xv.transpose(), view(&zr, n, 2 * used));
    }
    let mut x_weights = Mat::<f64>::zeros(p, n_components);
    let mut x_loadings = Mat::<f64>::zeros(p, n_components);
    let mut y_weights = Mat::<f64>::zeros(q, n_components);
    let mut y_loadings = Mat::<f64>::zeros(q, n_components);
    for k in 0..used {
        let w = wp.col_as_slice(k);
        // _svd_flip_1d: np.argmax(np.abs(w)) (first maximum), np.sign.
        let mut best = 0;
        for (i, v) in w.iter().enumerate() {
            if v.abs() > w[best].abs() {
                best = i;
            }
        }
        let sign = if w[best] > 0.0 {
            1.0
        } else if w[best] < 0.0 {
            -1.0
        } else {
            0.0
        };
        for (d, s) in x_weights.col_as_slice_mut(k).iter_mut().zip(w) {
            *d = s * sign;
        }
        for (d, s) in x_loadings
            .col_as_slice_mut(k)
            .iter_mut()
            .zip(wp.col_as_slice(used + k))
        {
            *d = s * sign;
        }
        for (d, s) in y_weights
            .col_as_slice_mut(k)
            .iter_mut()
            .zip(&cs[k * q..(k + 1) * q])
        {
            *d = s * sign;
        }
        for (d, s) in y_loadings
            .col_as_slice_mut(k)
            .iter_mut()
            .zip(&qs[k * q..(k + 1) * q])
        {
            *d = s * sign;
        }
    }
    drop(wp);

    // coef = W pinv(PᵀW) Qᵀ · y_std / x_std, formed as W (pinv(PᵀW) Qᵀ).
    let mut coef = Mat::<f64>::zeros(p, q);
    // The same product in two factors, for predict: (W / x_std) · (bq · y_std).
    let mut rot = Mat::<f64>::zeros(p, used);
    let mut rot_y = Mat::<f64>::zeros(used, q);
    if used > 0 {
        let w = x_weights.subcols(0, used);
        let pl = x_loadings.subcols(0, used);
        let mut ptw = Mat::<f64>::zeros(used, used);
        matmul(ptw.as_mut(), Accum::Replace, pl.transpose(), w, 1.0, par());
        let b = pinv(ptw.as_ref(), n_components)?;
        let mut bq = Mat::<f64>::zeros(used, q);
        matmul(
            bq.as_mut(),
            Accum::Replace,
            b.as_ref(),
            y_loadings.subcols(0, used).transpose(),
            1.0,
            par(),
        );
        matmul_tall(coef.as_mut(), w, bq.as_ref());
        for k in 0..used {
            for (d, (v, sx)) in rot.col_as_slice_mut(k).iter_mut().zip(
                w.col(k)
                    .try_as_col_major()
                    .expect("Mat column")
                    .as_slice()
                    .iter()
                    .zip(&x_std),
            ) {
                *d = v / sx;
            }
        }
        for j in 0..q {
            for k in 0..used {
                rot_y[(k, j)] = bq[(k, j)] * y_std[j];
            }
        }
        if scale {
            coef.par_col_iter_mut()
                .zip(y_std.par_iter())
                .for_each(|(col, &sy)| {
                    let col = col.try_as_col_major_mut().expect("Mat column");
                    for (v, sx) in col.as_slice_mut().iter_mut().zip(&x_std) {
                        *v = *v * sy / sx;
                    }
                });
        }
        let finite = (0..q)
            .into_par_iter()
            .all(|j| coef.col_as_slice(j).iter().all(|v| v.is_finite()));
        if !finite {
            return Err(format!(
                "PLS coefficients are not finite ({used} components): X's residual \
                 vanished before Y's; reduce n_components"
            ));
        }
    }

    Ok(Pls {
        x_mean,
        x_std,
        intercept: y_mean.clone(),
        y_mean,
        y_std,
        coef,
        n_iter,
        x_weights,
        x_loadings,
        y_weights,
        y_loadings,
        components_used: used,
        warnings,
        rot,
        rot_y,
    })
}

impl Pls {
    /// `predict(x)`: (x − x̄) coef + intercept, x centred first as
    /// scikit-learn does (not x·coef − x̄·coef). The product goes through
    /// the two factors coef was formed from (so changing `coef` does not
    /// change predictions).
    pub fn predict(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        let (m, p) = (x.nrows(), x.ncols());
        assert_eq!(
            p,
            self.coef.nrows(),
            "predict: {p} features, fitted on {}",
            self.coef.nrows()
        );
        let mut xc = Mat::<f64>::zeros(m, p);
        xc.par_col_iter_mut()
            .zip(x.par_col_iter())
            .zip(self.x_mean.par_iter())
            .for_each(|((d, s), &mu)| {
                let d = d.try_as_col_major_mut().expect("Mat column").as_slice_mut();
                for (d, s) in d.iter_mut().zip(s.iter()) {
                    *d = s - mu;
                }
            });
        // (x − x̄)·coef = ((x − x̄)·rot)·rot_y: the same product associated
        // differently (rounding only), m·p·k + m·k·t flops instead of m·p·t.
        let mut scores = Mat::<f64>::zeros(m, self.rot.ncols());
        matmul(
            scores.as_mut(),
            Accum::Replace,
            xc.as_ref(),
            self.rot.as_ref(),
            1.0,
            par(),
        );
        let mut out = Mat::<f64>::zeros(m, self.coef.ncols());
        matmul(
            out.as_mut(),
            Accum::Replace,
            scores.as_ref(),
            self.rot_y.as_ref(),
            1.0,
            par(),
        );
        out.par_col_iter_mut()
            .zip(self.intercept.par_iter())
            .for_each(|(col, &b)| {
                let col = col
                    .try_as_col_major_mut()
                    .expect("Mat column")
                    .as_slice_mut();
                for v in col {
                    *v += b;
                }
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::ridge::from_row_major;
    use std::path::PathBuf;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pls")
    }

    fn load(case: &str, name: &str) -> crate::npy::Array<f64> {
        let p = dir().join(case).join(format!("{name}.npy"));
        crate::npy::read_f64(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn mat(case: &str, name: &str) -> Mat<f64> {
        let a = load(case, name);
        let (r, c) = a.rows_cols();
        from_row_major(&a.data, r, c)
    }

    /// max |a − b| / max(|b|, tiny) over the whole matrix.
    fn rel(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
        assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
        let (mut d, mut m) = (0.0f64, 0.0f64);
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                d = d.max((a[(i, j)] - b[(i, j)]).abs());
                m = m.max(b[(i, j)].abs());
            }
        }
        if m == 0.0 { d } else { d / m }
    }

    /// Every case of tests/fixtures/make_pls_fixtures.py (scikit-learn 1.9.1).
    ///
    /// Tolerance: both sides compute in float64, and the power method
    /// stops at the same iteration in both (asserted exactly first), so the
    /// iterates differ only by rounding (runner reorders the products through
    /// the Gram matrix; scikit-learn deflates X explicitly). Stopping at
    /// tol = 1e-6 would allow ~1e-6 differences if the counts differed;
    /// with equal counts 1e-9 relative (to the largest reference entry) is
    /// asserted for predictions, coef_, the weights and the loadings.
    #[test]
    fn matches_scikit_learn() {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap())
                .unwrap();
        let cases = meta["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 11);
        for c in cases {
            let name = c["name"].as_str().unwrap();
            let nc = c["n_components"].as_u64().unwrap() as usize;
            let scale = c["scale"].as_bool().unwrap();
            let (x, y) = (mat(name, "X"), mat(name, "Y"));
            let fit =
                fit(x.as_ref(), y.as_ref(), nc, scale).unwrap_or_else(|e| panic!("{name}: {e}"));

            let n_iter: Vec<usize> = load(name, "n_iter")
                .data
                .iter()
                .map(|&v| v as usize)
                .collect();
            assert_eq!(fit.n_iter, n_iter, "{name}: n_iter");
            assert_eq!(
                fit.components_used,
                c["components_used"].as_u64().unwrap() as usize,
                "{name}"
            );
            let want: Vec<String> = c["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect();
            assert_eq!(fit.warnings, want, "{name}: warnings");

            let pred = fit.predict(mat(name, "X_test").as_ref());
            let e = rel(pred.as_ref(), mat(name, "pred").as_ref());
            assert!(e < 1e-9, "{name}: predictions differ by {e:.2e} (relative)");
            let mut worst = e;
            let e = rel(fit.coef.transpose(), mat(name, "coef").as_ref());
            assert!(e < 1e-9, "{name}: coef differs by {e:.2e}");
            worst = worst.max(e);
            for (field, got) in [
                ("x_weights", &fit.x_weights),
                ("x_loadings", &fit.x_loadings),
                ("y_weights", &fit.y_weights),
                ("y_loadings", &fit.y_loadings),
            ] {
                let e = rel(got.as_ref(), mat(name, field).as_ref());
                assert!(e < 1e-9, "{name}: {field} differs by {e:.2e}");
                worst = worst.max(e);
            }
            eprintln!(
                "{name}: n_iter {:?}, largest relative difference {worst:.1e}",
                fit.n_iter
            );
            let icpt = load(name, "intercept").data;
            for (a, b) in fit.intercept.iter().zip(&icpt) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{name}: intercept"
                );
            }
        }
    }

    /// The input's layout does not matter: a row-major view gives the same fit.
    #[test]
    fn row_major_input() {
        let (x, y) = (mat("np_multi", "X"), mat("np_multi", "Y"));
        let a = fit(x.as_ref(), y.as_ref(), 5, false).unwrap();
        let xt = x.transpose().to_owned();
        let b = fit(xt.as_ref().transpose(), y.as_ref(), 5, false).unwrap();
        assert_eq!(a.n_iter, b.n_iter);
        assert!(rel(a.coef.as_ref(), b.coef.as_ref()) < 1e-14);
    }

    #[test]
    fn errors_as_scikit_learn() {
        let (x, y) = (mat("np_multi", "X"), mat("np_multi", "Y")); // 30 × 50, 30 × 4
        let err =
            |x: MatRef<'_, f64>, y: MatRef<'_, f64>, k: usize| fit(x, y, k, false).unwrap_err();
        assert_eq!(
            err(x.as_ref(), y.as_ref(), 31),
            "`n_components` upper bound is 30. Got 31 instead. Reduce `n_components`."
        );
        // PLSRegression's bound is min(n, p): the number of targets (4) does not bound it.
        assert!(fit(x.as_ref(), y.as_ref(), 5, false).is_ok());
        let (xp, yp) = (mat("pn_multi_max", "X"), mat("pn_multi_max", "Y")); // 60 × 8
        assert_eq!(
            err(xp.as_ref(), yp.as_ref(), 9),
            "`n_components` upper bound is 8. Got 9 instead. Reduce `n_components`."
        );
        assert_eq!(
            err(x.as_ref(), y.as_ref(), 0),
            "The 'n_components' parameter of PLSRegression must be an int in the range \
             [1, inf). Got 0 instead."
        );
        assert_eq!(
            err(x.subrows(0, 1), y.subrows(0, 1), 1),
            "Found array with 1 sample(s) (shape=(1, 50)) while a minimum of 2 is required \
             by PLSRegression."
        );
        assert_eq!(
            err(x.as_ref(), y.subrows(0, 29), 1),
            "Found input variables with inconsistent numbers of samples: [30, 29]"
        );
        let mut xn = x.clone();
        xn[(3, 7)] = f64::NAN;
        assert_eq!(err(xn.as_ref(), y.as_ref(), 1), "Input X contains NaN.");
        let mut yi = y.clone();
        yi[(2, 1)] = f64::INFINITY;
        assert_eq!(
            err(x.as_ref(), yi.as_ref(), 1),
            "Input y contains infinity or a value too large for dtype('float64')."
        );
        // Constant X: every score is zero; scikit-learn raises "A has a NaN entry".
        let xc = Mat::<f64>::from_fn(10, 4, |_, j| j as f64);
        let yc = Mat::<f64>::from_fn(10, 1, |i, _| i as f64);
        assert!(err(xc.as_ref(), yc.as_ref(), 1).contains("x scores are all zero"));
    }

    /// A constant target with scale = true is not an error (its std is set
    /// to 1); every target constant stops before the first component and
    /// predicts the mean.
    #[test]
    fn constant_targets() {
        let x = mat("y_constant", "X");
        let y = Mat::<f64>::from_fn(x.nrows(), 2, |i, j| if j == 0 { 3.0 } else { i as f64 });
        let f = fit(x.as_ref(), y.as_ref(), 2, true).unwrap();
        assert_eq!(f.y_std[0], 1.0);
        assert_eq!(f.components_used, 2);
        assert!((0..x.ncols()).all(|i| f.coef[(i, 0)] == 0.0));
        let f = fit(x.as_ref(), y.subcols(0, 1), 2, true).unwrap();
        assert_eq!(f.components_used, 0);
        assert!(f.n_iter.is_empty());
        let pred = f.predict(x.as_ref());
        assert!((0..x.nrows()).all(|i| pred[(i, 0)] == 3.0));
    }
}
