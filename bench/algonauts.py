#!/usr/bin/env python3
"""Algonauts 2023 devkit benchmark: runner's numerics against scikit-learn/scipy.

At the devkit's sizes (subject 1: 8857 train, 984 val, 159 test images;
AlexNet ``features.2`` = 64·27·27 = 46656 features; 19004 + 20544 vertices)
this generates one deterministic float32 data set, then runs the devkit's
numerical workflow twice on the same ``.npy`` files, each tool in its own
process:

* scikit-learn/scipy, as the devkit tutorial calls them:
  ``IncrementalPCA(n_components=100)`` + ``partial_fit`` per batch of 100
  train rows (read from the file batch by batch, as the devkit gets them from
  its dataloader), ``transform`` of train/val/test batch by batch (float64
  output, as sklearn returns it), per hemisphere ``LinearRegression().fit``
  on train + ``predict`` on val and test, and the devkit's loop
  ``for v in range(V): r[v] = pearsonr(pred[:, v], val[:, v])[0]``
  (the vectorised ``pearsonr(pred, val, axis=0)`` is timed too, for
  information);
* runner: ``examples/bench_algonauts.rs`` (same steps, same batches).

Both limited to ``--threads`` threads (threadpoolctl / RAYON_NUM_THREADS).
Per stage: wall time and peak RSS (VmHWM, reset through /proc/self/clear_refs
before the stage). Checks that both sides agree: max |Δr| over all val
vertices, and the PCA's singular values.

Usage::

    .venv/bin/python bench/algonauts.py            # full size, ~6 min on 2 cores
    .venv/bin/python bench/algonauts.py --quick    # small smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import REPO, Stages, cmd_output, cpu_model, lock_version, peak_mib, reset_peak, target_dir  # noqa: E402

SEED = 20230601
STAGES = ["ipca_fit", "ipca_transform", "lh_linreg", "rh_linreg", "lh_pearson", "rh_pearson"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=8857)
    ap.add_argument("--n-val", type=int, default=984)
    ap.add_argument("--n-test", type=int, default=159)
    ap.add_argument("--features", type=int, default=46656)
    ap.add_argument("--lh", type=int, default=19004, help="left-hemisphere vertices")
    ap.add_argument("--rh", type=int, default=20544, help="right-hemisphere vertices")
    ap.add_argument("--components", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1000/200/50 rows x 4096 features, 500 + 600 vertices")
    ap.add_argument("--dir", type=Path, help="data directory (kept); default: a temporary one")
    ap.add_argument("--reuse", action="store_true", help="use the data already in --dir")
    ap.add_argument("--skip-sklearn", action="store_true",
                    help="only run runner (with --dir --reuse, after a full run)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--_generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_sklearn", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_train, args.n_val, args.n_test = 1000, 200, 50
        args.features, args.lh, args.rh = 4096, 500, 600
    return args


# ------------------------------------------------------------------- memory



# --------------------------------------------------------------------- data

def npy_rows(path: Path, batch: int):
    """The rows of a C-order 2-d .npy, `batch` at a time, read with plain file
    reads (an mmap would count the whole file as resident)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(f)
        assert not fortran and len(shape) == 2
        rows, cols = shape
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            yield np.fromfile(f, dtype=dtype, count=n * cols).reshape(n, cols)


def generate(d: Path, a):
    """Features like post-ReLU/max-pool CNN activations, responses like fMRI
    betas. 256 latent factors with a power-law spectrum (i^-0.7) load on the
    features through Gaussian loadings; X = ReLU(Z·L + b + 0.5·noise), b a
    per-feature threshold (about half the entries end up 0). Vertex responses
    are a Gaussian read-out of the first 64 factors plus noise whose level
    varies by vertex, so that val r spans ~0.05-0.8."""
    rng = np.random.default_rng(SEED)
    r, ry, p = 256, 64, a.features
    v = a.lh + a.rh
    spectrum = (np.arange(1, r + 1, dtype=np.float32) ** -0.7).astype(np.float32)
    loadings = rng.standard_normal((r, p), dtype=np.float32) * spectrum[:, None]
    bias = rng.normal(0.0, 0.3, p).astype(np.float32)
    w = (rng.standard_normal((ry, v), dtype=np.float32) / np.float32(np.sqrt(ry)))
    noise_sd = rng.uniform(0.3, 3.0, v).astype(np.float32)
    chunk = 256
    for split, n in [("train", a.n_train), ("val", a.n_val), ("test", a.n_test)]:
        x = np.lib.format.open_memmap(d / f"x_{split}.npy", "w+", np.float32, (n, p))
        ys = None
        if split != "test":
            ys = [np.lib.format.open_memmap(d / f"{h}_{split}.npy", "w+", np.float32, (n, c))
                  for h, c in [("lh", a.lh), ("rh", a.rh)]]
        for s in range(0, n, chunk):
            c = min(chunk, n - s)
            z = rng.standard_normal((c, r), dtype=np.float32)
            block = z @ loadings
            block += bias
            block += np.float32(0.5) * rng.standard_normal((c, p), dtype=np.float32)
            np.maximum(block, 0, out=block)
            x[s:s + c] = block
            if ys is not None:
                y = z[:, :ry] @ w
                y += rng.standard_normal((c, v), dtype=np.float32) * noise_sd
                ys[0][s:s + c] = y[:, :a.lh]
                ys[1][s:s + c] = y[:, a.lh:]
        x.flush()
        del x, ys


