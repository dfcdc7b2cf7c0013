#!/usr/bin/env python3
"""Load a synthetic Algonauts 2023 subject exactly as the devkit does and check it.

Usage:
    RUNNER_ALGONAUTS_OUT=/tmp/algo/subj01 cargo test --lib write_algonauts_subject_for_check -- --ignored
    python3 scripts/check_algonauts_synth.py /tmp/algo/subj01 [--readout] [--alexnet-weights PATH]

Needs numpy and Pillow (`pip install numpy==2.4.6 pillow==12.3.0`).

Everything is read the devkit's way: `np.load` for the fMRI and masks,
`np.load(path, allow_pickle=True).item()` for `mapping_<class>.npy`,
`sorted(os.listdir(...))` and `Image.open(p).convert('RGB')` for the images.
Checked: shapes and dtypes; fMRI rows = sorted training PNGs; names
`train-%04d_nsd-%05d.png` / `test-...` numbered 1.. with distinct NSD ids;
every all-vertices mask is 0/1 with V_hemi ones; every class has both spaces
per hemisphere, challenge = fsaverage[where(all_vertices)] and 0 elsewhere;
labels are keys of the mapping; the mappings are dicts {int: str} with 0 →
"Unknown", byte-identical to `np.save` of the same dict (numpy 2.x); `mTL-words` is in lh only and `aTL-faces` on no vertex.

--readout fits the devkit's encoding model on the subject: features of the
images → PCA (fit on the training partition) → LinearRegression per
hemisphere, on the devkit's split (np.random.seed(4), shuffle, 90/10), and
prints the median Pearson r per ROI; it asserts that early visual ROIs are
clearly positive. Features are torchvision AlexNet `features.2` when torch,
torchvision and --alexnet-weights (an `alexnet-owt-7be5be79.pth` state dict)
are available, else a numpy stand-in for AlexNet conv1 (11×11 stride-4 Gabor
and colour-opponent filters on the 224×224 normalised image, ReLU, 3/2 max
pool: the same 27×27 grid of local oriented energy).
"""
import argparse
import io
import os
import re
import sys

import numpy as np
from PIL import Image

CLASSES = ["prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams"]


