//! Times runner's Lab08 ridge (λ per voxel on a holdout set, seed 003) on
//! matrices written by `bench/lab08.py`, and compares with the numpy
//! reference of the same run.
//!
//! ```text
//! bench_lab08 DIR [--steps] [--table]
//! ```
//!
//! Reads `DIR/{x,y}_{trn,out,val}.npy` (float64; `x_*` already z-scored with
//! the intercept column appended, as the seed's `split_normalize_feats`
//! returns them) with [`runner::npy::read_f64`] (not timed), then times
//! [`runner::numerics::ridge_holdout::fit`] on train + holdout with the
//! seed's 20-λ grid ([`runner::numerics::ridge_holdout::lab08_lambdas`]),
//! [`HoldoutFit::predict`] on val, and R² per voxel
//! ([`runner::numerics::metrics::r2`]). Writes `DIR/runner_best.npy` (λ
//! index per voxel) and `DIR/runner_r2.npy`.
//!
//! When `DIR/numpy_best.npy`, `numpy_r2.npy` and `numpy_loss.npy` exist (the
//! numpy run of `bench/lab08.py`), compares: the count of voxels whose λ index
//! differs, the largest relative gap of numpy's own holdout losses between
//! the two indices at such a voxel (a near tie is decided by rounding), and
//! max |ΔR²|.
//!
//! `--steps` then runs the arithmetic of `ridge_holdout::fit` once more, step
//! by step with a timer around each (a copy of its code, kept in step with
//! src/numerics/ridge_holdout.rs; checked to choose the same λ), to show where
//! the time goes. `--table` also prints a human-readable table (with numpy's
//! times from `DIR/numpy.json` when present) on stderr.
//!
//! Prints one JSON line on stdout: sizes, threads, per stage seconds, CPU
//! seconds and peak RSS (VmHWM, reset through `/proc/self/clear_refs` before
//! each stage), the comparison, and the steps. Threads: `RAYON_NUM_THREADS`,
//! else all cores.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};
use rayon::prelude::*;
use runner::npy;
use runner::numerics::ridge::from_row_major;
use runner::numerics::ridge_holdout::{self, HoldoutFit, lab08_lambdas};

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak RSS since the last reset, in MiB.
fn peak_mib() -> f64 {
    kib("VmHWM:") as f64 / 1024.0
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds of this process, all threads.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

struct Stages(Vec<(String, f64, f64, f64)>);

impl Stages {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        reset_peak();
        let (t, c) = (Instant::now(), cpu_s());
        let out = f()?;
        let wall = t.elapsed().as_secs_f64();
        self.0.push((name.into(), wall, cpu_s() - c, peak_mib()));
        Ok(out)
    }
}

fn load(dir: &Path, name: &str) -> Result<npy::Array<f64>, String> {
    let p = dir.join(format!("{name}.npy"));
    npy::read_f64(&p).map_err(|e| format!("{}: {e}", p.display()))
}

fn load_mat(dir: &Path, name: &str) -> Result<Mat<f64>, String> {
    let a = load(dir, name)?;
    if a.shape.len() != 2 {
        return Err(format!("{name}.npy: want 2-d, got {:?}", a.shape));
    }
    let (r, c) = a.rows_cols();
    Ok(from_row_major(&a.data, r, c))
}

fn par() -> Par {
    Par::rayon(0)
}

