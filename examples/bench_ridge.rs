//! Times runner's ridge stage on matrices written by `bench/ridge.py`.
//!
//! ```text
//! bench_ridge DIR [--repeats N] [--save-pred PATH]
//! ```
//!
//! Reads `DIR/x_train.npy` (n_train × p), `DIR/x_test.npy` (n_test × p),
//! `DIR/y_train.npy` (n_train × v) and `DIR/alphas.npy` (the α grid), then
//! times, with wall clocks, [`runner::numerics::ridge::decompose`] and
//! [`runner::numerics::ridge::ridge_cv`] (all voxels, one shared α, intercept fitted —
//! the settings of scikit-learn's default `RidgeCV`). Loading the files is not
//! counted. Each repeat starts again from the loaded matrices; the best time
//! of each phase (and the best total) over the repeats is reported.
//!
//! Prints one JSON line on stdout: sizes, mode, phase times, the chosen α
//! (index and value) and the first 5 test predictions of the first voxel.
//! `--save-pred PATH` also writes all test predictions (n_test × v, f64) as
//! `.npy`, after the timing, for a full cross-check.
//!
//! Threads: the global rayon pool (faer's parallelism) gets `RAYON_NUM_THREADS`
//! threads when that variable is set, else `available_parallelism()`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use runner::npy;
use runner::numerics::ridge::{Mode, decompose, ridge_cv};

struct Args {
    dir: PathBuf,
    repeats: usize,
    save_pred: Option<PathBuf>,
    /// Split the voxels into this many contiguous ROIs and fit each on its
    /// own (one α per ROI) from one shared decomposition, as an experiment does.
    rois: usize,
}

fn usage() -> String {
    "usage: bench_ridge DIR [--repeats N] [--save-pred PATH] [--rois K]".to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut dir = None;
    let mut repeats = 1usize;
    let mut save_pred = None;
    let mut rois = 1usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--repeats" | "-n" => {
                let v = it.next().ok_or_else(usage)?;
                repeats = v
                    .parse()
                    .map_err(|_| format!("--repeats: not a positive integer: {v}"))?;
                if repeats == 0 {
                    return Err("--repeats must be at least 1".into());
                }
            }
            "--rois" => {
                let v = it.next().ok_or_else(usage)?;
                rois = v
                    .parse()
                    .ok()
                    .filter(|&k| k > 0)
                    .ok_or(format!("--rois: not a positive integer: {v}"))?;
            }
            "--save-pred" => save_pred = Some(PathBuf::from(it.next().ok_or_else(usage)?)),
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", usage())),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}\n{}", usage())),
        }
    }
    Ok(Args {
        dir: dir.ok_or_else(usage)?,
        repeats,
        save_pred,
        rois,
    })
}

fn load(dir: &Path, name: &str) -> Result<npy::Array<f64>, String> {
    let path = dir.join(name);
    npy::read_f64(&path).map_err(|e| format!("{}: {e}", path.display()))
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let n_threads = threads();
    rayon::ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .build_global()
        .map_err(|e| format!("rayon pool: {e}"))?;

    let x_train = load(&args.dir, "x_train.npy")?;
    let x_test = load(&args.dir, "x_test.npy")?;
    let y_train = load(&args.dir, "y_train.npy")?;
    let alphas = load(&args.dir, "alphas.npy")?;

    let (n_train, p) = x_train.rows_cols();
    let (n_test, p_test) = x_test.rows_cols();
    let (n_y, v) = y_train.rows_cols();
    if p_test != p {
        return Err(format!("x_test has {p_test} features, x_train {p}"));
    }
    if n_y != n_train {
        return Err(format!("y_train has {n_y} rows, x_train {n_train}"));
    }
    if alphas.data.is_empty() {
        return Err("alphas.npy is empty".into());
    }

    let mut best_dec = f64::INFINITY;
    let mut best_cv = f64::INFINITY;
    let mut best_total = f64::INFINITY;
    let mut last = None;
    for _ in 0..args.repeats {
        // The copies are part of the setup, not of the timed work: decompose
        // consumes its inputs, as it does in the pipeline.
        let xtr = x_train.data.clone();
        let xte = x_test.data.clone();

        let t0 = Instant::now();
        let dec = decompose(xtr, xte, n_train, n_test, p, true)?;
        let t1 = Instant::now();
        let mut cvs = Vec::new();
        for (lo, hi) in roi_bounds(v, args.rois) {
            let w = hi - lo;
            let y: Vec<f64> = (0..n_train)
                .flat_map(|i| y_train.data[i * v + lo..i * v + hi].iter().copied())
                .collect();
            cvs.push(ridge_cv(&dec, &y, w, &alphas.data, false));
        }
        let t2 = Instant::now();

        let d = (t1 - t0).as_secs_f64();
        let c = (t2 - t1).as_secs_f64();
        best_dec = best_dec.min(d);
        best_cv = best_cv.min(c);
        best_total = best_total.min(d + c);
        last = Some((dec.mode, cvs));
    }
    let (mode, cvs) = last.expect("at least one repeat");
    let roi_alpha_index: Vec<usize> = cvs.iter().map(|c| c.alpha_index[0]).collect();
    // Predictions of all ROIs side by side, in the original voxel order.
    let bounds = roi_bounds(v, args.rois);
    let y_pred = faer::Mat::<f64>::from_fn(n_test, v, |i, j| {
        let r = bounds
            .iter()
            .position(|&(lo, hi)| j >= lo && j < hi)
            .unwrap();
        cvs[r].y_pred[(i, j - bounds[r].0)]
    });
    let cv = runner::numerics::ridge::RidgeCv {
        alpha_index: vec![roi_alpha_index[0]; v],
        loo_mse: faer::Mat::zeros(0, 0),
        y_pred,
    };

    let ai = cv.alpha_index.first().copied().unwrap_or(0);
    let k = n_test.min(5);
    let first_preds: Vec<f64> = if v > 0 {
        (0..k).map(|i| cv.y_pred[(i, 0)]).collect()
    } else {
        Vec::new()
    };

    let out = serde_json::json!({
        "n_train": n_train,
        "n_test": n_test,
        "p": p,
        "v": v,
        "mode": match mode { Mode::Gram => "gram", Mode::Svd => "svd" },
        "threads": n_threads,
        "repeats": args.repeats,
        "decompose_s": best_dec,
        "ridge_cv_s": best_cv,
        "total_s": best_total,
        "alpha_index": ai,
        "alpha": alphas.data[ai],
        "rois": args.rois,
        "roi_alphas": roi_alpha_index.iter().map(|&i| alphas.data[i]).collect::<Vec<f64>>(),
        "y_pred_first": first_preds,
    });
    if let Some(path) = &args.save_pred {
        let data = runner::numerics::ridge::to_row_major(cv.y_pred.as_ref());
        npy::write(path, &[n_test, v], &data).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_ridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `k` contiguous, nearly equal voxel ranges.
fn roi_bounds(v: usize, k: usize) -> Vec<(usize, usize)> {
    (0..k).map(|r| (r * v / k, (r + 1) * v / k)).collect()
}
