//! Ridge with λ chosen per voxel on a holdout set, as Lab08's
//! `solve_ridge_fast` computes it (seed 003): weights (XᵀX + λI)⁻¹XᵀY with
//! every column penalised (the intercept is a column of X), the summed
//! squared error on the holdout stimuli for every λ and voxel, and per voxel
//! the first λ of least error. No refit.
//!
//! The seed inverts XᵀX + λI once per λ. One eigendecomposition
//! XᵀX = V diag(s) Vᵀ serves every λ instead: (XᵀX + λI)⁻¹ = V diag(1/(s+λ)) Vᵀ,
//! so with A = VᵀXᵀY and B = X_out V the holdout predictions are
//! B diag(1/(s+λ)) A, and their squared error per voxel is
//! ‖y‖² − 2 Σₖ dₖ cₖ aₖ + (DA)ᵀ G (DA) with c = Bᵀy_out and G = BᵀB, a few
//! q × q × v products per λ and never an n_out × v prediction per λ. A
//! negative λ (the seed's grid starts at −0.0099) is fine while s + λ > 0.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};
use rayon::prelude::*;

/// The fitted model: λ index per voxel, the holdout error of every λ, and
/// predictions from the chosen weights.
pub struct HoldoutFit {
    /// Index into the grid of each voxel's λ (the first least error).
    pub best: Vec<usize>,
    /// Summed squared holdout error, n_λ × v, row-major.
    pub loss: Vec<f64>,
    /// Weights of the chosen λ, q × v row-major (q = columns of X, intercept included).
    pub weights: Mat<f64>,
}

fn par() -> Par {
    Par::rayon(0)
}

/// A B, in parallel.
fn mul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, par());
    out
}

/// XᵀX = V diag(s) Vᵀ, and A = Vᵀ Xᵀ Y: all any λ needs of the fit rows.
struct Spectrum {
    vecs: Mat<f64>,
    s: Vec<f64>,
    a: Mat<f64>,
}

impl Spectrum {
    fn of(x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Result<Spectrum, String> {
        let evd = mul(x.transpose(), x)
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| format!("eigendecomposition of XᵀX failed: {e:?}"))?;
        let vecs = evd.U().to_owned();
        let s: Vec<f64> = (0..x.ncols()).map(|i| evd.S()[i]).collect();
        let a = mul(vecs.transpose(), mul(x.transpose(), y).as_ref());
        Ok(Spectrum { vecs, s, a })
    }

    /// The first λ for which XᵀX + λI is not positive definite.
    fn check(&self, lambdas: &[f64]) -> Result<(), String> {
        match lambdas
            .iter()
            .find(|&&l| self.s.iter().any(|&e| e + l <= 0.0))
        {
            Some(lam) => Err(format!(
                "λ = {lam:e} makes XᵀX + λI singular or indefinite (smallest eigenvalue {:e})",
                self.s.iter().copied().fold(f64::INFINITY, f64::min)
            )),
            None => Ok(()),
        }
    }

    /// W[:, j] = V diag(1/(s+λⱼ)) A[:, j], each voxel with its own λ.
    fn weights(&self, lambda: &[f64]) -> Mat<f64> {
        let mut za = self.a.clone();
        for (j, &lam) in lambda.iter().enumerate() {
            for (z, e) in za.col_as_slice_mut(j).iter_mut().zip(&self.s) {
                *z /= e + lam;
            }
        }
        mul(self.vecs.as_ref(), za.as_ref())
    }
}

/// `x_*` are n × q (the intercept column already appended), `y_*` n × v.
pub fn fit(
    x_trn: MatRef<'_, f64>,
    y_trn: MatRef<'_, f64>,
    x_out: MatRef<'_, f64>,
    y_out: MatRef<'_, f64>,
    lambdas: &[f64],
) -> Result<HoldoutFit, String> {
    let v = y_trn.ncols();
    let sp = Spectrum::of(x_trn, y_trn)?;
    sp.check(lambdas)?;
    // B = X_out V (n_out × q), c = Bᵀ y_out, G = BᵀB.
    let b = mul(x_out, sp.vecs.as_ref());
    let c = mul(b.transpose(), y_out);
    let g = mul(b.transpose(), b.as_ref());
    let yy: Vec<f64> = (0..v)
        .into_par_iter()
        .map(|j| y_out.col(j).iter().map(|x| x * x).sum())
        .collect();
    let n_l = lambdas.len();
    let loss = holdout_loss(&sp.a, &c, &g, &sp.s, &yy, lambdas);
    // The first least error, as np.argmin; a NaN error is never chosen.
    let best: Vec<usize> = (0..v)
        .map(|j| {
            (0..n_l).fold(0, |bi, l| {
                let (x, y) = (loss[l * v + j], loss[bi * v + j]);
                if x < y || y.is_nan() { l } else { bi }
            })
        })
        .collect();
    let chosen: Vec<f64> = best.iter().map(|&b| lambdas[b]).collect();
    Ok(HoldoutFit {
        weights: sp.weights(&chosen),
        best,
        loss,
    })
}

