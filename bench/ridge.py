#!/usr/bin/env python3
"""Ridge benchmark: runner's ridge stage against scikit-learn's RidgeCV.

For each feature size, generates one deterministic data set (float32, with a
decaying spectrum like CNN activations and voxel responses Y = X·W + noise at
a realistic noise ceiling), then, on the same matrices in the same run:

* scikit-learn: ``RidgeCV(alphas=GRID).fit(X_train, Y_train).predict(X_test)``
  with default settings (efficient leave-one-out, ``fit_intercept=True``, one
  α shared by all voxels), BLAS/OpenMP limited to ``--threads`` threads with
  threadpoolctl; fit + predict are timed.
* runner: the ``bench_ridge`` example (``examples/bench_ridge.rs``), which
  times ``ridge::decompose`` + ``ridge::ridge_cv`` on the same ``.npy`` files
  with ``RAYON_NUM_THREADS=--threads``. Loading the files is not timed.

Prints a table of times, speed-ups and the chosen α, and exits non-zero if
runner and scikit-learn choose a different α for any size.

Usage::

    .venv/bin/python bench/ridge.py [--sizes 9216,46656] [--n-train 2000]
        [--n-test 500] [--voxels 1500] [--threads 2] [--repeats 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# HW2's α grid: 1e-8 … 1e8, 17 values.
GRID = np.logspace(-8, 8, 17)
SEED = 20240917


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="9216,46656",
                    help="comma-separated feature counts (default: 9216,46656)")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--voxels", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2,
                    help="BLAS threads for scikit-learn and rayon threads for runner")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed repeats per tool; the best time is reported")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 400 train × 2000 features, 100 test, 200 voxels")
    ap.add_argument("--rois", type=int, default=1,
                    help="split the voxels into K contiguous ROIs fitted separately, as HW2 "
                         "does (scikit-learn: one RidgeCV per ROI; runner: one shared "
                         "decomposition, one ridge_cv per ROI)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run `cargo build --example bench_ridge` first")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.n_train, args.n_test, args.voxels = "2000", 400, 100, 200
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    if args.repeats < 1 or args.threads < 1:
        ap.error("--repeats and --threads must be at least 1")
    return args


# ---------------------------------------------------------------- environment

from machine import cmd_output, cpu_model, load, lock_version, target_dir  # noqa: E402


def print_environment(args):
    import scipy
    import sklearn
    import threadpoolctl

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    blas = sorted({f"{i['internal_api']} {i.get('version') or ''}".strip()
                   for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"})
    print(f"machine : {cmd_output(['nproc'])} cores (nproc), {cpu_model()}, "
          f"{mem_gb:.0f} GiB RAM, {platform.system()} {platform.release()}, "
          f"load average {' '.join(f'{l:.2f}' for l in os.getloadavg())}")
    print(f"python  : {platform.python_version()}  numpy {np.__version__}  "
          f"scipy {scipy.__version__}  scikit-learn {sklearn.__version__}  "
          f"threadpoolctl {threadpoolctl.__version__}  BLAS: {', '.join(blas)}")
    print(f"rust    : {cmd_output(['rustc', '--version'])}  faer {lock_version('faer')}  "
          f"rayon {lock_version('rayon')}")
    print(f"settings: n_train={args.n_train} n_test={args.n_test} voxels={args.voxels} "
          f"threads={args.threads} repeats={args.repeats} "
          f"alphas=logspace(-8, 8, {len(GRID)})")
    sys.stdout.flush()


# ----------------------------------------------------------------------- data

def make_data(p: int, n_train: int, n_test: int, v: int, seed: int = SEED):
    """Deterministic float32 data shaped like CNN features and fMRI betas.

    Features: ReLU(Z·L + noise), Z holding k latent factors with a power-law
    spectrum (so the feature covariance has a long decaying spectrum plus a
    noise floor, and a positive mean, as rectified activations do).
    Responses: Y = X·W + ε, W Gaussian, each voxel's noise scaled so that its
    noise-ceiling SNR (signal sd / noise sd) is drawn from U(0.1, 0.8), the
    range of visual-cortex voxels in NSD.
    """
    rng = np.random.default_rng([seed, p, n_train, n_test, v])
    n = n_train + n_test
    k = min(256, p)
    spectrum = (np.arange(1, k + 1, dtype=np.float32) ** -0.8).astype(np.float32)
    z = rng.standard_normal((n, k), dtype=np.float32) * spectrum
    z *= np.float32(np.sqrt(k / np.sum(spectrum**2)))  # unit average variance
    x = np.empty((n, p), dtype=np.float32)
    y_signal = np.zeros((n, v), dtype=np.float32)
    chunk = 4096
    for c0 in range(0, p, chunk):
        c1 = min(p, c0 + chunk)
        loadings = rng.standard_normal((k, c1 - c0), dtype=np.float32)
        loadings *= np.float32(1.0 / np.sqrt(k))
        block = z @ loadings
        block += np.float32(0.5) * rng.standard_normal(block.shape, dtype=np.float32)
        np.maximum(block, 0, out=block)
        x[:, c0:c1] = block
        w = rng.standard_normal((c1 - c0, v), dtype=np.float32)
        y_signal += block @ w
        del block, w, loadings
    y_signal /= np.float32(np.sqrt(p))
    y_signal -= y_signal[:n_train].mean(axis=0)
    signal_sd = y_signal[:n_train].std(axis=0)
    ncsnr = rng.uniform(0.1, 0.8, size=v).astype(np.float32)
    noise = rng.standard_normal((n, v), dtype=np.float32) * (signal_sd / ncsnr)
    y = y_signal + noise
    del y_signal, noise
    return x[:n_train], x[n_train:], np.ascontiguousarray(y[:n_train])


# --------------------------------------------------------------------- tools

def build_runner() -> Path:
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir()))
    print(f"building: cargo build --example bench_ridge (CARGO_TARGET_DIR={env['CARGO_TARGET_DIR']})",
          flush=True)
    r = subprocess.run(["cargo", "build", "--example", "bench_ridge"], cwd=REPO, env=env)
    if r.returncode != 0:
        sys.exit(f"cargo build --example bench_ridge failed ({r.returncode})")
    return runner_binary()


def runner_binary() -> Path:
    return target_dir() / "debug" / "examples" / "bench_ridge"


def roi_bounds(v: int, k: int):
    return [(r * v // k, (r + 1) * v // k) for r in range(k)]


def run_sklearn(x_train, y_train, x_test, threads: int, repeats: int, rois: int = 1):
    from sklearn.linear_model import RidgeCV
    from threadpoolctl import threadpool_limits

    best, alphas, pred = float("inf"), None, None
    for _ in range(repeats):
        preds, alphas = [], []
        with threadpool_limits(limits=threads):
            t0 = time.perf_counter()
            for lo, hi in roi_bounds(y_train.shape[1], rois):
                model = RidgeCV(alphas=GRID).fit(x_train, y_train[:, lo:hi])
                preds.append(model.predict(x_test))
                alphas.append(float(model.alpha_))
            dt = time.perf_counter() - t0
        best = min(best, dt)
        pred = np.concatenate(preds, axis=1)
    return best, alphas, np.asarray(pred)


def run_runner(binary: Path, data_dir: Path, threads: int, repeats: int, rois: int = 1):
    pred_path = data_dir / "y_pred_runner.npy"
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [str(binary), str(data_dir), "--repeats", str(repeats), "--save-pred", str(pred_path),
           "--rois", str(rois)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(f"{binary.name} failed ({r.returncode})")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    pred = np.load(pred_path)
    return out, pred


# ---------------------------------------------------------------------- main

def main(argv=None) -> int:
    args = parse_args(argv)
    print_environment(args)
    binary = runner_binary() if args.no_build else build_runner()
    if not binary.exists():
        sys.exit(f"{binary} not found (build it with `cargo build --example bench_ridge`)")

    rows = []
    for p in args.sizes:
        print(f"\n[p={p}] generating {args.n_train}+{args.n_test} × {p} features, "
              f"{args.voxels} voxels", flush=True)
        t0 = time.perf_counter()
        x_train, x_test, y_train = make_data(p, args.n_train, args.n_test, args.voxels)
        print(f"[p={p}] generated in {time.perf_counter() - t0:.1f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench_ridge_") as tmp:
            d = Path(tmp)
            np.save(d / "x_train.npy", x_train)
            np.save(d / "x_test.npy", x_test)
            np.save(d / "y_train.npy", y_train)
            np.save(d / "alphas.npy", GRID)

            print(f"[p={p}] scikit-learn RidgeCV ...", flush=True)
            sk_s, sk_alphas, sk_pred = run_sklearn(x_train, y_train, x_test,
                                                   args.threads, args.repeats, args.rois)
            sk_alpha = sk_alphas[0]
            print(f"[p={p}] scikit-learn: {sk_s:.2f} s, alpha={sk_alphas} ({load()})", flush=True)
            del x_train, x_test, y_train

            print(f"[p={p}] runner bench_ridge ...", flush=True)
            rn, rn_pred = run_runner(binary, d, args.threads, args.repeats, args.rois)
            print(f"[p={p}] runner: decompose {rn['decompose_s']:.2f} s + ridge_cv "
                  f"{rn['ridge_cv_s']:.2f} s ({rn['mode']}), alpha={rn['alpha']:g} ({load()})",
                  flush=True)

        first = np.asarray(rn["y_pred_first"])
        if not np.allclose(first, rn_pred[: len(first), 0], rtol=1e-12, atol=0):
            sys.exit("runner's JSON predictions disagree with its saved predictions")
        scale = float(np.max(np.abs(sk_pred)))
        rel = float(np.max(np.abs(rn_pred - sk_pred.astype(np.float64)))) / scale
        rn_s = rn["decompose_s"] + rn["ridge_cv_s"]
        rows.append({
            "p": p, "n": args.n_train, "v": args.voxels, "sk_s": sk_s,
            "rn_s": rn_s, "dec_s": rn["decompose_s"], "cv_s": rn["ridge_cv_s"],
            "mode": rn["mode"], "ratio": sk_s / rn_s, "sk_alpha": sk_alpha,
            "rn_alpha": rn["alpha"], "same": sk_alphas == rn["roi_alphas"], "rel": rel,
            "edge": rn["alpha_index"] in (0, len(GRID) - 1),
        })
        del sk_pred, rn_pred

    print()
    header = (f"| {'features':>8} | {'n_train × p':>13} | {'voxels':>6} | {'sklearn s':>9} "
              f"| {'runner s':>8} | {'decompose s':>11} | {'ridge_cv s':>10} | {'mode':>4} "
              f"| {'ratio':>6} | {'sklearn α':>9} | {'runner α':>8} | {'α same':>6} "
              f"| {'rel. max Δŷ':>11} |")
    if args.rois > 1:
        print(f"(HW2 workflow: the voxels split into {args.rois} ROIs; α columns show the "
              "first ROI's, 'α same' compares every ROI's)")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['p']:>8} | {str(r['n']) + ' × ' + str(r['p']):>13} | {r['v']:>6} "
              f"| {r['sk_s']:>9.2f} | {r['rn_s']:>8.2f} | {r['dec_s']:>11.2f} "
              f"| {r['cv_s']:>10.2f} | {r['mode']:>4} | {r['ratio']:>5.1f}× "
              f"| {r['sk_alpha']:>9.0e} | {r['rn_alpha']:>8.0e} "
              f"| {('yes' if r['same'] else 'NO'):>6} | {r['rel']:>11.1e} |")
    print("\nsklearn s = RidgeCV fit + predict; runner s = decompose + ridge_cv "
          "(best of --repeats); ratio = sklearn s / runner s;\n"
          "rel. max Δŷ = max over test rows and voxels of |ŷ_runner − ŷ_sklearn| / max |ŷ_sklearn|.")
    edges = [r["p"] for r in rows if r["edge"]]
    if edges:
        print(f"note: α at the edge of the grid for p={edges}: the data are not "
              "exercising the α search")
    bad = [r["p"] for r in rows if not r["same"]]
    if bad:
        print(f"FAIL: α differs between scikit-learn and runner for p={bad}")
        return 1
    print("OK: identical α for every size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
