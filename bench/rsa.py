#!/usr/bin/env python3
"""RSA benchmark (seed 004, csci591: a CNN's layers against mouse V1): runner's
RDMs and RDM comparisons against numpy/scipy.

One deterministic data set, float32 ``.npy``: the "neural" responses, 2000
stimuli × 20,000 neurons, and 10 "layers", 2000 × widths
``linspace(4000, 20000, 10)`` rounded to 100 (4000, 5800, …, 20,000; 130,000
units in all). Every matrix is ReLU(Z·Lₖ + noise) of one shared 40-d latent
Z per stimulus (so that the layers' RDMs correlate with the neural one at
various strengths), each in its own process:

* numpy/scipy: the seed's RDM, ``z = scipy.stats.zscore(x, axis=1)`` then
  ``1 - z @ z.T / p`` (x cast to float64 first, as runner reads it: the
  seed's own responses are float64), the upper triangle
  ``rdm[np.triu_indices(n, k=1)]`` (1,999,000 entries), then each layer's
  vector against the neural one by ``np.corrcoef(a, b)[0, 1]``,
  ``scipy.stats.spearmanr(a, b)`` and Kendall's τa. scipy has no τa; its
  ``kendalltau`` (τb, O(n log n)) gives it exactly as
  τa = τb·√((n₀−n₁)(n₀−n₂))/n₀, n₀ = n(n−1)/2 and n₁, n₂ the pairs tied in
  each vector (``np.unique`` counts): that tie count is inside the timing;
* runner: ``examples/bench_rsa.rs`` (``numerics::rsa::rdm`` / ``upper`` /
  ``compare``), the same stages.

BLAS threads are set (``OPENBLAS_NUM_THREADS`` etc. = ``--threads``) before
numpy is imported, and ``threadpool_limits(--threads)`` if threadpoolctl is
installed; runner gets ``RAYON_NUM_THREADS``. Per stage (summed over the 11
matrices or the 10 comparisons): wall time, CPU time and peak RSS (VmHWM,
reset through /proc/self/clear_refs). The exit status is non-zero if a
comparison differs by more than 1e-8 or the neural RDM by more than 1e-8
(max |Δ|).

Usage::

    python3 -m venv /tmp/venv-rsa
    /tmp/venv-rsa/bin/pip install numpy==2.4.6 scipy==1.17.1
    /tmp/venv-rsa/bin/python bench/rsa.py --quick    # 300 × 2000, 3 layers
    /tmp/venv-rsa/bin/python bench/rsa.py            # full size
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
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import REPO, Stages, cmd_output, cpu_model, lock_version, target_dir  # noqa: E402

STAGES = ["rdm", "upper", "pearson", "spearman", "kendall_tau_a"]
METHODS = ["pearson", "spearman", "kendall_tau_a"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stimuli", type=int, default=2000)
    ap.add_argument("--neurons", type=int, default=20000)
    ap.add_argument("--widths", default="",
                    help="comma-separated layer widths (default: linspace(4000, 20000, 10))")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 300 stimuli x 2000 neurons, 3 layers")
    ap.add_argument("--dir", type=Path, help="data directory (kept); default: a temporary one")
    ap.add_argument("--reuse", action="store_true", help="use the data already in --dir")
    ap.add_argument("--skip-python", action="store_true",
                    help="only run runner (with --dir --reuse, after a full run)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--_generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_python", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.stimuli, a.neurons = 300, 2000
        a.widths = a.widths or "500,1000,2000"
    if a.widths:
        a.widths = [int(w) for w in str(a.widths).split(",")]
    else:
        a.widths = [int(w) for w in np.linspace(4000, 20000, 10).round(-2)]
    return a


# --------------------------------------------------------------------- data

def generate(d: Path, a):
    rng = np.random.default_rng(2026_004)
    k = 40
    z = rng.standard_normal((a.stimuli, k))

    def block(width, noise):
        x = z @ (rng.standard_normal((k, width)) / np.sqrt(k))
        x += noise * rng.standard_normal((a.stimuli, width))
        np.maximum(x, 0, out=x)
        return x.astype(np.float32)

    np.save(d / "neural.npy", block(a.neurons, 1.0))
    for i, w in enumerate(a.widths):
        # Noise from 0.5 to 3: layers from close to far from the neural RDM.
        np.save(d / f"layer_{i}.npy", block(w, 0.5 + 2.5 * i / max(1, len(a.widths) - 1)))


# ------------------------------------------------------------------- python

def run_python(d: Path, a) -> dict:
    import scipy.stats

    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(a.threads)
    except ImportError:
        limits = contextlib.nullcontext()

    def tau_a(u, v):
        n0 = u.size * (u.size - 1) // 2

        def tied(x):
            _, c = np.unique(x, return_counts=True)
            return int((c * (c - 1) // 2).sum())

        tb = scipy.stats.kendalltau(u, v, variant="b").statistic
        return float(tb * np.sqrt(float(n0 - tied(u))) * np.sqrt(float(n0 - tied(v))) / n0)

    st = Stages()
    totals = {}

    def stage(name, f):
        with st(name):
            out = f()
        s = st[name]
        t = totals.setdefault(name, {"s": 0.0, "cpu_s": 0.0, "peak_mib": 0.0})
        t["s"] += s["s"]
        t["cpu_s"] += s["cpu_s"]
        t["peak_mib"] = max(t["peak_mib"], s["peak_mib"])
        return out

    def vector(name):
        with st("load"):
            x = np.load(d / f"{name}.npy").astype(np.float64)
        tl = totals.setdefault("load", {"s": 0.0, "cpu_s": 0.0, "peak_mib": 0.0})
        tl["s"] += st["load"]["s"]
        tl["cpu_s"] += st["load"]["cpu_s"]

        def rdm():
            zr = scipy.stats.zscore(x, axis=1)
            return 1 - (zr @ zr.T) / zr.shape[1]

        r = stage("rdm", rdm)
        del x
        return stage("upper", lambda: r[np.triu_indices(r.shape[0], k=1)])

    out = {"comparisons": []}
    with limits:
        nv = vector("neural")
        np.save(d / "python_neural_upper.npy", nv)
        for i in range(len(a.widths)):
            lv = vector(f"layer_{i}")
            out["comparisons"].append({
                "pearson": float(stage("pearson", lambda: np.corrcoef(lv, nv)[0, 1])),
                "spearman": float(stage("spearman", lambda: scipy.stats.spearmanr(lv, nv).statistic)),
                "kendall_tau_a": stage("kendall_tau_a", lambda: tau_a(lv, nv)),
            })
            del lv
    out["stages"] = totals
    out["peak_mib"] = max(totals[s]["peak_mib"] for s in STAGES)
    (d / "python.json").write_text(json.dumps(out))
    return out


# ------------------------------------------------------------------ runner

def build_runner():
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir()))
    print(f"building: cargo build --example bench_rsa (CARGO_TARGET_DIR={target_dir()})",
          flush=True)
    r = subprocess.run(["cargo", "build", "--example", "bench_rsa"], cwd=REPO, env=env)
    if r.returncode != 0:
        sys.exit(f"cargo build --example bench_rsa failed ({r.returncode})")


def run_runner(d: Path, a) -> dict:
    binary = target_dir() / "debug" / "examples" / "bench_rsa"
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    r = subprocess.run([str(binary), str(d)], env=env, capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        sys.exit(f"bench_rsa failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def child(flag: str, d: Path, a) -> dict | None:
    """This script with `flag` in a fresh process, so that each tool's peak
    memory is its own."""
    cmd = [sys.executable, __file__, flag, str(d), "--stimuli", str(a.stimuli),
           "--neurons", str(a.neurons), "--widths", ",".join(map(str, a.widths)),
           "--threads", str(a.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        sys.exit(f"{flag} failed ({out.returncode})")
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


# -------------------------------------------------------------------- main

def print_environment(a):
    import scipy

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cfg = np.show_config(mode="dicts") or {}
    blas = cfg.get("Build Dependencies", {}).get("blas", {})
    print(f"machine : {cmd_output(['nproc'])} cores (nproc), {cpu_model()}, {mem:.0f} GiB RAM, "
          f"{platform.system()} {platform.release()}")
    print(f"python  : {platform.python_version()}  numpy {np.__version__}  scipy "
          f"{scipy.__version__}  BLAS: {blas.get('name', '?')} {blas.get('version', '')}")
    print(f"rust    : {cmd_output(['rustc', '--version'])}  faer {lock_version('faer')}  "
          f"rayon {lock_version('rayon')}")
    n = a.stimuli
    print(f"sizes   : {n} stimuli; neural {a.neurons}, layers {a.widths} "
          f"(float32 on disk, float64 in both tools); correlation RDMs, "
          f"{n * (n - 1) // 2} entries each; {a.threads} threads", flush=True)


def table(py: dict | None, rs: dict):
    hdr = ("| stage | python s | runner s | ratio | python peak MiB | runner peak MiB "
           "| python CPU s | runner CPU s |")
    print(hdr)
    print("|" + "|".join("-" * (len(c) + 2) for c in hdr.strip("|").split("|")) + "|")

    def fmt(name, s, r):
        ratio = f"{s['s'] / r['s']:.1f}×" if s and r and r["s"] > 0 else "–"
        cols = [f"{x[key]:{f}}" if x else "–"
                for key, f in (("s", ".2f"), ("peak_mib", ".0f"), ("cpu_s", ".1f"))
                for x in (s, r)]
        print(f"| {name} | {cols[0]} | {cols[1]} | {ratio} | {cols[2]} | {cols[3]} "
              f"| {cols[4]} | {cols[5]} |")

    ps = py["stages"] if py else {}
    rss = rs["stages"]

    def total(stages):
        if all(s in stages for s in STAGES):
            return {"s": sum(stages[s]["s"] for s in STAGES),
                    "cpu_s": sum(stages[s]["cpu_s"] for s in STAGES),
                    "peak_mib": max(stages[s]["peak_mib"] for s in STAGES)}
        return None

    for name in STAGES:
        fmt(name, ps.get(name), rss.get(name))
    fmt("**total**", total(ps), total(rss))
    fmt("(load)", ps.get("load"), rss.get("load"))


def main(argv=None) -> int:
    a = parse_args(argv)
    if a._generate:
        generate(a._generate, a)
        return 0
    if a._python:
        print(json.dumps(run_python(a._python, a)))
        return 0

    print_environment(a)
    tmp = None
    if a.dir:
        d = a.dir
        d.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="rsa-bench-")
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
        py = None
        if not a.skip_python:
            print(f"running : numpy/scipy ({os.getloadavg()[0]:.2f} load)", flush=True)
            py = child("--_python", d, a)
        elif (d / "python.json").exists():
            py = json.loads((d / "python.json").read_text())
        print(f"running : runner ({os.getloadavg()[0]:.2f} load)", flush=True)
        rs = run_runner(d, a)
        print(f"done    : load {os.getloadavg()[0]:.2f}\n")
        table(py, rs)
        ok = True
        if py:
            worst = {m: 0.0 for m in METHODS}
            for p, r in zip(py["comparisons"], rs["comparisons"]):
                for m in METHODS:
                    if r[m] is None:
                        worst[m] = float("inf")
                    else:
                        worst[m] = max(worst[m], abs(p[m] - r[m]))
            c = rs.get("check") or {}
            drdm = c.get("max_abs_d_neural_rdm", float("inf"))
            print(f"\nagreement: max |Δ| over layers: " +
                  ", ".join(f"{m} {worst[m]:.1e}" for m in METHODS) +
                  f"; neural RDM max |Δ| {drdm:.1e}")
            ok = all(v <= 1e-8 for v in worst.values()) and drdm <= 1e-8
            print("values  : " + "; ".join(
                f"layer {i}: " + " ".join(f"{p[m]:.4f}" for m in METHODS)
                for i, p in enumerate(py["comparisons"])))
        print(f"\nrunner JSON: {json.dumps(rs)}")
        return 0 if ok else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
