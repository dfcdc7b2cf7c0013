//! Times runner's Lab08 ridge (λ per voxel on a holdout set, seed 003) on
//! matrices written by `bench/lab08.py`, and compares with the numpy
//! reference of the same run.
//!
//! ```text
//! bench_lab08 DIR [--table]
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
//! `--table` also prints a human-readable table (with numpy's
//! times from `DIR/numpy.json` when present) on stderr.
//!
//! Prints one JSON line on stdout: sizes, threads, per stage seconds, CPU
//! seconds and peak RSS (VmHWM, reset through `/proc/self/clear_refs` before
//! each stage) and the comparison. Threads: `RAYON_NUM_THREADS`,
//! else all cores.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rayon::prelude::*;
use runner::npy;
use runner::numerics::ridge_holdout::{self, HoldoutFit, lab08_lambdas};

#[path = "common/proc_stats.rs"]
mod proc_stats;
use proc_stats::{Stages, load, load_mat};

fn run(dir: PathBuf, table: bool) -> Result<String, String> {
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
         \"lambda_index_histogram\": {hist:?}, \"compare\": {cmp}}}",
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
    let (mut dir, mut table) = (None, false);
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--table" => table = true,
            s if s.starts_with('-') || dir.is_some() => {
                eprintln!("usage: bench_lab08 DIR [--table] (got {s})");
                return ExitCode::from(2);
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: bench_lab08 DIR [--table]");
        return ExitCode::from(2);
    };
    match run(dir, table) {
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