def fail(msg):
    sys.exit(f"FAIL: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def load_subject(d):
    fmri_dir = os.path.join(d, "training_split", "training_fmri")
    lh = np.load(os.path.join(fmri_dir, "lh_training_fmri.npy"))
    rh = np.load(os.path.join(fmri_dir, "rh_training_fmri.npy"))
    train_dir = os.path.join(d, "training_split", "training_images")
    test_dir = os.path.join(d, "test_split", "test_images")
    train = sorted(os.listdir(train_dir))
    test = sorted(os.listdir(test_dir))
    return {"lh": lh, "rh": rh}, [os.path.join(train_dir, f) for f in train], [os.path.join(test_dir, f) for f in test]


def check_layout(d):
    fmri, train, test = load_subject(d)
    n = len(train)
    for hemi, a in fmri.items():
        check(a.dtype == np.float32 and a.ndim == 2 and a.shape[0] == n, f"{hemi} fMRI {a.shape} {a.dtype} vs {n} images")
        check(np.allclose(a.mean(0), 0, atol=1e-4) and np.allclose(a.std(0), 1, atol=1e-3), f"{hemi} not z-scored")
    ids = []
    for kind, paths in (("train", train), ("test", test)):
        for i, p in enumerate(paths):
            m = re.fullmatch(rf"{kind}-(\d{{4}})_nsd-(\d{{5}})\.png", os.path.basename(p))
            check(m and int(m.group(1)) == i + 1, f"bad name {p}")
            ids.append(int(os.path.basename(p)[-9:-4]))  # the devkit's NSD id
            img = Image.open(p).convert("RGB")
            check(img.size[0] == img.size[1] and img.size[0] >= 16, f"{p} size {img.size}")
    check(len(set(ids)) == len(ids), "NSD ids are not distinct")

    roi_dir = os.path.join(d, "roi_masks")
    maps = {}
    for c in CLASSES:
        m = np.load(os.path.join(roi_dir, f"mapping_{c}.npy"), allow_pickle=True).item()
        check(isinstance(m, dict) and all(type(k) is int and type(v) is str for k, v in m.items()), f"mapping {c}")
        check(m.get(0) == "Unknown", f"mapping {c} has no 0: Unknown")
        # runner writes np.save's own bytes for the dict (numpy 2.x, protocol 4).
        buf = io.BytesIO()
        np.save(buf, m)
        with open(os.path.join(roi_dir, f"mapping_{c}.npy"), "rb") as f:
            check(buf.getvalue() == f.read(), f"mapping_{c}.npy is not byte-identical to np.save's")
        maps[c] = m
    present = {}
    for hemi in ("lh", "rh"):
        allv = np.load(os.path.join(roi_dir, f"{hemi[0]}h.all-vertices_fsaverage_space.npy"))
        check(allv.ndim == 1 and set(np.unique(allv)) <= {0, 1}, f"{hemi} all-vertices")
        idx = np.where(allv)[0]
        v = fmri[hemi].shape[1]
        check(len(idx) == v, f"{hemi}: {len(idx)} ones, {v} vertices")
        for c in CLASSES:
            ch = np.load(os.path.join(roi_dir, f"{hemi[0]}h.{c}_challenge_space.npy"))
            fs = np.load(os.path.join(roi_dir, f"{hemi[0]}h.{c}_fsaverage_space.npy"))
            check(ch.shape == (v,) and fs.shape == allv.shape, f"{hemi} {c} shapes {ch.shape} {fs.shape}")
            check(np.array_equal(fs[idx], ch) and not fs[allv == 0].any(), f"{hemi} {c}: spaces disagree")
            check(set(np.unique(ch).astype(int)) <= set(maps[c]), f"{hemi} {c}: label not in mapping")
            for key, name in maps[c].items():
                if key != 0:
                    # The devkit's selection: challenge_roi = (challenge_roi_class == key).
                    present[(c, name, hemi)] = int(np.sum(ch == key))
    for c, m in maps.items():
        for name in m.values():
            if name == "Unknown":
                continue
            lh_n, rh_n = present[(c, name, "lh")], present[(c, name, "rh")]
            if name == "mTL-words":
                check(lh_n > 0 and rh_n == 0, f"mTL-words lh {lh_n} rh {rh_n}")
            elif name == "aTL-faces":
                check(lh_n == 0 and rh_n == 0, "aTL-faces should be on no vertex")
            else:
                check(lh_n > 0 and rh_n > 0, f"{c}/{name}: lh {lh_n}, rh {rh_n} vertices")
    print(f"layout OK: {n} train / {len(test)} test images, lh {fmri['lh'].shape[1]} rh {fmri['rh'].shape[1]} "
          f"vertices, fsaverage {len(allv)}, {len(CLASSES)} classes")
    return fmri, train, test, maps


# ---------------------------------------------------------------- readout

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def preprocess(path):
    """The devkit's Resize((224, 224)), ToTensor, Normalize on a PIL image: 3×224×224."""
    img = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = np.asarray(img, np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def conv1_bank():
    """64 filters 3×11×11: Gabors (4 orientations × 2 phases × 3 frequencies ×
    luminance) and colour-opponent blobs, roughly what trained AlexNet conv1 holds."""
    yy, xx = np.mgrid[-5:6, -5:6].astype(np.float32)
    filters = []
    for f in (0.08, 0.16, 0.3):
        for k in range(4):
            th = k * np.pi / 4
            u = xx * np.cos(th) + yy * np.sin(th)
            env = np.exp(-(xx**2 + yy**2) / (2 * (0.5 / f) ** 2))
            for phase in (0, np.pi / 2):
                g = env * np.cos(2 * np.pi * f * u + phase)
                g -= g.mean()
                g /= np.abs(g).sum()
                filters.append(np.stack([g, g, g]))
    for sigma in (1.5, 3.0):
        blob = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        blob /= blob.sum()
        for w in ([1, -1, 0], [-1, 1, 0], [0.5, 0.5, -1], [-0.5, -0.5, 1], [1, 1, 1], [-1, -1, -1]):
            filters.append(np.stack([c * blob for c in w]))
    while len(filters) < 64:  # pad with rotated copies of the Gabors, as AlexNet has near-duplicates
        filters.append(np.rot90(filters[len(filters) % 24], axes=(1, 2)).copy())
    return np.stack(filters).astype(np.float32)


def conv1_features(paths):
    w = conv1_bank().reshape(64, -1)
    out = []
    for p in paths:
        x = np.pad(preprocess(p), ((0, 0), (2, 2), (2, 2)))
        # im2col for 11×11 stride 4 → 55×55
        idx = np.arange(55) * 4
        cols = np.stack([x[:, i:i + 11, j:j + 11].ravel() for i in idx for j in idx])
        a = np.maximum(cols @ w.T, 0).T.reshape(64, 55, 55)
        pooled = np.stack([[a[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2)) for j in range(27)]
                           for i in range(27)]).transpose(2, 0, 1)
        out.append(pooled.ravel())
    return np.stack(out)


def alexnet_features(paths, weights):
    import torch
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    model = torchvision.models.alexnet()
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    ext = create_feature_extractor(model, return_nodes=["features.2"])
    feats = []
    with torch.no_grad():
        for i in range(0, len(paths), 100):
            x = torch.from_numpy(np.stack([preprocess(p) for p in paths[i:i + 100]]))
            feats.append(torch.flatten(ext(x)["features.2"], 1).numpy())
    return np.concatenate(feats)


def readout(fmri, train, maps, d, weights):
    if weights:
        feats, kind = alexnet_features(train, weights), "AlexNet features.2"
    else:
        feats, kind = conv1_features(train), "numpy conv1 stand-in"
    n = len(train)
    np.random.seed(4)
    idxs = np.arange(n)
    np.random.shuffle(idxs)
    n_train = int(np.round(n / 100 * 90))
    tr, va = idxs[:n_train], idxs[n_train:]
    mu = feats[tr].mean(0)
    _, _, vt = np.linalg.svd(feats[tr] - mu, full_matrices=False)
    roi_dir = os.path.join(d, "roi_masks")
    for n_comp in (50, 100):
        comps = vt[:n_comp].T
        z_tr, z_va = (feats[tr] - mu) @ comps, (feats[va] - mu) @ comps
        x_tr = np.hstack([z_tr, np.ones((len(tr), 1))])
        x_va = np.hstack([z_va, np.ones((len(va), 1))])
        print(f"readout: {kind}, PCA {n_comp}, OLS, {len(tr)}/{len(va)} split (seed 4)")
        medians = {}
        for hemi in ("lh", "rh"):
            y = fmri[hemi]
            beta, *_ = np.linalg.lstsq(x_tr, y[tr], rcond=None)
            pred = x_va @ beta
            pc, yc = pred - pred.mean(0), y[va] - y[va].mean(0)
            r = (pc * yc).sum(0) / np.sqrt((pc**2).sum(0) * (yc**2).sum(0))
            for c in ("prf-visualrois", "streams"):
                ch = np.load(os.path.join(roi_dir, f"{hemi}.{c}_challenge_space.npy"))
                for key, name in maps[c].items():
                    if key and (ch == key).any():
                        medians[(hemi, name)] = float(np.median(r[ch == key]))
            medians[(hemi, "All vertices")] = float(np.median(r))
        names = sorted({k[1] for k in medians}, key=lambda s: (s != "All vertices", s))
        for name in names:
            print(f"  {name:>13}: lh {medians.get(('lh', name), float('nan')):+.3f}"
                  f"  rh {medians.get(('rh', name), float('nan')):+.3f}")
        for hemi in ("lh", "rh"):
            for name in ("V1v", "V1d", "V2v", "V2d", "early"):
                if (hemi, name) in medians:
                    check(medians[(hemi, name)] > 0.15, f"{hemi} {name} median r {medians[(hemi, name)]:.3f}")
    print("readout OK: early visual ROIs are clearly predictable")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("subject_dir")
    ap.add_argument("--readout", action="store_true")
    ap.add_argument("--alexnet-weights", default=None)
    args = ap.parse_args()
    fmri, train, _, maps = check_layout(args.subject_dir)
    if args.readout:
        readout(fmri, train, maps, args.subject_dir, args.alexnet_weights)


if __name__ == "__main__":
    main()