# ------------------------------------------------------------------ sklearn

def run_sklearn(d: Path, a) -> dict:
    from scipy.stats import pearsonr
    from sklearn.decomposition import IncrementalPCA
    from sklearn.linear_model import LinearRegression
    from threadpoolctl import threadpool_limits

    st = Stages()
    r_all = []
    with threadpool_limits(limits=a.threads):
        with st("ipca_fit"):
            pca = IncrementalPCA(n_components=a.components, batch_size=a.batch)
            for b in npy_rows(d / "x_train.npy", a.batch):
                pca.partial_fit(b)
        with st("ipca_transform"):
            feats = {s: np.vstack([pca.transform(b) for b in npy_rows(d / f"x_{s}.npy", a.batch)])
                     for s in ("train", "val", "test")}
        for hemi in ("lh", "rh"):
            with st(f"{hemi}_load"):
                y = np.load(d / f"{hemi}_train.npy")
                truth = np.load(d / f"{hemi}_val.npy")
            with st(f"{hemi}_linreg"):
                reg = LinearRegression().fit(feats["train"], y)
                pred_val = reg.predict(feats["val"])
                reg.predict(feats["test"])
            del y, reg
            with st(f"{hemi}_pearson"):
                r = np.zeros(pred_val.shape[1])
                for v in range(pred_val.shape[1]):
                    r[v] = pearsonr(pred_val[:, v], truth[:, v])[0]
            with st(f"{hemi}_pearson_vec"):
                r_vec = pearsonr(pred_val, truth, axis=0)[0]
            assert np.allclose(r, r_vec, rtol=0, atol=1e-12, equal_nan=True)
            r_all.append(r)
    np.save(d / "sklearn_r.npy", np.concatenate(r_all))
    np.save(d / "sklearn_sv.npy", pca.singular_values_)
    return {"stages": dict(st), "peak_mib": max(s["peak_mib"] for s in st.values()),
            "components_dtype": str(pca.components_.dtype), "features_dtype": str(feats["train"].dtype)}


# ------------------------------------------------------------------ runner

def build_runner():
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir()))
    print(f"building: cargo build --example bench_algonauts (CARGO_TARGET_DIR={target_dir()})",
          flush=True)
    r = subprocess.run(["cargo", "build", "--example", "bench_algonauts"], cwd=REPO, env=env)
    if r.returncode != 0:
        sys.exit(f"cargo build --example bench_algonauts failed ({r.returncode})")