/// Named step timings, in seconds.
type Laps = Vec<(&'static str, f64)>;

/// `ridge_holdout::fit`'s arithmetic with a timer per step. Returns the
/// steps and the chosen λ indices.
fn steps(
    x_trn: MatRef<'_, f64>,
    y_trn: MatRef<'_, f64>,
    x_out: MatRef<'_, f64>,
    y_out: MatRef<'_, f64>,
    lambdas: &[f64],
) -> Result<(Laps, Vec<usize>), String> {
    let mut out = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &'static str, out: &mut Laps| {
        out.push((name, t.elapsed().as_secs_f64()));
        t = Instant::now();
    };
    let q = x_trn.ncols();
    let v = y_trn.ncols();
    let mut gram = Mat::<f64>::zeros(q, q);
    matmul(
        gram.as_mut(),
        Accum::Replace,
        x_trn.transpose(),
        x_trn,
        1.0,
        par(),
    );
    lap("gram XᵀX", &mut out);
    let evd = gram
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| format!("eigh: {e:?}"))?;
    let vecs = evd.U().to_owned();
    let s: Vec<f64> = (0..q).map(|i| evd.S()[i]).collect();
    lap("eigh", &mut out);
    let mut xty = Mat::<f64>::zeros(q, v);
    matmul(
        xty.as_mut(),
        Accum::Replace,
        x_trn.transpose(),
        y_trn,
        1.0,
        par(),
    );
    lap("XᵀY", &mut out);
    let mut a = Mat::<f64>::zeros(q, v);
    matmul(
        a.as_mut(),
        Accum::Replace,
        vecs.transpose(),
        xty.as_ref(),
        1.0,
        par(),
    );
    lap("A = Vᵀ(XᵀY)", &mut out);
    let mut b = Mat::<f64>::zeros(x_out.nrows(), q);
    matmul(b.as_mut(), Accum::Replace, x_out, vecs.as_ref(), 1.0, par());
    let mut c = Mat::<f64>::zeros(q, v);
    matmul(c.as_mut(), Accum::Replace, b.transpose(), y_out, 1.0, par());
    let mut g = Mat::<f64>::zeros(q, q);
    matmul(
        g.as_mut(),
        Accum::Replace,
        b.transpose(),
        b.as_ref(),
        1.0,
        par(),
    );
    lap("B = X_out V, c = Bᵀy_out, G = BᵀB", &mut out);
    let yy: Vec<f64> = (0..v)
        .map(|j| {
            (0..y_out.nrows())
                .map(|i| y_out[(i, j)] * y_out[(i, j)])
                .sum()
        })
        .collect();
    lap("‖y_out‖² per voxel", &mut out);
    let n_l = lambdas.len();
    let per_lambda: Vec<Vec<f64>> = lambdas
        .par_iter()
        .map(|&lam| {
            let mut z = a.clone();
            for k in 0..q {
                let d = 1.0 / (s[k] + lam);
                for j in 0..v {
                    z[(k, j)] *= d;
                }
            }
            let mut gz = Mat::<f64>::zeros(q, v);
            matmul(
                gz.as_mut(),
                Accum::Replace,
                g.as_ref(),
                z.as_ref(),
                1.0,
                Par::Seq,
            );
            (0..v)
                .map(|j| {
                    let (mut cross, mut quad) = (0.0, 0.0);
                    for k in 0..q {
                        cross += c[(k, j)] * z[(k, j)];
                        quad += z[(k, j)] * gz[(k, j)];
                    }
                    yy[j] - 2.0 * cross + quad
                })
                .collect()
        })
        .collect();
    lap("per-λ loss (20 × G·DA)", &mut out);
    let mut loss = vec![0.0; n_l * v];
    for (l, row) in per_lambda.iter().enumerate() {
        loss[l * v..(l + 1) * v].copy_from_slice(row);
    }
    let best: Vec<usize> = (0..v)
        .map(|j| {
            (0..n_l).fold(0, |bi, l| {
                let (x, y) = (loss[l * v + j], loss[bi * v + j]);
                if x < y || y.is_nan() { l } else { bi }
            })
        })
        .collect();
    lap("loss copy + argmin", &mut out);
    let mut za = Mat::<f64>::zeros(q, v);
    for j in 0..v {
        let lam = lambdas[best[j]];
        for k in 0..q {
            za[(k, j)] = a[(k, j)] / (s[k] + lam);
        }
    }
    let mut weights = Mat::<f64>::zeros(q, v);
    matmul(
        weights.as_mut(),
        Accum::Replace,
        vecs.as_ref(),
        za.as_ref(),
        1.0,
        par(),
    );
    lap("weights V·(DA)", &mut out);
    std::hint::black_box(&weights);

    // Suggested (not in ridge_holdout.rs): the same per-element arithmetic
    // over contiguous column slices instead of `m[(k, j)]` (bounds-checked
    // in this one-profile build, and the `z` scaling walks rows of a
    // column-major matrix), and parallel over blocks of voxels instead of
    // over λ (no clone of A per λ; each block stays in cache).
    let yy2: Vec<f64> = (0..v)
        .map(|j| y_out.col(j).iter().map(|x| x * x).sum())
        .collect();
    lap("(suggested) ‖y_out‖² over column iterators", &mut out);
    let loss2 = loss_blocked(&a, &c, &g, &s, &yy2, lambdas);
    lap("(suggested) per-λ loss in voxel blocks of 256", &mut out);
    let best2: Vec<usize> = (0..v)
        .map(|j| {
            (0..n_l).fold(0, |bi, l| {
                let (x, y) = (loss2[l * v + j], loss2[bi * v + j]);
                if x < y || y.is_nan() { l } else { bi }
            })
        })
        .collect();
    let n_diff = best2.iter().zip(&best).filter(|(a, b)| a != b).count();
    let rel = loss2
        .iter()
        .zip(&loss)
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0, f64::max);
    eprintln!(
        "bench_lab08: suggested loss loop: {n_diff} λ-index differences, max rel. Δloss {rel:.1e}"
    );
    Ok((out, best))
}

