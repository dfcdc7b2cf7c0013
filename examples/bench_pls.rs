//! Times runner's PLS regression (seed 001, Kay V4: scikit-learn's
//! `PLSRegression(n_components=25, scale=False)` from AlexNet conv3 features
//! onto the V4 voxels and onto their average) on matrices written by
//! `bench/pls.py`, and compares with the scikit-learn run of the same data.
//!
//! ```text
//! bench_pls DIR [--components K]
//! ```
//!
//! Reads `DIR/x_train.npy`, `DIR/x_test.npy` (float32 features, cast to
//! float64 as scikit-learn does), `DIR/y_train.npy` (n × voxels) and
//! `DIR/y_avg.npy` (n × 1, the mean over voxels) with
//! [`runner::npy::read_f64`] (not timed), then times
//! [`runner::numerics::pls::fit`] + [`Pls::predict`] on the test rows, for the
//! voxels and for the average (K components, default 25, `scale = false`).
//! Writes `DIR/runner_pred_{voxels,avg}.npy`.
//!
//! When `DIR/sklearn.json` and `DIR/sklearn_pred_{voxels,avg}.npy` exist
//! (the scikit-learn run of `bench/pls.py`), compares the iteration counts
//! per component and the predictions: max |Δŷ| / max |ŷ_sklearn|.
//!
//! Prints one JSON line on stdout: sizes, threads, per stage seconds, CPU
//! seconds and peak RSS (VmHWM, reset through `/proc/self/clear_refs` before
//! each stage), n_iter and the comparison. Threads: `RAYON_NUM_THREADS`,
//! else all cores.

use std::path::PathBuf;
use std::process::ExitCode;

use faer::Mat;
use runner::npy;
use runner::numerics::pls::{self, Pls};

#[path = "common/proc_stats.rs"]
mod proc_stats;
use proc_stats::{Stages, load, load_mat};

/// max |a − b| / max |b| for a (column-major) against b (row-major, as saved).
fn rel_diff(a: &Mat<f64>, b: &[f64]) -> f64 {
    let t = a.ncols();
    let (mut d, mut mx) = (0.0f64, 0.0f64);
    for j in 0..t {
        let col = a.col_as_slice(j);
        for (i, v) in col.iter().enumerate() {
            let r = b[i * t + j];
            d = d.max((v - r).abs());
            mx = mx.max(r.abs());
        }
    }
    d / mx
}

fn run(dir: PathBuf, k: usize) -> Result<String, String> {
    let mut st = Stages(Vec::new());
    let (x, x_test, y, y_avg) = st.run("load", || {
        Ok((
            load_mat(&dir, "x_train")?,
            load_mat(&dir, "x_test")?,
            load_mat(&dir, "y_train")?,
            load_mat(&dir, "y_avg")?,
        ))
    })?;
    let fit_v: Pls = st.run("fit_voxels", || pls::fit(x.as_ref(), y.as_ref(), k, false))?;
    let pred_v = st.run("predict_voxels", || Ok(fit_v.predict(x_test.as_ref())))?;
    let (iter_v, used_v, warn_v) = (
        fit_v.n_iter.clone(),
        fit_v.components_used,
        fit_v.warnings.clone(),
    );
    drop(fit_v);
    let fit_a: Pls = st.run("fit_avg", || pls::fit(x.as_ref(), y_avg.as_ref(), k, false))?;
    let pred_a = st.run("predict_avg", || Ok(fit_a.predict(x_test.as_ref())))?;

    for (name, p) in [("voxels", &pred_v), ("avg", &pred_a)] {
        let (m, t) = (p.nrows(), p.ncols());
        let mut rm = vec![0.0; m * t];
        for j in 0..t {
            for (i, v) in p.col_as_slice(j).iter().enumerate() {
                rm[i * t + j] = *v;
            }
        }
        npy::write(&dir.join(format!("runner_pred_{name}.npy")), &[m, t], &rm)
            .map_err(|e| format!("runner_pred_{name}.npy: {e}"))?;
    }

    let mut cmp = String::from("null");
    if let Ok(s) = std::fs::read_to_string(dir.join("sklearn.json")) {
        let sk: serde_json::Value = serde_json::from_str(&s).map_err(|e| e.to_string())?;
        let iters = |key: &str| -> Vec<usize> {
            sk[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64())
                        .map(|v| v as usize)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (sv, sa) = (iters("n_iter_voxels"), iters("n_iter_avg"));
        let dv = rel_diff(&pred_v, &load(&dir, "sklearn_pred_voxels")?.data);
        let da = rel_diff(&pred_a, &load(&dir, "sklearn_pred_avg")?.data);
        cmp = format!(
            "{{\"n_iter_voxels_equal\": {}, \"n_iter_avg_equal\": {}, \
             \"rel_max_dpred_voxels\": {dv:e}, \"rel_max_dpred_avg\": {da:e}}}",
            sv == iter_v,
            sa == fit_a.n_iter
        );
    }

    let stages: Vec<String> =
        st.0.iter()
            .map(|(n, s, c, m)| {
                format!("\"{n}\": {{\"s\": {s:.4}, \"cpu_s\": {c:.2}, \"peak_mib\": {m:.1}}}")
            })
            .collect();
    let peak =
        st.0.iter()
            .filter(|s| s.0 != "load")
            .map(|s| s.3)
            .fold(0.0, f64::max);
    Ok(format!(
        "{{\"threads\": {}, \"n_train\": {}, \"n_test\": {}, \"p\": {}, \"voxels\": {}, \
         \"components\": {k}, \"stages\": {{{}}}, \"peak_mib\": {peak:.1}, \
         \"n_iter_voxels\": {iter_v:?}, \"components_used_voxels\": {used_v}, \
         \"warnings_voxels\": {warn_v:?}, \"n_iter_avg\": {:?}, \"compare\": {cmp}}}",
        rayon::current_num_threads(),
        x.nrows(),
        x_test.nrows(),
        x.ncols(),
        y.ncols(),
        stages.join(", "),
        fit_a.n_iter,
    ))
}

fn main() -> ExitCode {
    let usage = "usage: bench_pls DIR [--components K]";
    let (mut dir, mut k) = (None, 25usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--components" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => k = v,
                None => {
                    eprintln!("{usage}");
                    return ExitCode::from(2);
                }
            },
            s if s.starts_with('-') || dir.is_some() => {
                eprintln!("{usage} (got {s})");
                return ExitCode::from(2);
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    match run(dir, k) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_pls: {e}");
            ExitCode::FAILURE
        }
    }
}
