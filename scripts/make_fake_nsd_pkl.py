#!/usr/bin/env python3
"""Write a tiny fake pickle with the structure of HW2's subjXX_nativesurface_nsdgeneral.pkl.

Usage:
    python scripts/make_fake_nsd_pkl.py OUT.pkl

Contents (deterministic, seed 0):
    image_data[split]        uint8   N x 16 x 16 x 3, N = 12 / 4 / 6 for train / val / test
    brain_data[split][hemi]  float32 N x 3 x V_hemi, V = 10 for lh, 8 for rh
    voxel_metadata[hemi]     DataFrame with '<hemi>.ncsnr', '<hemi>.nsdgeneral.label',
                             '<hemi>.streams.label', '<hemi>.prf-visualrois.label' and an
                             extra '<hemi>.curvature' column; one streams label is NaN.
"""

import pickle
import sys

import numpy as np
import pandas as pd

SPLITS = {"train": 12, "val": 4, "test": 6}
VOXELS = {"lh": 10, "rh": 8}
REPEATS = 3
IMAGE_SIZE = 16

STREAMS = ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal", "Unknown"]
ROIS = ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4", "Unknown"]


def _metadata(rng, hemi, n):
    ncsnr = rng.normal(0.3, 0.3, n)
    ncsnr[1] = 0.0  # boundary case for "ncsnr > 0"
    general = np.where(np.arange(n) % 4 == 3, "Unknown", "nsdgeneral").astype(object)
    streams = np.array([STREAMS[i % len(STREAMS)] for i in range(n)], dtype=object)
    streams[2] = np.nan  # a missing label
    rois = np.array([ROIS[(i * 3) % len(ROIS)] for i in range(n)], dtype=object)
    return pd.DataFrame({
        f"{hemi}.ncsnr": ncsnr,
        f"{hemi}.nsdgeneral.label": general,
        f"{hemi}.streams.label": streams,
        f"{hemi}.prf-visualrois.label": rois,
        f"{hemi}.curvature": rng.normal(0.0, 1.0, n) / 3.0,  # extra column, kept by the converter
    })


def make_fake(seed=0):
    """Return the fake HW2 dict."""
    rng = np.random.default_rng(seed)
    image_data, brain_data = {}, {}
    for split, n in SPLITS.items():
        image_data[split] = rng.integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        brain_data[split] = {
            hemi: rng.normal(0.0, 1.0, (n, REPEATS, v)).astype(np.float32) for hemi, v in VOXELS.items()
        }
    voxel_metadata = {hemi: _metadata(rng, hemi, v) for hemi, v in VOXELS.items()}
    return {"image_data": image_data, "brain_data": brain_data, "voxel_metadata": voxel_metadata}


def write(path, data=None):
    with open(path, "wb") as f:
        pickle.dump(make_fake() if data is None else data, f, protocol=4)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python scripts/make_fake_nsd_pkl.py OUT.pkl", file=sys.stderr)
        return 2
    write(argv[0])
    print(f"wrote {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
