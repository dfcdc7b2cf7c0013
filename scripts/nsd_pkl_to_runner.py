#!/usr/bin/env python3
"""Convert an HW2 NSD pickle (subjXX_nativesurface_nsdgeneral.pkl) to the runner layout.

Usage:
    python scripts/nsd_pkl_to_runner.py INPUT.pkl OUT_DIR [--subject NAME] [--force]

Input: the HW2 pickle, a dict with
    image_data[split]              uint8   N x H x W x 3
    brain_data[split][hemi]        float32 N x R x V_hemi   (hemi in 'lh', 'rh')
    voxel_metadata[hemi]           pandas DataFrame with V_hemi rows and columns
                                   '<hemi>.ncsnr', '<hemi>.nsdgeneral.label', and
                                   usually '<hemi>.streams.label',
                                   '<hemi>.prf-visualrois.label', maybe more.

Output, format "runner-nsd-v1":

    OUT_DIR/
      subject.json              {"format": "runner-nsd-v1", "subject": NAME,
                                 "source": INPUT file name,
                                 "splits": {"train": N, "val": N, "test": N},
                                 "hemis": ["lh", "rh"], "repeats": R,
                                 "image_shape": [H, W, 3]}
      images/<split>.npy        uint8 N x H x W x 3, C-order (the pickle's array)
      brain/<split>.<hemi>.npy  float32 N x R x V_hemi, C-order (the pickle's array)
      voxels.csv                one row per voxel: every lh voxel in order, then every rh voxel

voxels.csv columns, in order: hemi (lh/rh), index (0-based position within its
hemisphere), ncsnr, then every other metadata column in the pickle's column
order with the '<hemi>.' prefix and a trailing '.label' stripped (so
nsdgeneral, streams, prf-visualrois, ...). Floats are written with full
precision (Python repr of the float64 value, which round-trips exactly);
missing values (NaN/None) are empty fields. Standard CSV quoting, a header row,
no index column, UTF-8, '\\n' line endings. A column present in only one
hemisphere's metadata is kept and left empty for the other hemisphere.

Every split present in both image_data and brain_data is converted (train, val,
test first, then any others in name order); splits present in only one of them
are skipped with a warning. The output is written to a temporary sibling
directory and renamed into place only when complete; an existing OUT_DIR is
refused unless --force is given.

Only load pickles you trust: unpickling can run arbitrary code.
"""

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import pandas as pd

FORMAT = "runner-nsd-v1"
HEMIS = ("lh", "rh")
SPLIT_ORDER = ("train", "val", "test")


class ConversionError(Exception):
    """A problem with the input that the user has to fix."""


def _fail(msg):
    raise ConversionError(msg)


def _default_subject(path):
    stem = os.path.basename(path)
    m = re.match(r"(subj\d+)", stem)
    return m.group(1) if m else os.path.splitext(stem)[0]


def _ordered_splits(data):
    common = set(data["image_data"]) & set(data["brain_data"])
    for name in sorted(set(data["image_data"]) ^ set(data["brain_data"]), key=str):
        where = "image_data" if name in data["image_data"] else "brain_data"
        print(f"warning: split {name!r} is only in {where}; skipping it", file=sys.stderr)
    splits = [s for s in SPLIT_ORDER if s in common]
    splits += sorted((s for s in common if s not in SPLIT_ORDER), key=str)
    if not splits:
        _fail("no split is present in both image_data and brain_data "
              f"(image_data has {sorted(map(str, data['image_data']))}, "
              f"brain_data has {sorted(map(str, data['brain_data']))})")
    for s in splits:
        if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", s):
            _fail(f"split name {s!r} cannot be used as a file name; rename it to letters, digits, '_' or '-'")
    return splits


