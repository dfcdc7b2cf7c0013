//! Ridge regression with efficient leave-one-out α selection, numerically the
//! same procedure as scikit-learn's `RidgeCV(alphas)` (its `_RidgeGCV`).
//!
//! The work splits in two so that caching pays off:
//! - [`decompose`] depends only on the features: one eigendecomposition of the
//!   Gram matrix (features > samples) or one thin SVD (otherwise), plus the
//!   cross-products of test and train rows. It serves every ROI and every α.
//! - [`ridge_cv`] takes the responses of one ROI, scores every α by its exact
//!   LOO error and predicts the test rows — without ever forming the
//!   features × voxels weight matrix: ŷ = (X_test − x̄) X_cᵀ c + ȳ, with c the
//!   dual coefficients.
//!
//! With `fit_intercept`, scikit-learn adds a column of ones (SVD) or ones·onesᵀ
//! (Gram) and cancels the penalty on that direction; we do exactly the same so
//! that the LOO errors, and therefore the chosen α, agree.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par, Side};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Eigendecomposition of X Xᵀ (n × n): used when features > samples.
    Gram,
    /// Thin SVD of X (n × p): used when samples ≥ features.
    Svd,
}

/// Everything the α search and the test predictions need from the features.
pub struct Decomposition {
    pub mode: Mode,
    pub fit_intercept: bool,
    /// Q (Gram) or U (SVD): n_train × r, orthonormal columns.
    pub basis: Mat<f64>,
    /// Eigenvalues of the (augmented) Gram matrix, or squared singular values.
    pub eig: Vec<f64>,
    /// The basis column that carries the intercept (its penalty is cancelled).
    pub intercept_dim: Option<usize>,
    /// (X_test − x̄) · X_cᵀ: n_test × n_train.
    pub cross: Mat<f64>,
}

/// Result of the α search for one block of targets (an ROI's voxels).
pub struct RidgeCv {
    /// Index into the α grid per target (all equal unless per-target α).
    pub alpha_index: Vec<usize>,
    /// Mean squared LOO error per α (rows) and target (columns).
    pub loo_mse: Mat<f64>,
    /// Predicted test responses, n_test × targets.
    pub y_pred: Mat<f64>,
}

fn par() -> Par {
    Par::rayon(0)
}

/// Centres the columns of a row-major n × p matrix in place; returns the means.
fn centre_rows(data: &mut [f64], n: usize, p: usize) -> Vec<f64> {
    let mut mean = vec![0.0; p];
    for row in data.chunks_exact(p).take(n) {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x;
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    for row in data.chunks_exact_mut(p).take(n) {
        for (x, m) in row.iter_mut().zip(&mean) {
            *x -= m;
        }
    }
    mean
}

/// A row-major n × p slice as an n × p faer view (no copy).
fn view(data: &[f64], n: usize, p: usize) -> MatRef<'_, f64> {
    MatRef::from_column_major_slice(data, p, n).transpose()
}

/// scikit-learn's `_find_smallest_angle`: the basis column most aligned with 1/√n.
fn intercept_column(basis: MatRef<'_, f64>) -> usize {
    let n = basis.nrows();
    let q = 1.0 / (n as f64).sqrt();
    (0..basis.ncols())
        .map(|j| {
            let dot: f64 = (0..n).map(|i| basis[(i, j)] * q).sum();
            (j, dot.abs())
        })
        .fold((0, f64::NEG_INFINITY), |best, (j, c)| {
            if c > best.1 { (j, c) } else { best }
        })
        .0
}

