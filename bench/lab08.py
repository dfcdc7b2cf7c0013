#!/usr/bin/env python3
"""Lab08 benchmark (seed 003): runner's holdout ridge against the seed's own solver.

At the seed's sizes (NSD subject 1: 10,000 images = 8100 train / 900 holdout /
1000 val (shared1000); 100 PCA features + the intercept column = 101
columns; the seed's 20-λ grid, three of them negative; 30,000 voxels) this
generates one deterministic float64 data set and runs the seed's fit twice
on the same ``.npy`` files, each tool in its own process:

* numpy: the seed's ``solve_ridge_fast`` ported from torch float64 as written
  (explicit ``inverse`` of XᵀX + λI per λ, intercept penalised;
  ``tensordot`` to the weights [n_λ, 101, n_vox] through the cofactor
  [n_λ, 101, n_trn]; the holdout prediction [n_out, n_λ, n_vox]; summed
  squared loss; ``argmin`` and ``weights_use`` per voxel in the seed's Python
  loop), then ``xval @ weights_use`` and the seed's ``get_r2``;
* runner: ``examples/bench_lab08.rs`` (``ridge_holdout::fit`` +
  ``HoldoutFit::predict`` on val + ``metrics::r2`` per voxel).

Memory: the holdout prediction [900, 20, 30000] float64 is 4.3 GB (4.0 GiB).
The seed's torch expression ``torch.sum(torch.pow(vout[:,None,:] - pred, 2))``
holds three such tensors at once (pred, the difference, its square: ~13 GB);
here the subtraction and the square are done in place on pred (the same
arithmetic, element by element), so numpy's peak is one of them plus the
data (7.2 GiB measured). Fits the machine's 24 GiB.

BLAS threads are set (``OPENBLAS_NUM_THREADS`` etc. = ``--threads``) before
numpy is imported; runner gets ``RAYON_NUM_THREADS``. Per stage: wall time,
CPU time and peak RSS (VmHWM, reset through /proc/self/clear_refs before the
stage; that reset clears ``ru_maxrss`` too, so the stage peaks are the
measure). The runner side compares
its λ index and R² per voxel with numpy's.

Usage::

    /tmp/venv-lab08/bin/python bench/lab08.py            # full size
    /tmp/venv-lab08/bin/python bench/lab08.py --quick    # small smoke run
"""

from __future__ import annotations

import os
import sys


def _threads(argv) -> str:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


# Before numpy is imported: its BLAS reads these once.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads(sys.argv)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import REPO, Stages, cmd_output, cpu_model, lock_version, peak_mib, reset_peak, target_dir  # noqa: E402

