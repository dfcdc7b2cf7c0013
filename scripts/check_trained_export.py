#!/usr/bin/env python3
"""Load a runner-trained Barcode AlexNet into PyTorch and re-score it.

    python scripts/check_trained_export.py results/hw2-cpu/barcode_model.safetensors \
        --val-length 512 [--data-seed 1110 --val-seed 2025]

The export (`<model>_model.safetensors`) carries torchvision's state-dict
names and layouts. This script builds a torchvision-layout AlexNet with the
widths read from the file, loads it with `load_state_dict(strict=True)`,
rebuilds the validation split exactly as runner does (HW2's BarcodeDataset,
runner's fixed validation integers), and prints PyTorch's BCE, bit accuracy
and exact-match accuracy, to compare with the last row of
`<model>_learning_curves.csv`. Needs torch and safetensors.
"""

import argparse
import random

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn


def val_numbers(count, val_seed):
    rng, seen, out = random.Random(val_seed), set(), []
    while len(out) < count:
        v = rng.randrange(0, 2**32)
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def image(number):
    bits = [(number >> (31 - i)) & 1 for i in range(32)]
    row = np.repeat(np.where(np.array(bits) == 1, 0.0, 1.0), 7).astype(np.float32)
    return np.broadcast_to(row, (3, 224, 224)).copy()


def label(number):
    return np.array([(number >> (31 - i)) & 1 for i in range(32)], dtype=np.float32)


def alexnet(sd):
    c = [sd[f"features.{i}.weight"].shape[0] for i in (0, 3, 6, 8, 10)]
    hidden, classes = sd["classifier.1.weight"].shape[0], sd["classifier.6.weight"].shape[0]
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    m.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    m.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(c[4] * 36, hidden), nn.ReLU(),
        nn.Dropout(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes),
    )
    m.forward = lambda x: m.classifier(torch.flatten(m.avgpool(m.features(x)), 1))
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--val-length", type=int, default=50_000)
    ap.add_argument("--data-seed", type=int, default=1110)
    ap.add_argument("--val-seed", type=int, default=2025)
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()

    sd = load_file(a.weights)
    net = alexnet(sd)
    net.load_state_dict(sd, strict=True)
    net.eval()
    order = val_numbers(a.val_length, a.val_seed)
    random.Random(a.data_seed + 9999).shuffle(order)
    loss, bits, exact = 0.0, 0, 0
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    with torch.no_grad():
        for s in range(0, len(order), a.batch_size):
            chunk = order[s : s + a.batch_size]
            x = torch.from_numpy(np.stack([image(n) for n in chunk]))
            y = torch.from_numpy(np.stack([label(n) for n in chunk]))
            z = net.forward(x)
            loss += bce(z, y).item()
            right = ((z > 0).float() == y).sum(1)
            bits += int(right.sum())
            exact += int((right == 32).sum())
    n = len(order)
    print(f"loaded {len(sd)} tensors (strict) into AlexNet widths "
          f"{[sd[f'features.{i}.weight'].shape[0] for i in (0, 3, 6, 8, 10)]}")
    print(f"val_loss={loss / (n * 32):.6f} val_bit_acc={bits / (n * 32):.6f} "
          f"val_exact_match={exact / n:.6f} over {n} validation images")


if __name__ == "__main__":
    main()