/// Decomposes the training features (row-major `n_train × p`, consumed and
/// centred in place) and projects the test features (`n_test × p`).
pub fn decompose(
    mut x_train: Vec<f64>,
    mut x_test: Vec<f64>,
    n_train: usize,
    n_test: usize,
    p: usize,
    fit_intercept: bool,
) -> Result<Decomposition, String> {
    assert_eq!(x_train.len(), n_train * p);
    assert_eq!(x_test.len(), n_test * p);
    if n_train < 2 {
        return Err(format!(
            "ridge needs at least 2 training images, got {n_train}"
        ));
    }
    if fit_intercept {
        let mean = centre_rows(&mut x_train, n_train, p);
        for row in x_test.chunks_exact_mut(p) {
            for (x, m) in row.iter_mut().zip(&mean) {
                *x -= m;
            }
        }
    }
    let xc = view(&x_train, n_train, p);
    let xt = view(&x_test, n_test, p);

    // scikit-learn: gcv_mode "auto" picks the Gram route when n_features > n_samples.
    let mode = if p > n_train { Mode::Gram } else { Mode::Svd };
    let (basis, eig) = match mode {
        Mode::Gram => {
            // Only the lower triangle of the symmetric Gram matrix is formed
            // (half the flops of a full product), and only it is read below.
            let mut k = Mat::<f64>::zeros(n_train, n_train);
            triangular::matmul(
                k.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                xc,
                BlockStructure::Rectangular,
                xc.transpose(),
                BlockStructure::Rectangular,
                1.0,
                par(),
            );
            if fit_intercept {
                for j in 0..n_train {
                    for x in &mut k.col_as_slice_mut(j)[j..] {
                        *x += 1.0;
                    }
                }
            }
            let evd = k
                .self_adjoint_eigen(Side::Lower)
                .map_err(|e| format!("eigendecomposition failed: {e:?}"))?;
            let s = evd.S();
            let eig: Vec<f64> = (0..n_train).map(|i| s[i]).collect();
            (evd.U().to_owned(), eig)
        }
        Mode::Svd => {
            let cols = p + usize::from(fit_intercept);
            let mut a = Mat::<f64>::zeros(n_train, cols);
            a.as_mut().subcols_mut(0, p).copy_from(xc);
            if fit_intercept {
                for i in 0..n_train {
                    a[(i, p)] = 1.0;
                }
            }
            let svd = a.thin_svd().map_err(|e| format!("SVD failed: {e:?}"))?;
            let s = svd.S();
            let r = s.dim();
            let eig: Vec<f64> = (0..r).map(|i| s[i] * s[i]).collect();
            (svd.U().to_owned(), eig)
        }
    };
    let intercept_dim = fit_intercept.then(|| intercept_column(basis.as_ref()));

    let mut cross = Mat::<f64>::zeros(n_test, n_train);
    matmul(
        cross.as_mut(),
        Accum::Replace,
        xt,
        xc.transpose(),
        1.0,
        par(),
    );

    Ok(Decomposition {
        mode,
        fit_intercept,
        basis,
        eig,
        intercept_dim,
        cross,
    })
}

