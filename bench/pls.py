#!/usr/bin/env python3
"""PLS benchmark (seed 001, Kay V4): runner's PLS against scikit-learn's PLSRegression.

At the seed's sizes (vim-1 subject 1: 1500 training / 250 test images of one
of its random splits; AlexNet conv3 flattened, 14·14·384 = 75,264 float32
features; 1535 V4 voxels) this generates one deterministic data set
(``bench/ridge.py``'s ``make_data``: rectified latent-factor features,
voxels = X·W + noise at a noise-ceiling SNR from U(0.1, 0.8)) and fits, on the
same ``.npy`` files, each tool in its own process:

* scikit-learn: ``PLSRegression(n_components=25, scale=False)`` (NIPALS,
  max_iter=500, tol=1e-06) fit on the 1500 × 75,264 features and the
  1500 × 1535 voxels, then ``predict`` on the 250 test rows; the same onto the
  V4 average (the mean over voxels, one target). The features are cast to
  float64 before the timer starts (scikit-learn would do it inside ``fit``;
  runner's loader does it untimed), and ``fit`` copies them (``copy=True``),
  as it does by default;
* runner: ``examples/bench_pls.rs`` (``numerics::pls::fit`` + ``predict``),
  the same two fits.

BLAS threads are set (``OPENBLAS_NUM_THREADS`` etc. = ``--threads``) before
numpy is imported, and ``threadpool_limits(--threads)`` around the fits;
runner gets ``RAYON_NUM_THREADS``. Per stage: wall time, CPU time and peak
RSS (VmHWM, reset through /proc/self/clear_refs before the stage). The
runner side compares its iteration counts per component and predictions
with scikit-learn's; the exit status is non-zero if the counts differ or the
predictions differ by more than 1e-6 relative.

Usage::

    python3 -m venv /tmp/venv-pls
    /tmp/venv-pls/bin/pip install scikit-learn==1.9.1 numpy==2.4.6 threadpoolctl
    /tmp/venv-pls/bin/python bench/pls.py --quick    # 300/60 × 3000, 200 voxels
    /tmp/venv-pls/bin/python bench/pls.py            # full size, ~10 min on 2 cores
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
from ridge import make_data  # noqa: E402

STAGES = ["fit_voxels", "predict_voxels", "fit_avg", "predict_avg"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=1500)
    ap.add_argument("--n-test", type=int, default=250)
    ap.add_argument("--features", type=int, default=75264)
    ap.add_argument("--voxels", type=int, default=1535)
    ap.add_argument("--components", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 300/60 images x 3000 features, 200 voxels")
    ap.add_argument("--dir", type=Path, help="data directory (kept); default: a temporary one")
    ap.add_argument("--reuse", action="store_true", help="use the data already in --dir")
    ap.add_argument("--skip-sklearn", action="store_true",
                    help="only run runner (with --dir --reuse, after a full run)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--_generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_sklearn", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.n_train, a.n_test, a.features, a.voxels = 300, 60, 3000, 200
    return a


# ------------------------------------------------------------------- memory



# --------------------------------------------------------------------- data

def generate(d: Path, a):
    x_trn, x_tst, y = make_data(a.features, a.n_train, a.n_test, a.voxels)
    np.save(d / "x_train.npy", x_trn)
    np.save(d / "x_test.npy", x_tst)
    y = y.astype(np.float64)  # vim-1's responses are float64
    np.save(d / "y_train.npy", y)
    np.save(d / "y_avg.npy", y.mean(axis=1, keepdims=True))


# ------------------------------------------------------------------ sklearn

def run_sklearn(d: Path, a) -> dict:
    from sklearn.cross_decomposition import PLSRegression
    from threadpoolctl import threadpool_limits

    st = Stages()
    with st("load"):
        x = np.load(d / "x_train.npy").astype(np.float64)
        x_test = np.load(d / "x_test.npy").astype(np.float64)
        y, y_avg = np.load(d / "y_train.npy"), np.load(d / "y_avg.npy")
    out = {}
    with threadpool_limits(a.threads):
        for name, target in (("voxels", y), ("avg", y_avg)):
            with st(f"fit_{name}"):
                m = PLSRegression(n_components=a.components, scale=False).fit(x, target)
            with st(f"predict_{name}"):
                pred = m.predict(x_test)
            np.save(d / f"sklearn_pred_{name}.npy", pred.reshape(x_test.shape[0], -1))
            out[f"n_iter_{name}"] = [int(i) for i in m.n_iter_]
            del m, pred
    out["stages"] = dict(st)
    out["peak_mib"] = max(s["peak_mib"] for k, s in st.items() if k != "load")
    (d / "sklearn.json").write_text(json.dumps(out))
    return out


# ------------------------------------------------------------------ runner

def build_runner():
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir()))
    print(f"building: cargo build --example bench_pls (CARGO_TARGET_DIR={target_dir()})",
          flush=True)
    r = subprocess.run(["cargo", "build", "--example", "bench_pls"], cwd=REPO, env=env)
    if r.returncode != 0:
        sys.exit(f"cargo build --example bench_pls failed ({r.returncode})")


def run_runner(d: Path, a) -> dict:
    binary = target_dir() / "debug" / "examples" / "bench_pls"
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    cmd = [str(binary), str(d), "--components", str(a.components)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        sys.exit(f"bench_pls failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def child(flag: str, d: Path, a) -> dict | None:
    """This script with `flag` in a fresh process, so that each tool's peak
    memory is its own."""
    cmd = [sys.executable, __file__, flag, str(d)]
    for k in ("n_train", "n_test", "features", "voxels", "components", "threads"):
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

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cfg = np.show_config(mode="dicts") or {}
    blas = cfg.get("Build Dependencies", {}).get("blas", {})
    print(f"machine : {cmd_output(['nproc'])} cores (nproc), {cpu_model()}, {mem:.0f} GiB RAM, "
          f"{platform.system()} {platform.release()}")
    print(f"python  : {platform.python_version()}  numpy {np.__version__}  scipy "
          f"{scipy.__version__}  scikit-learn {sklearn.__version__}  BLAS: "
          f"{blas.get('name', '?')} {blas.get('version', '')}")
    print(f"rust    : {cmd_output(['rustc', '--version'])}  faer {lock_version('faer')}  "
          f"rayon {lock_version('rayon')}")
    print(f"sizes   : train {a.n_train} / test {a.n_test} images x {a.features} features "
          f"(float32 on disk, float64 in both tools), {a.voxels} voxels and their average; "
          f"PLSRegression({a.components}, scale=False); {a.threads} threads; X float64 = "
          f"{a.n_train * a.features * 8 / 1e9:.2f} GB", flush=True)


def table(sk: dict | None, rs: dict):
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

    ss = sk["stages"] if sk else {}
    rsst = rs["stages"]

    def total(stages, names):
        if all(s in stages for s in names):
            return {"s": sum(stages[s]["s"] for s in names),
                    "cpu_s": sum(stages[s]["cpu_s"] for s in names),
                    "peak_mib": max(stages[s]["peak_mib"] for s in names)}
        return None

    for name in STAGES:
        fmt(name, ss.get(name), rsst.get(name))
    fmt("**voxels (fit + predict)**", total(ss, STAGES[:2]), total(rsst, STAGES[:2]))
    fmt("**average (fit + predict)**", total(ss, STAGES[2:]), total(rsst, STAGES[2:]))
    fmt("**total**", total(ss, STAGES), total(rsst, STAGES))
    fmt("(load, info)", ss.get("load"), rsst.get("load"))


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
        tmp = tempfile.mkdtemp(prefix="pls-bench-")
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
        sk = None
        if not a.skip_sklearn:
            print(f"running : scikit-learn ({os.getloadavg()[0]:.2f} load)", flush=True)
            sk = child("--_sklearn", d, a)
        elif (d / "sklearn.json").exists():
            sk = json.loads((d / "sklearn.json").read_text())
        print(f"running : runner ({os.getloadavg()[0]:.2f} load)", flush=True)
        rs = run_runner(d, a)
        print(f"done    : load {os.getloadavg()[0]:.2f}\n")
        table(sk, rs)
        ok = True
        c = rs.get("compare")
        if c:
            print(f"\nagreement: n_iter per component equal: voxels "
                  f"{c['n_iter_voxels_equal']}, average {c['n_iter_avg_equal']}; "
                  f"max |Δŷ| / max |ŷ_sklearn|: voxels {c['rel_max_dpred_voxels']:.1e}, "
                  f"average {c['rel_max_dpred_avg']:.1e}")
            ok = (c["n_iter_voxels_equal"] and c["n_iter_avg_equal"]
                  and c["rel_max_dpred_voxels"] < 1e-6 and c["rel_max_dpred_avg"] < 1e-6)
        print(f"n_iter  : voxels {rs['n_iter_voxels']} (sum {sum(rs['n_iter_voxels'])}); "
              f"average {rs['n_iter_avg']}")
        if rs["warnings_voxels"]:
            print(f"warnings: {rs['warnings_voxels']}")
        print(f"\nrunner JSON: {json.dumps(rs)}")
        return 0 if ok else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