def run_runner(d: Path, a) -> dict:
    binary = target_dir() / "debug" / "examples" / "bench_algonauts"
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    cmd = [str(binary), str(d), "--batch", str(a.batch), "--components", str(a.components)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(f"bench_algonauts failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def child(flag: str, d: Path, a) -> dict | None:
    """Run this script with `flag` in a fresh process, so that each tool's
    peak memory is its own."""
    cmd = [sys.executable, __file__, flag, str(d)]
    for k in ("n_train", "n_val", "n_test", "features", "lh", "rh", "components", "batch",
              "threads"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        sys.exit(f"{flag} failed ({out.returncode})")
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


# -------------------------------------------------------------------- main

def print_environment(a):
    import scipy
    import sklearn
    import threadpoolctl

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    blas = sorted({f"{i['internal_api']} {i.get('version') or ''}".strip()
                   for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"})
    print(f"machine : {cmd_output(['nproc'])} cores (nproc), {cpu_model()}, {mem:.0f} GiB RAM, "
          f"{platform.system()} {platform.release()}")
    print(f"python  : {platform.python_version()}  numpy {np.__version__}  scipy "
          f"{scipy.__version__}  scikit-learn {sklearn.__version__}  BLAS: {', '.join(blas)}")
    print(f"rust    : {cmd_output(['rustc', '--version'])}  faer {lock_version('faer')}  "
          f"rayon {lock_version('rayon')}")
    print(f"sizes   : train {a.n_train} / val {a.n_val} / test {a.n_test} x {a.features} features, "
          f"{a.lh} + {a.rh} vertices, IncrementalPCA({a.components}) in batches of {a.batch}, "
          f"{a.threads} threads", flush=True)


def table(sk: dict, rs: dict):
    rows = []
    total = {"sk": [0.0, 0.0], "rs": [0.0, 0.0]}
    for name in STAGES + ["lh_load", "rh_load", "lh_pearson_vec", "rh_pearson_vec"]:
        s = sk["stages"].get(name) if sk else None
        r = rs["stages"].get(name)
        if name in STAGES:
            for key, st in (("sk", s), ("rs", r)):
                if st:
                    total[key][0] += st["s"]
                    total[key][1] += st["cpu_s"]
        rows.append((name, s, r))
    hdr = ("| stage | sklearn s | runner s | ratio | sklearn peak MiB | runner peak MiB "
           "| sklearn CPU s | runner CPU s |")
    print(hdr)
    print("|" + "|".join("-" * (len(c) + 2) for c in hdr.strip("|").split("|")) + "|")

    def fmt(name, s, r):
        ratio = f"{s['s'] / r['s']:.1f}×" if s and r and r["s"] > 0 else "–"
        cols = [f"{x[key]:{f}}" if x else "–"
                for key, f in (("s", ".2f"), ("peak_mib", ".0f"), ("cpu_s", ".1f"))
                for x in (s, r)]
        print(f"| {name} | {cols[0]} | {cols[1]} | {ratio} | {cols[2]} | {cols[3]} "
              f"| {cols[4]} | {cols[5]} |")

    for name, s, r in rows:
        if name == "lh_load":
            fmt("**total (PCA + fit + scoring)**",
                {"s": total["sk"][0], "cpu_s": total["sk"][1], "peak_mib": sk["peak_mib"]}
                if sk else None,
                {"s": total["rs"][0], "cpu_s": total["rs"][1], "peak_mib": rs["peak_mib"]})
        if name.endswith("_vec"):
            fmt(f"({name}: vectorised pearsonr, info)", s, None)
        else:
            fmt(name if name in STAGES else f"({name}, info)", s, r)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a._generate:
        generate(a._generate, a)
        return 0
    if a._sklearn:
        print(json.dumps(run_sklearn(a._sklearn, a)))
        return 0

    print_environment(a)
    tmp = None
    if a.dir:
        d = a.dir
        d.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="algonauts-bench-")
        d = Path(tmp)
    try:
        if not a.reuse:
            t0 = time.perf_counter()
            child("--_generate", d, a)
            print(f"data    : generated in {time.perf_counter() - t0:.0f} s under {d}", flush=True)
        if not a.no_build:
            build_runner()
        sk = None
        if not a.skip_sklearn:
            print(f"running : scikit-learn ({os.getloadavg()[0]:.2f} load)", flush=True)
            sk = child("--_sklearn", d, a)
        print(f"running : runner ({os.getloadavg()[0]:.2f} load)", flush=True)
        rs = run_runner(d, a)
        print(f"done    : load {os.getloadavg()[0]:.2f}\n")
        table(sk, rs)
        ok = True
        if (d / "sklearn_r.npy").exists():
            r_sk, r_rs = np.load(d / "sklearn_r.npy"), np.load(d / "runner_r.npy")
            nan_same = bool(np.array_equal(np.isnan(r_sk), np.isnan(r_rs)))
            dr = float(np.nanmax(np.abs(r_sk - r_rs)))
            sv_sk, sv_rs = np.load(d / "sklearn_sv.npy"), np.load(d / "runner_sv.npy")
            dsv = float(np.max(np.abs(sv_sk - sv_rs) / sv_sk))
            print(f"\nagreement: max |Δr| over {r_sk.size} val vertices = {dr:.2e} "
                  f"(NaN at the same vertices: {nan_same}; r range {np.nanmin(r_sk):.3f} .. "
                  f"{np.nanmax(r_sk):.3f}, median {np.nanmedian(r_sk):.3f}); "
                  f"max rel. Δ singular values = {dsv:.2e}")
            ok = nan_same and dr < 1e-4
        if sk:
            print(f"sklearn dtypes: components {sk['components_dtype']}, "
                  f"transform {sk['features_dtype']}")
        print(f"runner JSON: {json.dumps(rs)}")
        return 0 if ok else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
