#!/usr/bin/env python3
"""Extraction throughput: runner's AlexNet backends against PyTorch on the CPU.

Generates deterministic natural-ish uint8 images (N×H×W×3, 227×227 by default
like NSD's HW2 stimuli), then, in the same run and with the same thread count:

* PyTorch: an AlexNet laid out like torchvision's (``features`` /
  ``avgpool`` / ``classifier``) with HW2's widths (64, 192, 384, 384, 256;
  4096 hidden, 1000 classes), random init, eval mode, ``torch.inference_mode``,
  ``torch.set_num_threads(--threads)``. The five HW2 taps (``features.2``,
  ``features.5``, ``features.12``, ``classifier.1``, ``classifier.4``) are
  copied to numpy arrays. Timed: (a) forward + copies on preprocessed tensor
  batches; (b) end to end, HW2's torchvision pipeline
  (``Resize((256, 256))``, ``CenterCrop(224)``, ``ToTensor()``,
  ``Normalize(ImageNet)``) on PIL images one by one, ``torch.stack``, then (a).
* runner: the ``bench_extract`` example (``examples/bench_extract.rs``) on the
  same ``.npy`` file, flex (pure-Rust) build, with ``RAYON_NUM_THREADS``; and
  the libtorch build (``--features tch``) if its binary exists, with
  ``RAYON_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``.

Prints the machine, versions and a table of img/s with ratios against PyTorch
(ratio > 1: runner is faster).

Usage::

    .venv/bin/python bench/extract.py [--images 256] [--size 227] [--batch 32]
        [--threads 2] [--repeats 2] [--layers] [--quick] [--no-build] [--build-tch]
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
SEED = 20240917
HW_WIDTHS = (64, 192, 384, 384, 256)
TV_WIDTHS = (64, 192, 384, 256, 256)
FEATURE_TAPS = (2, 5, 12)      # features.2, features.5, features.12
CLASSIFIER_TAPS = (1, 4)       # classifier.1, classifier.4
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=256, help="number of images (default 256)")
    ap.add_argument("--size", type=int, default=227,
                    help="image height = width in pixels (default 227; NSD HW2 uses 227 or 425)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads for PyTorch; RAYON/OMP/MKL threads for runner")
    ap.add_argument("--repeats", type=int, default=2,
                    help="timed passes over all images per measurement; the best is reported")
    ap.add_argument("--layout", choices=("hw", "torchvision"), default="hw")
    ap.add_argument("--layers", action="store_true",
                    help="also time each module on one batch, best of max(--repeats, 5) "
                         "(where the forward time goes)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 32 images, batch 16, 1 repeat")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run `cargo build --example bench_extract` (flex) first")
    ap.add_argument("--build-tch", action="store_true",
                    help="also build the libtorch binary (cargo build --features tch, "
                         "LIBTORCH_USE_PYTORCH=1, in --tch-target-dir); slow when cold")
    ap.add_argument("--tch-target-dir", type=Path,
                    default=Path(os.environ.get("RUNNER_TCH_TARGET_DIR",
                                                Path.home() / ".cache" / "runner-target-tch")),
                    help="CARGO_TARGET_DIR of the --features tch build "
                         "(default $RUNNER_TCH_TARGET_DIR or ~/.cache/runner-target-tch)")
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.batch, args.repeats = 32, 16, 1
    if min(args.images, args.size, args.batch, args.threads, args.repeats) < 1:
        ap.error("--images, --size, --batch, --threads and --repeats must be at least 1")
    return args


# ---------------------------------------------------------------- environment

from machine import cmd_output, cpu_model, load, lock_version, target_dir  # noqa: E402


def torch_lib_dir() -> Path:
    import torch
    return Path(torch.__file__).resolve().parent / "lib"


def print_environment(args):
    import PIL
    import torch
    import torchvision

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine : {cmd_output(['nproc'])} cores (nproc), {cpu_model()}, "
          f"{mem_gb:.0f} GiB RAM, {platform.system()} {platform.release()}, "
          f"load average {' '.join(f'{l:.2f}' for l in os.getloadavg())}")
    print(f"python  : {platform.python_version()}  numpy {np.__version__}  "
          f"torch {torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"mkldnn {torch.backends.mkldnn.is_available()})  torchvision {torchvision.__version__}  "
          f"pillow {PIL.__version__}")
    print(f"rust    : {cmd_output(['rustc', '--version'])}  burn {lock_version('burn')}  "
          f"tch {lock_version('tch')}  rayon {lock_version('rayon')}  gemm {lock_version('gemm')}")
    print(f"settings: {args.images} images {args.size}×{args.size}, batch {args.batch}, "
          f"threads {args.threads}, repeats {args.repeats}, layout {args.layout}, "
          f"taps features.2/5/12 classifier.1/4")
    sys.stdout.flush()


# ----------------------------------------------------------------------- data

def make_images(n: int, size: int, seed: int = SEED) -> np.ndarray:
    """Deterministic natural-ish RGB images, uint8 N×size×size×3.

    Each image: noise with a 1/f^α power spectrum (α ∈ [1.6, 2.4] around
    natural images' ≈ 2) and correlated colour channels, plus a few
    soft-edged discs and bars in random colours (object-like edges), with a
    gamma and contrast stretch to fill 0–255.
    """
    rng = np.random.default_rng([seed, n, size])
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0 / size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        alpha = rng.uniform(1.6, 2.4)
        amp = f ** (-alpha / 2)  # power spectrum ∝ 1/f^α
        mix = rng.normal(0.6, 0.25, (3, 3)) + np.eye(3)
        base = np.empty((size, size, 3), dtype=np.float32)
        for c in range(3):
            phase = rng.uniform(0, 2 * np.pi, amp.shape)
            base[..., c] = np.fft.irfft2(amp * np.exp(1j * phase), s=(size, size))
        base = base @ mix.T.astype(np.float32)
        base = (base - base.mean()) / (base.std() + 1e-6)
        for _ in range(rng.integers(2, 6)):
            color = rng.normal(0, 1.5, 3).astype(np.float32)
            cy, cx = rng.uniform(0.1, 0.9, 2)
            if rng.random() < 0.6:
                r = rng.uniform(0.05, 0.3)
                d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - r
            else:
                th = rng.uniform(0, np.pi)
                d = np.abs((yy - cy) * np.cos(th) - (xx - cx) * np.sin(th)) - rng.uniform(0.02, 0.1)
            m = 1.0 / (1.0 + np.exp(np.clip(d * size / rng.uniform(0.7, 3.0), -30, 30)))
            base = base * (1 - m[..., None]) + color * m[..., None]
        lo, hi = np.percentile(base, (1, 99))
        x = np.clip((base - lo) / (hi - lo + 1e-6), 0, 1) ** rng.uniform(0.8, 1.25)
        out[i] = np.round(x * 255).astype(np.uint8)
    return out


# -------------------------------------------------------------------- PyTorch

def make_alexnet(widths):
    """torchvision's AlexNet module structure with configurable conv widths."""
    from torch import nn

    c1, c2, c3, c4, c5 = widths

    class AlexNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(c1, c2, kernel_size=5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(c2, c3, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c3, c4, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c4, c5, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
            )
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(p=0.5),
                nn.Linear(c5 * 6 * 6, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(p=0.5),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Linear(4096, 1000),
            )

    return AlexNet()


def forward_taps(net, x):
    """The five HW2 taps as numpy copies, flattened per image. Runs up to
    classifier.4 (the deepest tap), as runner's forward_taps does; each tap is
    copied before the in-place ReLU that follows it."""
    outs = []
    h = x
    for i, m in enumerate(net.features):
        h = m(h)
        if i in FEATURE_TAPS:
            outs.append(h.flatten(1).numpy().copy())
    h = net.avgpool(h).flatten(1)
    for i, m in enumerate(net.classifier[: max(CLASSIFIER_TAPS) + 1]):
        h = m(h)
        if i in CLASSIFIER_TAPS:
            outs.append(h.numpy().copy())
    return outs


def layer_times(net, x, repeats: int):
    """Wall time of each module on one batch, best of `repeats`, up to classifier.5."""
    mods = [(f"features.{i}", m) for i, m in enumerate(net.features)]
    mods.append(("avgpool", lambda h: net.avgpool(h).flatten(1)))
    mods += [(f"classifier.{i}", m) for i, m in enumerate(net.classifier[:6])
             if not isinstance(m, type(net.classifier[0]))]  # skip Dropout
    best = {}
    for _ in range(repeats):
        h = x.clone()
        for name, m in mods:
            t0 = time.perf_counter()
            h = m(h)
            dt = time.perf_counter() - t0
            best[name] = min(best.get(name, float("inf")), dt)
    return best


def run_pytorch(images: np.ndarray, args) -> dict:
    import torch
    from PIL import Image
    from torchvision import transforms

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = make_alexnet(HW_WIDTHS if args.layout == "hw" else TV_WIDTHS).eval()
    tf = transforms.Compose([
        transforms.Resize((256, 256)),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])
    n = len(images)
    batches = [(s, min(s + args.batch, n)) for s in range(0, n, args.batch)]

    def preprocess(s, e):
        return torch.stack([tf(Image.fromarray(images[i])) for i in range(s, e)])

    with torch.inference_mode():
        s0, e0 = batches[0]
        widths = [o.shape[1] for o in forward_taps(net, preprocess(s0, e0))]  # warm-up

        pre = [preprocess(s, e) for s, e in batches]
        best_fwd = float("inf")
        for _ in range(args.repeats):
            t = 0.0
            for x in pre:
                t0 = time.perf_counter()
                outs = forward_taps(net, x)
                t += time.perf_counter() - t0
                del outs
            best_fwd = min(best_fwd, t)
        del pre

        best_e2e = (float("inf"), 0.0, 0.0)
        for _ in range(args.repeats):
            pre_t = fwd_t = 0.0
            t_all = time.perf_counter()
            for s, e in batches:
                t0 = time.perf_counter()
                x = preprocess(s, e)
                t1 = time.perf_counter()
                outs = forward_taps(net, x)
                fwd_t += time.perf_counter() - t1
                pre_t += t1 - t0
                del outs, x
            all_t = time.perf_counter() - t_all
            if all_t < best_e2e[0]:
                best_e2e = (all_t, pre_t, fwd_t)

        layers = None
        if args.layers:
            s0, e0 = batches[0]
            layers = layer_times(net, preprocess(s0, e0), max(args.repeats, 5))

    return {
        "backend": f"PyTorch {torch.__version__} CPU",
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "n_images": n,
        "tap_widths": widths,
        "forward_img_s": n / best_fwd,
        "forward_s": best_fwd,
        "e2e_img_s": n / best_e2e[0],
        "e2e_s": best_e2e[0],
        "e2e_preprocess_s": best_e2e[1],
        "e2e_forward_s": best_e2e[2],
        "preprocess_img_s": n / best_e2e[1],
        "layers": layers,
    }


# --------------------------------------------------------------------- runner

def build(target: Path, features=(), extra_env=None) -> None:
    env = dict(os.environ, CARGO_TARGET_DIR=str(target), **(extra_env or {}))
    cmd = ["cargo", "build", "--example", "bench_extract"]
    for f in features:
        cmd += ["--features", f]
    print(f"building: {' '.join(cmd)} (CARGO_TARGET_DIR={target})", flush=True)
    r = subprocess.run(cmd, cwd=REPO, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode})")


def tch_build_env() -> dict:
    venv = Path(sys.prefix)
    return {
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "LIBTORCH_USE_PYTORCH": "1",
    }


def newest_source_mtime() -> float:
    files = [REPO / "Cargo.toml", REPO / "Cargo.lock", REPO / "examples" / "bench_extract.rs"]
    files += list((REPO / "src").rglob("*.rs"))
    return max(p.stat().st_mtime for p in files if p.exists())


def run_runner(binary: Path, images: Path, args, env_extra: dict) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               **env_extra)
    cmd = [str(binary), str(images), "--batch", str(args.batch), "--repeats",
           str(args.repeats), "--layout", args.layout] + (["--layers"] if args.layers else [])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(f"{binary} failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- main

def main(argv=None) -> int:
    args = parse_args(argv)
    print_environment(args)
    flex_bin = target_dir() / "debug" / "examples" / "bench_extract"
    tch_bin = args.tch_target_dir / "debug" / "examples" / "bench_extract"
    if not args.no_build:
        build(target_dir())
    if args.build_tch:
        build(args.tch_target_dir, ("tch",), tch_build_env())
    if not flex_bin.exists():
        sys.exit(f"{flex_bin} not found (build it with `cargo build --example bench_extract`)")

    print(f"\ngenerating {args.images} images {args.size}×{args.size} ...", flush=True)
    t0 = time.perf_counter()
    images = make_images(args.images, args.size)
    print(f"generated in {time.perf_counter() - t0:.1f} s ({load()})", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        path = Path(tmp) / "images.npy"
        np.save(path, images)

        print("PyTorch ...", flush=True)
        pt = run_pytorch(images, args)
        print(f"PyTorch: forward {pt['forward_img_s']:.1f} img/s, end-to-end "
              f"{pt['e2e_img_s']:.1f} img/s ({load()})", flush=True)
        rows.append(pt)
        del images

        print("runner flex ...", flush=True)
        fx = run_runner(flex_bin, path, args, {})
        print(f"runner {fx['backend']}: forward {fx['forward_img_s']:.1f} img/s, end-to-end "
              f"{fx['e2e_img_s']:.1f} img/s ({load()})", flush=True)
        rows.append(fx)

        if tch_bin.exists():
            if tch_bin.stat().st_mtime < newest_source_mtime():
                print(f"warning: {tch_bin} is older than the sources; rebuild it "
                      "(--build-tch) for a current measurement", flush=True)
            print("runner libtorch ...", flush=True)
            lib = str(torch_lib_dir())
            ld = os.environ.get("LD_LIBRARY_PATH")
            tc = run_runner(tch_bin, path, args,
                            {"LD_LIBRARY_PATH": f"{lib}{os.pathsep}{ld}" if ld else lib})
            print(f"runner {tc['backend']}: forward {tc['forward_img_s']:.1f} img/s, end-to-end "
                  f"{tc['e2e_img_s']:.1f} img/s, libtorch threads {tc['libtorch_threads']} "
                  f"({load()})", flush=True)
            rows.append(tc)
        else:
            print(f"runner libtorch: skipped, {tch_bin} not built "
                  "(--build-tch, or cargo build --features tch --example bench_extract)", flush=True)

    for r in rows[1:]:
        if r["tap_widths"] != pt["tap_widths"]:
            sys.exit(f"tap widths differ: PyTorch {pt['tap_widths']}, "
                     f"{r['backend']} {r['tap_widths']}")

    names = ["PyTorch" if i == 0 else f"runner {r['backend']}" for i, r in enumerate(rows)]
    w = max(len("backend"), *(len(s) for s in names))
    header = (f"| {'backend':<{w}} | threads | batch | forward img/s | end-to-end img/s "
              f"| ratio vs PyTorch (forward) | ratio vs PyTorch (end-to-end) |")
    print()
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name, r in zip(names, rows):
        print(f"| {name:<{w}} | {r['threads']:>7} | {r['batch']:>5} | {r['forward_img_s']:>13.1f} "
              f"| {r['e2e_img_s']:>16.1f} | {r['forward_img_s'] / pt['forward_img_s']:>25.2f}× "
              f"| {r['e2e_img_s'] / pt['e2e_img_s']:>28.2f}× |")

    header2 = (f"| {'backend':<{w}} | forward s | of which copy s | end-to-end s "
               f"| preprocess s | forward+copy s | preprocess img/s |")
    print()
    print(header2)
    print("|" + "|".join("-" * len(c) for c in header2.split("|")[1:-1]) + "|")
    for name, r in zip(names, rows):
        copy = f"{r['forward_copy_s']:.2f}" if "forward_copy_s" in r else "–"
        print(f"| {name:<{w}} | {r['forward_s']:>9.2f} | {copy:>15} | {r['e2e_s']:>12.2f} "
              f"| {r['e2e_preprocess_s']:>12.2f} | {r['e2e_forward_s']:>14.2f} "
              f"| {r['preprocess_img_s']:>16.1f} |")
    if args.layers:
        per = [r["layers"] if i == 0 else dict(r["layers"]["seconds"]) for i, r in enumerate(rows)]
        nb = min(args.batch, args.images)
        cols = [n.replace("runner ", "") for n in names]
        header3 = "| module       | " + " | ".join(f"{c:>19}" for c in cols) + " |"
        print(f"\nper module, one batch of {nb} images, best of {max(args.repeats, 5)}, "
              "seconds (share of the sum):")
        print(header3)
        print("|" + "|".join("-" * len(c) for c in header3.split("|")[1:-1]) + "|")
        totals = [sum(p.values()) for p in per]
        for name in per[0]:
            cells = [f"{p.get(name, float('nan')):8.4f} ({100 * p.get(name, 0) / t:4.1f}%)"
                     for p, t in zip(per, totals)]
            print(f"| {name:<12} | " + " | ".join(f"{c:>19}" for c in cells) + " |")
        print("| sum          | " + " | ".join(f"{t:>8.4f}{'':11}" for t in totals) + " |")

    print(f"\n{args.images} images {args.size}×{args.size}; best of {args.repeats} pass(es) each; "
          "ratio = runner img/s / PyTorch img/s (> 1: runner faster).\n"
          "forward = forward + copy of the five taps on preprocessed batches; end-to-end = "
          "HW2 preprocessing (PyTorch: PIL + torchvision per image, one thread; runner: "
          "rayon) + forward + copy.")
    best = max(rows[1:], key=lambda r: r["e2e_img_s"])
    ok = best["e2e_img_s"] >= pt["e2e_img_s"] and best["forward_img_s"] >= pt["forward_img_s"]
    print(f"target (fastest runner backend ≥ PyTorch CPU): {'met' if ok else 'NOT met'} — "
          f"{best['backend']} at {best['forward_img_s'] / pt['forward_img_s']:.2f}× forward, "
          f"{best['e2e_img_s'] / pt['e2e_img_s']:.2f}× end-to-end ({load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