/// Weights (XᵀX + λⱼI)⁻¹Xᵀyⱼ with each voxel's own λⱼ, from one
/// eigendecomposition (the refit on train + holdout with the chosen λ).
pub fn fit_per_voxel(
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    lambda: &[f64],
) -> Result<Mat<f64>, String> {
    let sp = Spectrum::of(x, y)?;
    let mut distinct: Vec<f64> = lambda.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    sp.check(&distinct)
        .map_err(|m| format!("{m} on the refit rows"))?;
    Ok(sp.weights(lambda))
}

/// Summed squared holdout error of every λ for every voxel (n_λ × v,
/// row-major): ‖y‖² − 2 cᵀz + zᵀGz with z = diag(1/(s+λ)) a. In parallel
/// over blocks of voxels, each block reusing its own z and Gz for every λ.
fn holdout_loss(
    a: &Mat<f64>,
    c: &Mat<f64>,
    g: &Mat<f64>,
    s: &[f64],
    yy: &[f64],
    lambdas: &[f64],
) -> Vec<f64> {
    const BLOCK: usize = 256;
    let (q, v, n_l) = (a.nrows(), a.ncols(), lambdas.len());
    let starts: Vec<usize> = (0..v).step_by(BLOCK).collect();
    let blocks: Vec<Vec<f64>> = starts
        .par_iter()
        .map(|&j0| {
            let w = BLOCK.min(v - j0);
            let mut z = Mat::<f64>::zeros(q, w);
            let mut gz = Mat::<f64>::zeros(q, w);
            let mut out = vec![0.0; n_l * w];
            let mut d = vec![0.0; q];
            for (l, &lam) in lambdas.iter().enumerate() {
                for (dk, &e) in d.iter_mut().zip(s) {
                    *dk = 1.0 / (e + lam);
                }
                for jj in 0..w {
                    let (zc, ac) = (z.col_as_slice_mut(jj), a.col_as_slice(j0 + jj));
                    for ((zk, ak), dk) in zc.iter_mut().zip(ac).zip(&d) {
                        *zk = ak * dk;
                    }
                }
                matmul(
                    gz.as_mut(),
                    Accum::Replace,
                    g.as_ref(),
                    z.as_ref(),
                    1.0,
                    Par::Seq,
                );
                for jj in 0..w {
                    let (zc, gc, cc) = (
                        z.col_as_slice(jj),
                        gz.col_as_slice(jj),
                        c.col_as_slice(j0 + jj),
                    );
                    let (mut cross, mut quad) = (0.0, 0.0);
                    for k in 0..q {
                        cross += cc[k] * zc[k];
                        quad += zc[k] * gc[k];
                    }
                    out[l * w + jj] = yy[j0 + jj] - 2.0 * cross + quad;
                }
            }
            out
        })
        .collect();
    let mut loss = vec![0.0; n_l * v];
    for (&j0, blk) in starts.iter().zip(&blocks) {
        let w = BLOCK.min(v - j0);
        for l in 0..n_l {
            loss[l * v + j0..l * v + j0 + w].copy_from_slice(&blk[l * w..(l + 1) * w]);
        }
    }
    loss
}