SEED = 20251008
STAGES = ["fit", "predict_val", "r2"]
NUMPY_STEPS = ["inverse", "cofactor", "weights", "holdout_pred", "loss", "select"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=8100)
    ap.add_argument("--n-out", type=int, default=900)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--features", type=int, default=100, help="without the intercept column")
    ap.add_argument("--voxels", type=int, default=30000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 810/90/100 images x 20 features, 2000 voxels")
    ap.add_argument("--dir", type=Path, help="data directory (kept); default: a temporary one")
    ap.add_argument("--reuse", action="store_true", help="use the data already in --dir")
    ap.add_argument("--skip-numpy", action="store_true",
                    help="only run runner (with --dir --reuse, after a full run)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--_generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_numpy", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.n_train, a.n_out, a.n_val, a.features, a.voxels = 810, 90, 100, 20, 2000
    return a


# ------------------------------------------------------------------- memory



# --------------------------------------------------------------------- data

def lab08_lambdas():
    return (np.logspace(np.log(0.0001), np.log(10**10 + 0.01), 20, dtype=np.float32, base=np.e)
            - 0.01)


def generate(d: Path, a):
    """PCA-like features (decaying variances, offsets), z-scored with the
    train+holdout statistics and given a ones column as the seed's
    ``split_normalize_feats`` does, in float64. Voxels: a Gaussian read-out
    of the features with per-voxel weight decay and noise, the signal-to-noise
    ratio log-uniform over four decades so that the chosen λ spread over the
    grid (the negative λ included)."""
    rng = np.random.default_rng(SEED)
    p, v = a.features, a.voxels
    n = {"trn": a.n_train, "out": a.n_out, "val": a.n_val}
    scale = 5.0 * 0.97 ** np.arange(p)
    offset = rng.uniform(-3, 3, p)
    f = {k: rng.standard_normal((m, p)) * scale + offset for k, m in n.items()}
    fit_rows = np.concatenate([f["trn"], f["out"]])
    mean, std = fit_rows.mean(0), fit_rows.std(0) + 1e-6
    for k, m in n.items():
        x = np.concatenate([(f[k] - mean) / std, np.ones((m, 1))], axis=1)
        np.save(d / f"x_{k}.npy", x)
    decay = np.exp(-np.arange(p)[:, None] / rng.uniform(3, 60, v))
    w = rng.standard_normal((p, v)) * decay
    w /= np.sqrt((w**2).sum(0))
    snr = np.exp(rng.uniform(np.log(1e-3), np.log(10.0), v))
    noise_sd = 1.0 / np.sqrt(snr)
    chunk = 512
    for k, m in n.items():
        x = np.load(d / f"x_{k}.npy")
        y = np.lib.format.open_memmap(d / f"y_{k}.npy", "w+", np.float64, (m, v))
        for s in range(0, m, chunk):
            blk = x[s:s + chunk, :p] @ w
            blk += rng.standard_normal(blk.shape) * noise_sd
            y[s:s + chunk] = blk
        y.flush()
        del y
    np.save(d / "lambdas.npy", lab08_lambdas().astype(np.float64))


# -------------------------------------------------------------------- numpy

def run_numpy(d: Path, a) -> dict:
    """The seed's cells: solve_ridge_fast(xtrn, vtrn, lambdas) (xout, vout
    are its globals), pred = xval @ weights_use, get_r2(actual, pred)."""
    st = Stages()
    with st("load"):
        xtrn, xout, xval = (np.load(d / f"x_{k}.npy") for k in ("trn", "out", "val"))
        vtrn, vout, vval = (np.load(d / f"y_{k}.npy") for k in ("trn", "out", "val"))
    lambdas = lab08_lambdas()

    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    # ---- solve_ridge_fast, timed step by step
    with st("inverse"):
        n_features = xtrn.shape[1]
        mult = xtrn.T @ xtrn
        ridge_term = np.eye(xtrn.shape[1], dtype=np.float64)
        lambda_matrices = np.stack([np.linalg.inv(mult + ridge_term * l) for l in lambdas], axis=0)
    with st("cofactor"):
        cofactor = np.tensordot(lambda_matrices, xtrn, axes=[[2], [1]])
    with st("weights"):
        weights = np.tensordot(cofactor, vtrn, axes=[[2], [0]])  # [#lambdas, #feature, #voxel]
        del cofactor
    with st("holdout_pred"):
        pred = np.tensordot(xout, weights, axes=[[1], [1]])  # [#samples, #lambdas, #voxels]
    with st("loss"):
        # torch.sum(torch.pow(vout[:,None,:] - pred, 2), dim=0), in place on pred
        np.subtract(vout[:, None, :], pred, out=pred)
        np.power(pred, 2, out=pred)
        loss = np.sum(pred, axis=0)  # [#lambdas, #voxels]
        del pred
    with st("select"):
        weights_use = np.zeros((n_features, vtrn.shape[1]), dtype=weights.dtype)
        best = np.zeros(vtrn.shape[1], dtype=np.int64)
        for vi in range(vtrn.shape[1]):
            best_lambda_ind = np.argmin(loss[:, vi])
            best[vi] = best_lambda_ind
            weights_use[:, vi] = weights[best_lambda_ind, :, vi]
        del weights
    fit_peak = max(st[s]["peak_mib"] for s in NUMPY_STEPS)
    st["fit"] = {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                 "peak_mib": fit_peak}
    with st("predict_val"):
        pred = xval @ weights_use
    with st("r2"):
        ssres = np.sum(np.power((pred - vval), 2), axis=0)
        sstot = np.sum(np.power((vval - np.mean(vval, axis=0)), 2), axis=0)
        r2 = 1 - (ssres / sstot)
    np.save(d / "numpy_best.npy", best)
    np.save(d / "numpy_r2.npy", r2)
    np.save(d / "numpy_loss.npy", loss)
    out = {"stages": dict(st),
           "peak_mib": max(s["peak_mib"] for k, s in st.items() if k != "load"),
           "lambda_index_histogram": np.bincount(best, minlength=20).tolist(),
           "r2": {"min": float(r2.min()), "median": float(np.median(r2)),
                  "max": float(r2.max())}}
    (d / "numpy.json").write_text(json.dumps(out))
    return out


# ------------------------------------------------------------------ runner

def build_runner():
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir()))
    print(f"building: cargo build --example bench_lab08 (CARGO_TARGET_DIR={target_dir()})",
          flush=True)
    r = subprocess.run(["cargo", "build", "--example", "bench_lab08"], cwd=REPO, env=env)
    if r.returncode != 0:
        sys.exit(f"cargo build --example bench_lab08 failed ({r.returncode})")