def _check_images(split, img, image_shape):
    key = f"image_data[{split!r}]"
    if not isinstance(img, np.ndarray):
        _fail(f"{key} must be a numpy array, found {type(img).__name__}")
    if img.dtype != np.uint8 or img.ndim != 4 or img.shape[3] != 3:
        _fail(f"{key} must be uint8 with shape N x H x W x 3, found {img.dtype} with shape {img.shape}")
    if image_shape is not None and list(img.shape[1:]) != image_shape:
        _fail(f"{key} has images of shape {list(img.shape[1:])}, but earlier splits have {image_shape}; "
              "all splits must share one image size")
    return list(img.shape[1:])


def _check_brain(split, hemi, arr, n_images, repeats, n_voxels):
    key = f"brain_data[{split!r}][{hemi!r}]"
    if not isinstance(arr, np.ndarray):
        _fail(f"{key} must be a numpy array, found {type(arr).__name__}")
    if arr.ndim != 3:
        _fail(f"{key} must be 3-D (N x repeats x voxels), found shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        _fail(f"{key} must hold floats (float32), found {arr.dtype}")
    if arr.shape[0] != n_images:
        _fail(f"split {split!r}: image_data[{split!r}] has {n_images} images but {key} has "
              f"{arr.shape[0]} (shape {arr.shape}); the first dimensions must match")
    if repeats is not None and arr.shape[1] != repeats:
        _fail(f"{key} has {arr.shape[1]} repeats (shape {arr.shape}), but other arrays have {repeats}; "
              "all brain arrays must have the same number of repeats")
    if arr.shape[2] != n_voxels:
        _fail(f"{key} has {arr.shape[2]} voxels (shape {arr.shape}), but voxel_metadata[{hemi!r}] "
              f"has {n_voxels} rows; they must match")


def _fmt_float(x):
    return "" if math.isnan(x) else repr(float(x))


def _voxel_table(meta, hemi):
    """One hemisphere's metadata as a table of runner columns (ncsnr first)."""
    key = f"voxel_metadata[{hemi!r}]"
    if not isinstance(meta, pd.DataFrame):
        _fail(f"{key} must be a pandas DataFrame, found {type(meta).__name__}")
    cols = [str(c) for c in meta.columns]
    for required in (f"{hemi}.ncsnr", f"{hemi}.nsdgeneral.label"):
        if required not in cols:
            _fail(f"{key} is missing the required column {required!r} (found columns {cols})")
    out = {"hemi": [hemi] * len(meta), "index": list(range(len(meta)))}
    for col, name in zip(meta.columns, cols):
        short = name[len(hemi) + 1:] if name.startswith(hemi + ".") else name
        if short.endswith(".label"):
            short = short[: -len(".label")]
        if short in out:
            _fail(f"{key}: column {name!r} becomes {short!r}, which clashes with another column; rename one")
        values = meta[col]
        if pd.api.types.is_float_dtype(values.dtype):
            out[short] = [_fmt_float(v) for v in values.to_numpy(dtype=np.float64)]
        else:
            out[short] = values.to_numpy(dtype=object)
    table = pd.DataFrame(out)
    rest = [c for c in table.columns if c not in ("hemi", "index", "ncsnr")]
    return table[["hemi", "index", "ncsnr"] + rest]


def _write_npy(path, arr):
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def _count_good(meta, hemi):
    ncsnr = pd.to_numeric(meta[f"{hemi}.ncsnr"], errors="coerce")
    return int(((meta[f"{hemi}.nsdgeneral.label"] == "nsdgeneral") & (ncsnr > 0)).sum())


def convert(input_path, out_dir, subject=None, force=False):
    """Convert INPUT.pkl into OUT_DIR; return the summary paragraph."""
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir) and not force:
        _fail(f"output directory {out_dir} already exists; remove it or pass --force to replace it")
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        _fail(f"{out_dir} exists and is not a directory; remove it first")
    subject = subject or _default_subject(input_path)

    try:
        data = pd.read_pickle(input_path)
    except Exception as e:  # unreadable, truncated or not a pickle
        _fail(f"cannot read {input_path} as a pickle: {type(e).__name__}: {e}")
    if not isinstance(data, dict):
        _fail(f"{input_path} should hold a dict, found {type(data).__name__}")
    for k in ("image_data", "brain_data", "voxel_metadata"):
        if k not in data:
            _fail(f"{input_path} has no key {k!r} (found keys {sorted(map(str, data))})")
    for hemi in HEMIS:
        if hemi not in data["voxel_metadata"]:
            _fail(f"voxel_metadata has no {hemi!r} entry (found {sorted(map(str, data['voxel_metadata']))})")
    splits = _ordered_splits(data)
    meta = {h: data["voxel_metadata"][h] for h in HEMIS}
    tables = {h: _voxel_table(meta[h], h) for h in HEMIS}  # validates columns first

    image_shape, repeats = None, None
    for split in splits:
        img = data["image_data"][split]
        image_shape = _check_images(split, img, image_shape)
        for hemi in HEMIS:
            if hemi not in data["brain_data"][split]:
                _fail(f"brain_data[{split!r}] has no {hemi!r} entry")
            arr = data["brain_data"][split][hemi]
            _check_brain(split, hemi, arr, img.shape[0], repeats, len(meta[hemi]))
            repeats = arr.shape[1]

    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; give OUT_DIR normal permissions
        os.mkdir(os.path.join(tmp, "images"))
        os.mkdir(os.path.join(tmp, "brain"))
        for split in splits:
            _write_npy(os.path.join(tmp, "images", f"{split}.npy"), data["image_data"][split])
            for hemi in HEMIS:
                arr = data["brain_data"][split][hemi]
                if arr.dtype != np.float32:
                    print(f"warning: brain_data[{split!r}][{hemi!r}] is {arr.dtype}; writing it as float32",
                          file=sys.stderr)
                    arr = arr.astype(np.float32)
                _write_npy(os.path.join(tmp, "brain", f"{split}.{hemi}.npy"), arr)
        voxels = pd.concat([tables[h] for h in HEMIS], ignore_index=True)
        voxels.to_csv(os.path.join(tmp, "voxels.csv"), index=False, na_rep="",
                      lineterminator="\n", encoding="utf-8")
        info = {
            "format": FORMAT,
            "subject": subject,
            "source": os.path.basename(input_path),
            "splits": {s: int(data["image_data"][s].shape[0]) for s in splits},
            "hemis": list(HEMIS),
            "repeats": int(repeats),
            "image_shape": [int(x) for x in image_shape],
        }
        with open(os.path.join(tmp, "subject.json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(info, f, indent=2)
            f.write("\n")

        if os.path.lexists(out_dir):  # --force: swap the old directory out, then delete it
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "x"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)

    good = {h: _count_good(meta[h], h) for h in HEMIS}
    counts = ", ".join(f"{s} {n}" for s, n in info["splits"].items())
    return (f"Wrote {out_dir} ({FORMAT}) for subject {subject} from {info['source']}: "
            f"splits {counts} images of {image_shape[0]}x{image_shape[1]}x3; "
            f"{len(meta['lh'])} lh and {len(meta['rh'])} rh voxels; {repeats} repeats; "
            f"{good['lh'] + good['rh']} voxels are nsdgeneral with ncsnr > 0 "
            f"(lh {good['lh']}, rh {good['rh']}).")


def main(argv=None):
    p = argparse.ArgumentParser(description="Convert an HW2 NSD pickle into runner's .npy directory layout.")
    p.add_argument("input", help="the HW2 pickle, e.g. subj01_nativesurface_nsdgeneral.pkl")
    p.add_argument("out_dir", help="output directory to create")
    p.add_argument("--subject", help="subject name (default: the subjXX prefix of the input file name)")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it already exists")
    args = p.parse_args(argv)
    try:
        print(convert(args.input, args.out_dir, subject=args.subject, force=args.force))
    except (ConversionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