/// The holdout loss of every λ (n_λ × v row-major), parallel over blocks of
/// voxels, with slice loops.
fn loss_blocked(
    a: &Mat<f64>,
    c: &Mat<f64>,
    g: &Mat<f64>,
    s: &[f64],
    yy: &[f64],
    lambdas: &[f64],
) -> Vec<f64> {
    const BLK: usize = 256;
    let (q, v, n_l) = (a.nrows(), a.ncols(), lambdas.len());
    let starts: Vec<usize> = (0..v).step_by(BLK).collect();
    let blocks: Vec<Vec<f64>> = starts
        .par_iter()
        .map(|&j0| {
            let w = BLK.min(v - j0);
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
        let w = BLK.min(v - j0);
        for l in 0..n_l {
            loss[l * v + j0..l * v + j0 + w].copy_from_slice(&blk[l * w..(l + 1) * w]);
        }
    }
    loss
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn run(dir: PathBuf, want_steps: bool, table: bool) -> Result<String, String> {
    let mut st = Stages(Vec::new());
    let (x_trn, y_trn, x_out, y_out, x_val, y_val) = st.run("load", || {
        Ok((
            load_mat(&dir, "x_trn")?,
            load_mat(&dir, "y_trn")?,
            load_mat(&dir, "x_out")?,
            load_mat(&dir, "y_out")?,
            load_mat(&dir, "x_val")?,
            load_mat(&dir, "y_val")?,
        ))
    })?;
    let lambdas = lab08_lambdas();
    if let Ok(l) = load(&dir, "lambdas") {
        let same = l.data.len() == lambdas.len()
            && l.data
                .iter()
                .zip(&lambdas)
                .all(|(a, b)| *a as f32 == *b as f32);
        if !same {
            return Err(format!(
                "lambdas.npy {:?} is not the seed's grid {lambdas:?}",
                l.data
            ));
        }
    }
    let (v, n_val) = (y_trn.ncols(), y_val.nrows());

    let fit: HoldoutFit = st.run("fit", || {
        ridge_holdout::fit(
            x_trn.as_ref(),
            y_trn.as_ref(),
            x_out.as_ref(),
            y_out.as_ref(),
            &lambdas,
        )
    })?;
    let pred = st.run("predict_val", || Ok(fit.predict(x_val.as_ref())))?;
    let r2: Vec<f64> = st.run("r2", || {
        Ok((0..v)
            .into_par_iter()
            .map(|j| runner::numerics::metrics::r2(y_val.col_as_slice(j), pred.col_as_slice(j)))
            .collect())
    })?;
    drop(pred);

    let best_i: Vec<i64> = fit.best.iter().map(|&b| b as i64).collect();
    npy::write(&dir.join("runner_best.npy"), &[v], &best_i)
        .map_err(|e| format!("runner_best.npy: {e}"))?;
    npy::write(&dir.join("runner_r2.npy"), &[v], &r2).map_err(|e| format!("runner_r2.npy: {e}"))?;

    // Against the numpy run.
    let mut cmp = String::from("null");
    if dir.join("numpy_best.npy").exists() {
        let nb = load(&dir, "numpy_best")?.data;
        let nr = load(&dir, "numpy_r2")?.data;
        let nl = load(&dir, "numpy_loss")?.data;
        if nb.len() != v || nr.len() != v || nl.len() != lambdas.len() * v {
            return Err("numpy_* outputs do not match the sizes".into());
        }
        let (mut n_diff, mut gap, mut dr2, mut dr2_same) = (0usize, 0.0f64, 0.0f64, 0.0f64);
        for j in 0..v {
            let d = (r2[j] - nr[j]).abs();
            dr2 = dr2.max(d);
            if nb[j] as usize != fit.best[j] {
                n_diff += 1;
                let (ln, lr) = (nl[nb[j] as usize * v + j], nl[fit.best[j] * v + j]);
                gap = gap.max((lr - ln).abs() / ln.abs());
            } else {
                dr2_same = dr2_same.max(d);
            }
        }
        cmp = format!(
            "{{\"lambda_index_disagreements\": {n_diff}, \"max_rel_loss_gap_at_disagreements\": \
             {gap:e}, \"max_abs_delta_r2\": {dr2:e}, \"max_abs_delta_r2_same_lambda\": {dr2_same:e}}}"
        );
    }
    let mut hist = vec![0usize; lambdas.len()];
    for &b in &fit.best {
        hist[b] += 1;
    }

    let mut steps_json = String::from("null");
    if want_steps {
        let (s, b) = steps(
            x_trn.as_ref(),
            y_trn.as_ref(),
            x_out.as_ref(),
            y_out.as_ref(),
            &lambdas,
        )?;
        if b != fit.best {
            return Err("--steps chose other λ than ridge_holdout::fit: out of step".into());
        }
        let total: f64 = s
            .iter()
            .filter(|x| !x.0.starts_with("(suggested)"))
            .map(|x| x.1)
            .sum();
        steps_json = format!(
            "{{{}, \"total\": {total:.4}}}",
            s.iter()
                .map(|(n, t)| format!("{}: {t:.4}", json_str(n)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    if table {
        print_table(&dir, &st);
    }

    let stages: Vec<String> =
        st.0.iter()
            .map(|(n, s, c, m)| {
                format!("\"{n}\": {{\"s\": {s:.4}, \"cpu_s\": {c:.2}, \"peak_mib\": {m:.1}}}")
            })
            .collect();
    let solve_peak =
        st.0.iter()
            .filter(|s| s.0 != "load")
            .map(|s| s.3)
            .fold(0.0, f64::max);
    Ok(format!(
        "{{\"threads\": {}, \"n_trn\": {}, \"n_out\": {}, \"n_val\": {n_val}, \"q\": {}, \
         \"voxels\": {v}, \"n_lambdas\": {}, \"stages\": {{{}}}, \"peak_mib\": {solve_peak:.1}, \
         \"lambda_index_histogram\": {hist:?}, \"compare\": {cmp}, \"steps\": {steps_json}}}",
        rayon::current_num_threads(),
        x_trn.nrows(),
        x_out.nrows(),
        x_trn.ncols(),
        lambdas.len(),
        stages.join(", "),
    ))
}

/// Stages against numpy's (`DIR/numpy.json`, written by bench/lab08.py).
fn print_table(dir: &Path, st: &Stages) {
    let np: Option<serde_json::Value> = std::fs::read_to_string(dir.join("numpy.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let get = |name: &str, key: &str| -> Option<f64> {
        np.as_ref()?.get("stages")?.get(name)?.get(key)?.as_f64()
    };
    eprintln!("| stage | numpy s | runner s | ratio | numpy peak MiB | runner peak MiB |");
    eprintln!("|---|---|---|---|---|---|");
    let f = |x: Option<f64>, p: usize| x.map_or("–".to_string(), |x| format!("{x:.p$}"));
    for (name, s, _, m) in &st.0 {
        let ns = get(name, "s");
        let ratio = ns.map_or("–".into(), |n| format!("{:.1}×", n / s));
        eprintln!(
            "| {name} | {} | {s:.2} | {ratio} | {} | {m:.0} |",
            f(ns, 2),
            f(get(name, "peak_mib"), 0)
        );
    }
}

fn main() -> ExitCode {
    let (mut dir, mut want_steps, mut table) = (None, false, false);
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--steps" => want_steps = true,
            "--table" => table = true,
            s if s.starts_with('-') || dir.is_some() => {
                eprintln!("usage: bench_lab08 DIR [--steps] [--table] (got {s})");
                return ExitCode::from(2);
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: bench_lab08 DIR [--steps] [--table]");
        return ExitCode::from(2);
    };
    match run(dir, want_steps, table) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_lab08: {e}");
            ExitCode::FAILURE
        }
    }
}
