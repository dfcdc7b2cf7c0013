//! Times runner's RSA (seed 004, csci591: CNN layers against mouse V1) on
//! matrices written by `bench/rsa.py`, and compares with the numpy/scipy run
//! of the same data.
//!
//! ```text
//! bench_rsa DIR
//! ```
//!
//! Reads `DIR/neural.npy` (stimuli × neurons, float32, read as f64) and
//! `DIR/layer_0.npy` … `DIR/layer_{L-1}.npy` (stimuli × units; L from the
//! files present) with [`runner::npy::read_f64`] (stage `load`, not counted
//! in the totals), then times, per stage summed over the neural data and the
//! layers:
//! - `rdm`: [`rsa::rdm`] with the correlation method (z-score, GEMM);
//! - `upper`: [`rsa::upper`], the n(n−1)/2 vector;
//! - `pearson`, `spearman`, `kendall_tau_a`: [`rsa::compare`] of each
//!   layer's vector with the neural one.
//!
//! When `DIR/python_neural_upper.npy` exists (the numpy run of
//! `bench/rsa.py`), reports max |Δ| between runner's and numpy's neural RDM
//! vectors.
//!
//! Prints one JSON line on stdout: sizes, threads, per stage seconds, CPU
//! seconds and peak RSS (VmHWM, reset through `/proc/self/clear_refs` before
//! each stage; the peak is the largest over the stage's calls), the
//! comparisons per layer and the RDM check. Threads: `RAYON_NUM_THREADS`,
//! else all cores.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use runner::numerics::rsa::{self, Compare, RdmMethod};

#[path = "common/proc_stats.rs"]
mod proc_stats;
use proc_stats::{Stages, load};

const STAGES: [&str; 5] = ["rdm", "upper", "pearson", "spearman", "kendall_tau_a"];

fn rdm_vector(st: &mut Stages, x: &runner::npy::Array<f64>) -> Result<Vec<f64>, String> {
    let (n, p) = x.rows_cols();
    let r = st.run("rdm", || {
        Ok(rsa::rdm(&x.data, n, p, RdmMethod::Correlation))
    })?;
    if !r.constant_patterns.is_empty() {
        eprintln!("bench_rsa: constant patterns {:?}", r.constant_patterns);
    }
    st.run("upper", || Ok(rsa::upper(&r.data, n)))
}

fn run(dir: PathBuf) -> Result<String, String> {
    let mut st = Stages(Vec::new());
    let neural = st.run("load", || load(&dir, "neural"))?;
    let (n, p) = neural.rows_cols();
    let nv = rdm_vector(&mut st, &neural)?;
    drop(neural);
    let mut widths = Vec::new();
    let mut results = Vec::new();
    for k in 0.. {
        if !dir.join(format!("layer_{k}.npy")).exists() {
            break;
        }
        let x = st.run("load", || load(&dir, &format!("layer_{k}")))?;
        if x.rows_cols().0 != n {
            return Err(format!(
                "layer_{k}: {} stimuli, neural {n}",
                x.rows_cols().0
            ));
        }
        widths.push(x.rows_cols().1);
        let lv = rdm_vector(&mut st, &x)?;
        drop(x);
        let mut cmp = Vec::new();
        for m in [Compare::Pearson, Compare::Spearman, Compare::KendallTauA] {
            let v = st.run(m.name(), || Ok(rsa::compare(&lv, &nv, m)))?;
            cmp.push(format!(
                "\"{}\": {}",
                m.name(),
                v.map_or("null".into(), |v| format!("{v:.17e}"))
            ));
        }
        results.push(format!("{{{}}}", cmp.join(", ")));
    }

    let mut check = String::from("null");
    if dir.join("python_neural_upper.npy").exists() {
        let py = load(&dir, "python_neural_upper")?.data;
        if py.len() != nv.len() {
            return Err("python_neural_upper.npy: wrong length".into());
        }
        let d = nv
            .iter()
            .zip(&py)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        check = format!("{{\"max_abs_d_neural_rdm\": {d:e}}}");
    }

    // Sum the calls of each stage.
    let mut agg: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for (name, s, c, m) in &st.0 {
        let e = agg.entry(name.as_str()).or_insert((0.0, 0.0, 0.0));
        e.0 += s;
        e.1 += c;
        e.2 = e.2.max(*m);
    }
    let stages: Vec<String> = std::iter::once("load")
        .chain(STAGES)
        .filter_map(|k| agg.get(k).map(|v| (k, v)))
        .map(|(k, (s, c, m))| {
            format!("\"{k}\": {{\"s\": {s:.4}, \"cpu_s\": {c:.2}, \"peak_mib\": {m:.1}}}")
        })
        .collect();
    let peak = STAGES
        .iter()
        .filter_map(|k| agg.get(k))
        .map(|v| v.2)
        .fold(0.0, f64::max);
    Ok(format!(
        "{{\"threads\": {}, \"stimuli\": {n}, \"neurons\": {p}, \"widths\": {widths:?}, \
         \"entries\": {}, \"stages\": {{{}}}, \"peak_mib\": {peak:.1}, \
         \"comparisons\": [{}], \"check\": {check}}}",
        rayon::current_num_threads(),
        nv.len(),
        stages.join(", "),
        results.join(", "),
    ))
}

fn main() -> ExitCode {
    let usage = "usage: bench_rsa DIR";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    if dir.starts_with('-') {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    match run(PathBuf::from(dir)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_rsa: {e}");
            ExitCode::FAILURE
        }
    }
}