/// The α search and test prediction for one block of targets.
/// `y` is row-major `n_train × v` (one column per voxel).
pub fn ridge_cv(
    dec: &Decomposition,
    y: &[f64],
    v: usize,
    alphas: &[f64],
    alpha_per_target: bool,
) -> RidgeCv {
    let n = dec.basis.nrows();
    let r = dec.basis.ncols();
    assert_eq!(y.len(), n * v);
    assert!(!alphas.is_empty());

    let mut yc = view(y, n, v).to_owned();
    let y_mean: Vec<f64> = (0..v)
        .map(|j| {
            if dec.fit_intercept {
                yc.col_as_slice(j).iter().sum::<f64>() / n as f64
            } else {
                0.0
            }
        })
        .collect();
    for (j, m) in y_mean.iter().enumerate() {
        for x in yc.col_as_slice_mut(j) {
            *x -= m;
        }
    }

    let q = dec.basis.as_ref();
    let mut qt_y = Mat::<f64>::zeros(r, v);
    matmul(
        qt_y.as_mut(),
        Accum::Replace,
        q.transpose(),
        yc.as_ref(),
        1.0,
        par(),
    );
    let q2 = Mat::<f64>::from_fn(n, r, |i, j| q[(i, j)] * q[(i, j)]);

    let mut loo_mse = Mat::<f64>::zeros(alphas.len(), v);
    let mut best_c = Mat::<f64>::zeros(n, v);
    let mut best_score = vec![f64::NEG_INFINITY; v];
    let mut best_shared = f64::NEG_INFINITY;
    let mut alpha_index = vec![0usize; v];
    let mut c = Mat::<f64>::zeros(n, v);
    let mut w_qt_y = Mat::<f64>::zeros(r, v);

    for (ai, &alpha) in alphas.iter().enumerate() {
        // Spectral filter w and the diagonal of G⁻¹, as in _solve_eigen_gram /
        // _solve_svd_design_matrix.
        let mut w: Vec<f64> = match dec.mode {
            Mode::Gram => dec.eig.iter().map(|l| 1.0 / (l + alpha)).collect(),
            Mode::Svd => dec
                .eig
                .iter()
                .map(|s2| 1.0 / (s2 + alpha) - 1.0 / alpha)
                .collect(),
        };
        if let Some(d) = dec.intercept_dim {
            w[d] = match dec.mode {
                Mode::Gram => 0.0,
                Mode::Svd => -1.0 / alpha,
            };
        }
        let extra = if dec.mode == Mode::Svd {
            1.0 / alpha
        } else {
            0.0
        };
        let w_col = Mat::<f64>::from_fn(r, 1, |j, _| w[j]);
        let mut g = Mat::<f64>::zeros(n, 1);
        matmul(
            g.as_mut(),
            Accum::Replace,
            q2.as_ref(),
            w_col.as_ref(),
            1.0,
            par(),
        );
        let g_diag: Vec<f64> = g.col_as_slice(0).iter().map(|x| x + extra).collect();

        for j in 0..v {
            let src = qt_y.col_as_slice(j);
            for (dst, (s, wk)) in w_qt_y
                .col_as_slice_mut(j)
                .iter_mut()
                .zip(src.iter().zip(&w))
            {
                *dst = s * wk;
            }
        }
        matmul(c.as_mut(), Accum::Replace, q, w_qt_y.as_ref(), 1.0, par());
        if dec.mode == Mode::Svd {
            for j in 0..v {
                let ycol = yc.col_as_slice(j);
                for (ci, yi) in c.col_as_slice_mut(j).iter_mut().zip(ycol) {
                    *ci += yi * extra;
                }
            }
        }

        let mut total = 0.0;
        for j in 0..v {
            let col = c.col_as_slice(j);
            let sse: f64 = col
                .iter()
                .zip(&g_diag)
                .map(|(ci, gi)| {
                    let e = ci / gi;
                    e * e
                })
                .sum();
            let mse = sse / n as f64;
            loo_mse[(ai, j)] = mse;
            total += mse;
        }

        // Strict comparisons: on ties the earlier α stays, as in scikit-learn.
        if alpha_per_target && v > 1 {
            for j in 0..v {
                let score = -loo_mse[(ai, j)];
                if score > best_score[j] {
                    best_score[j] = score;
                    alpha_index[j] = ai;
                    best_c
                        .col_as_slice_mut(j)
                        .copy_from_slice(c.col_as_slice(j));
                }
            }
        } else {
            let score = -total / v as f64;
            if score > best_shared {
                best_shared = score;
                alpha_index.iter_mut().for_each(|a| *a = ai);
                best_c.copy_from(&c);
            }
        }
    }

    let n_test = dec.cross.nrows();
    let mut y_pred = Mat::<f64>::zeros(n_test, v);
    matmul(
        y_pred.as_mut(),
        Accum::Replace,
        dec.cross.as_ref(),
        best_c.as_ref(),
        1.0,
        par(),
    );
    for (j, m) in y_mean.iter().enumerate() {
        for x in y_pred.col_as_slice_mut(j) {
            *x += m;
        }
    }
    RidgeCv {
        alpha_index,
        loo_mse,
        y_pred,
    }
}

/// Row-major copy of a faer matrix (how arrays are stored as .npy).
pub fn to_row_major(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            out.push(m[(i, j)]);
        }
    }
    out
}

/// Column-major faer matrix from a row-major slice.
pub fn from_row_major(data: &[f64], rows: usize, cols: usize) -> Mat<f64> {
    view(data, rows, cols).to_owned()
}