/// The columns of `x` but the last (the ones) and `y`, centred on their
/// means over the rows; with the means.
fn centred(x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> (Mat<f64>, Mat<f64>, Vec<f64>, Vec<f64>) {
    let (n, p) = (x.nrows(), x.ncols() - 1);
    let mean = |m: MatRef<'_, f64>, j: usize| m.col(j).iter().sum::<f64>() / n as f64;
    let mx: Vec<f64> = (0..p).map(|j| mean(x, j)).collect();
    let my: Vec<f64> = (0..y.ncols()).map(|j| mean(y, j)).collect();
    let xc = Mat::from_fn(n, p, |i, j| x[(i, j)] - mx[j]);
    let yc = Mat::from_fn(n, y.ncols(), |i, j| y[(i, j)] - my[j]);
    (xc, yc, mx, my)
}

/// Weights of the centred problem with the intercept appended as the last
/// row: b = ȳ − x̄ᵀw, so that [X 1]·[w; b] = (X − x̄)w + ȳ.
fn with_intercept(w: Mat<f64>, mx: &[f64], my: &[f64]) -> Mat<f64> {
    let (p, v) = (w.nrows(), w.ncols());
    Mat::from_fn(p + 1, v, |k, j| {
        if k < p {
            w[(k, j)]
        } else {
            my[j] - (0..p).map(|i| mx[i] * w[(i, j)]).sum::<f64>()
        }
    })
}

/// [`fit`] with the last column of X (the ones) left unpenalised:
/// (XᵀX + λD)⁻¹Xᵀy with D = diag(1, …, 1, 0). Centring the other columns and
/// y on the fit rows makes the intercept the fit rows' mean and leaves
/// ordinary ridge on the rest, so the one-decomposition path still applies.
/// The weights' last row is the intercept.
pub fn fit_free_intercept(
    x_trn: MatRef<'_, f64>,
    y_trn: MatRef<'_, f64>,
    x_out: MatRef<'_, f64>,
    y_out: MatRef<'_, f64>,
    lambdas: &[f64],
) -> Result<HoldoutFit, String> {
    let (xc, yc, mx, my) = centred(x_trn, y_trn);
    let p = xc.ncols();
    let xo = Mat::from_fn(x_out.nrows(), p, |i, j| x_out[(i, j)] - mx[j]);
    let yo = Mat::from_fn(y_out.nrows(), y_out.ncols(), |i, j| y_out[(i, j)] - my[j]);
    let fit = fit(xc.as_ref(), yc.as_ref(), xo.as_ref(), yo.as_ref(), lambdas)?;
    Ok(HoldoutFit {
        weights: with_intercept(fit.weights, &mx, &my),
        ..fit
    })
}

/// [`fit_per_voxel`] with the last column unpenalised (as [`fit_free_intercept`]).
pub fn fit_per_voxel_free_intercept(
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    lambda: &[f64],
) -> Result<Mat<f64>, String> {
    let (xc, yc, mx, my) = centred(x, y);
    let w = fit_per_voxel(xc.as_ref(), yc.as_ref(), lambda)?;
    Ok(with_intercept(w, &mx, &my))
}

impl HoldoutFit {
    /// Predictions X W (n × v).
    pub fn predict(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        let mut out = Mat::<f64>::zeros(x.nrows(), self.weights.ncols());
        matmul(
            out.as_mut(),
            Accum::Replace,
            x,
            self.weights.as_ref(),
            1.0,
            par(),
        );
        out
    }
}

/// Lab08's grid: `np.logspace(np.log(1e-4), np.log(1e10 + 0.01), 20,
/// dtype=np.float32, base=np.e) - 0.01`, computed as numpy does (in float64,
/// cast to float32, then the float32 subtraction).
pub fn lab08_lambdas() -> Vec<f64> {
    let (lo, hi) = ((1e-4f64).ln(), (1e10f64 + 0.01).ln());
    (0..20)
        .map(|i| {
            let e = lo + (hi - lo) * i as f64 / 19.0;
            let x = e.exp() as f32;
            (x - 0.01f32) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::ridge::from_row_major;

    fn load(name: &str) -> crate::npy::Array<f64> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ridge_holdout")
            .join(format!("{name}.npy"));
        crate::npy::read_f64(&p).unwrap()
    }

    fn mat(name: &str) -> Mat<f64> {
        let a = load(name);
        let (r, c) = a.rows_cols();
        from_row_major(&a.data, r, c)
    }

    /// (XᵀX + λD)⁻¹Xᵀy by a dense solve, D = diag(1, …, 1, d_last).
    fn direct(x: &Mat<f64>, y: &Mat<f64>, lam: f64, d_last: f64) -> Mat<f64> {
        let q = x.ncols();
        let mut a = x.transpose() * x;
        for k in 0..q {
            a[(k, k)] += lam * if k + 1 == q { d_last } else { 1.0 };
        }
        let b = x.transpose() * y;
        use faer::linalg::solvers::Solve;
        a.partial_piv_lu().solve(&b)
    }

    #[test]
    fn a_free_intercept_is_ridge_with_the_ones_column_unpenalised() {
        let (x, y) = (mat("x_trn"), mat("y_trn"));
        let (xo, yo) = (mat("x_out"), mat("y_out"));
        let lambdas = [0.5, 30.0, 900.0];
        let fit =
            fit_free_intercept(x.as_ref(), y.as_ref(), xo.as_ref(), yo.as_ref(), &lambdas).unwrap();
        let rel = |g: f64, w: f64| (g - w).abs() / w.abs().max(1e-9);
        for j in 0..y.ncols() {
            let lam = lambdas[fit.best[j]];
            let want = direct(&x, &y, lam, 0.0);
            for k in 0..x.ncols() {
                assert!(
                    rel(fit.weights[(k, j)], want[(k, j)]) < 1e-9,
                    "voxel {j} row {k}"
                );
            }
        }
        // Penalised (the seed's) differs: the intercept is shrunk.
        let pen = direct(&x, &y, 900.0, 1.0);
        let free = direct(&x, &y, 900.0, 0.0);
        let last = x.ncols() - 1;
        assert!((pen[(last, 0)] - free[(last, 0)]).abs() > 1e-6);
        // The refit's per-voxel path agrees with the same dense solves.
        let per: Vec<f64> = (0..y.ncols()).map(|j| lambdas[j % 3]).collect();
        let w = fit_per_voxel_free_intercept(x.as_ref(), y.as_ref(), &per).unwrap();
        let wp = fit_per_voxel(x.as_ref(), y.as_ref(), &per).unwrap();
        for j in 0..y.ncols() {
            let (f, p) = (direct(&x, &y, per[j], 0.0), direct(&x, &y, per[j], 1.0));
            for k in 0..x.ncols() {
                assert!(rel(w[(k, j)], f[(k, j)]) < 1e-9);
                assert!(rel(wp[(k, j)], p[(k, j)]) < 1e-9);
            }
        }
    }

    #[test]
    fn the_seeds_grid_negative_values_included() {
        let want = load("lambdas").data;
        let got = lab08_lambdas();
        assert_eq!(got.len(), 20);
        for (g, w) in got.iter().zip(&want) {
            // numpy's float32 logspace: the same float32 value, bit for bit.
            assert_eq!(*g as f32, *w as f32, "{got:?} vs {want:?}");
        }
        assert!(got[..3].iter().all(|l| *l < 0.0) && got[3] > 0.0);
    }

    #[test]
    fn matches_the_seeds_explicit_inverse_solver() {
        let lambdas = load("lambdas").data;
        let fit = fit(
            mat("x_trn").as_ref(),
            mat("y_trn").as_ref(),
            mat("x_out").as_ref(),
            mat("y_out").as_ref(),
            &lambdas,
        )
        .unwrap();
        let best: Vec<usize> = load("best").data.iter().map(|&b| b as usize).collect();
        // The same λ for every voxel (the fixture's picks include the
        // negative λ₀ and interior ones).
        assert_eq!(fit.best, best);
        assert!(best.contains(&0) && best.iter().any(|&b| b > 5));
        // Holdout errors, weights and validation R² within 1e-8 relative:
        // the seed inverts per λ, runner decomposes once; both in f64 on a
        // well-conditioned problem (cond(XᵀX) ≈ 10).
        let rel = |g: f64, w: f64| (g - w).abs() / w.abs().max(1e-12);
        let loss = load("loss").data;
        for (g, w) in fit.loss.iter().zip(&loss) {
            assert!(rel(*g, *w) < 1e-8, "loss {g} vs {w}");
        }
        let w = mat("weights");
        for i in 0..w.nrows() {
            for j in 0..w.ncols() {
                assert!(
                    (fit.weights[(i, j)] - w[(i, j)]).abs() < 1e-8 * w[(i, j)].abs().max(1.0),
                    "weight ({i},{j})"
                );
            }
        }
        let yv = mat("y_val");
        let pred = fit.predict(mat("x_val").as_ref());
        let r2 = load("r2").data;
        for j in 0..yv.ncols() {
            let t: Vec<f64> = (0..yv.nrows()).map(|i| yv[(i, j)]).collect();
            let p: Vec<f64> = (0..yv.nrows()).map(|i| pred[(i, j)]).collect();
            let got = crate::numerics::metrics::r2(&t, &p);
            assert!(rel(got, r2[j]) < 1e-8, "voxel {j}: R² {got} vs {}", r2[j]);
        }
    }

    #[test]
    fn a_lambda_that_makes_the_system_indefinite_is_an_error() {
        let x = Mat::<f64>::from_fn(6, 2, |i, j| (i + j) as f64 * 0.1);
        let y = Mat::<f64>::from_fn(6, 1, |i, _| i as f64);
        let err = fit(x.as_ref(), y.as_ref(), x.as_ref(), y.as_ref(), &[-100.0])
            .err()
            .unwrap();
        assert!(
            err.starts_with("λ = -1e2 makes XᵀX + λI singular or indefinite"),
            "{err}"
        );
    }
}