def run_runner(d: Path, a) -> dict:
    binary = target_dir() / "debug" / "examples" / "bench_lab08"
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    cmd = [str(binary), str(d)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(f"bench_lab08 failed ({r.returncode})")
    sys.stderr.write(r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def child(flag: str, d: Path, a) -> dict | None:
    """This script with `flag` in a fresh process, so that each tool's peak
    memory is its own."""
    cmd = [sys.executable, __file__, flag, str(d)]
    for k in ("n_train", "n_out", "n_val", "features", "voxels", "threads"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        sys.exit(f"{flag} failed ({out.returncode})")
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


# -------------------------------------------------------------------- main

def print_environment(a):
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cfg = np.show_config(mode="dicts") or {}
    blas = cfg.get("Build Dependencies", {}).get("blas", {})
    print(f"machine : {cmd_output(['nproc'])} cores (nproc), {cpu_model()}, {mem:.0f} GiB RAM, "
          f"{platform.system()} {platform.release()}")
    print(f"python  : {platform.python_version()}  numpy {np.__version__}  BLAS: "
          f"{blas.get('name', '?')} {blas.get('version', '')}")
    print(f"rust    : {cmd_output(['rustc', '--version'])}  faer {lock_version('faer')}  "
          f"rayon {lock_version('rayon')}")
    q = a.features + 1
    print(f"sizes   : train {a.n_train} / holdout {a.n_out} / val {a.n_val} images x {q} columns "
          f"({a.features} features + intercept), 20 λ, {a.voxels} voxels, {a.threads} threads; "
          f"holdout prediction [{a.n_out}, 20, {a.voxels}] f64 = "
          f"{a.n_out * 20 * a.voxels * 8 / 1e9:.2f} GB", flush=True)


def table(npy: dict | None, rs: dict):
    hdr = ("| stage | numpy s | runner s | ratio | numpy peak MiB | runner peak MiB "
           "| numpy CPU s | runner CPU s |")
    print(hdr)
    print("|" + "|".join("-" * (len(c) + 2) for c in hdr.strip("|").split("|")) + "|")

    def fmt(name, s, r):
        ratio = f"{s['s'] / r['s']:.1f}×" if s and r and r["s"] > 0 else "–"
        cols = [f"{x[key]:{f}}" if x else "–"
                for key, f in (("s", ".2f"), ("peak_mib", ".0f"), ("cpu_s", ".1f"))
                for x in (s, r)]
        print(f"| {name} | {cols[0]} | {cols[1]} | {ratio} | {cols[2]} | {cols[3]} "
              f"| {cols[4]} | {cols[5]} |")

    ns = npy["stages"] if npy else {}
    rsst = rs["stages"]
    tot = {}
    for key, stages, peak in (("np", ns, npy["peak_mib"] if npy else 0), ("rs", rsst,
                                                                          rs["peak_mib"])):
        if all(s in stages for s in STAGES):
            tot[key] = {"s": sum(stages[s]["s"] for s in STAGES),
                        "cpu_s": sum(stages[s]["cpu_s"] for s in STAGES), "peak_mib": peak}
    for name in STAGES:
        fmt(name, ns.get(name), rsst.get(name))
    fmt("**total (fit + predict + R²)**", tot.get("np"), tot.get("rs"))
    fmt("(load, info)", ns.get("load"), rsst.get("load"))
    for name in NUMPY_STEPS:
        fmt(f"(numpy fit: {name})", ns.get(name), None)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a._generate:
        generate(a._generate, a)
        return 0
    if a._numpy:
        print(json.dumps(run_numpy(a._numpy, a)))
        return 0

    print_environment(a)
    tmp = None
    if a.dir:
        d = a.dir
        d.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="lab08-bench-")
        d = Path(tmp)
    try:
        if not a.reuse:
            t0 = time.perf_counter()
            child("--_generate", d, a)
            size = sum(p.stat().st_size for p in d.glob("*.npy")) / 1e9
            print(f"data    : generated in {time.perf_counter() - t0:.0f} s under {d} "
                  f"({size:.2f} GB)", flush=True)
        if not a.no_build:
            build_runner()
        npy = None
        if not a.skip_numpy:
            print(f"running : numpy ({os.getloadavg()[0]:.2f} load)", flush=True)
            npy = child("--_numpy", d, a)
        elif (d / "numpy.json").exists():
            npy = json.loads((d / "numpy.json").read_text())
        print(f"running : runner ({os.getloadavg()[0]:.2f} load)", flush=True)
        rs = run_runner(d, a)
        print(f"done    : load {os.getloadavg()[0]:.2f}\n")
        table(npy, rs)
        ok = True
        c = rs.get("compare")
        if c:
            print(f"\nagreement: λ index differs at {c['lambda_index_disagreements']} of "
                  f"{a.voxels} voxels (largest relative gap of numpy's own holdout losses "
                  f"between the two λ there: {c['max_rel_loss_gap_at_disagreements']:.1e}); "
                  f"max |ΔR²| = {c['max_abs_delta_r2']:.2e} "
                  f"({c['max_abs_delta_r2_same_lambda']:.2e} where the λ agree)")
            # A disagreement is allowed only at a near tie (rounding decides it).
            ok = c["max_rel_loss_gap_at_disagreements"] < 1e-9 and \
                c["max_abs_delta_r2_same_lambda"] < 1e-8
        if npy:
            print(f"numpy   : λ index histogram {npy['lambda_index_histogram']}; R² min "
                  f"{npy['r2']['min']:.3f} median {npy['r2']['median']:.3f} max "
                  f"{npy['r2']['max']:.3f}")
        print(f"runner  : λ index histogram {rs['lambda_index_histogram']}")
        print(f"\nrunner JSON: {json.dumps(rs)}")
        return 0 if ok else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
