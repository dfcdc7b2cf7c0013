#!/usr/bin/env bash
# Fresh machine → the example experiments: build runner, make the synthetic
# subjects (once), run experiments/algonauts2023.toml (the Algonauts devkit),
# experiments/lab08.toml (Lab08: λ per voxel, best layer, variance partitions),
# experiments/kay_v4.toml (Kay V4 on vim-1: PLS and ridge onto V4 voxels),
# experiments/rsa_v1.toml (seed 004: a grating-trained CNN vs mouse V1 by RSA
# and tuning curves), experiments/rsa_nsd.toml (RSA of AlexNet taps vs NSD ROIs),
# experiments/synthetic.toml (precomputed features),
# experiments/hw2_models.toml (AlexNets run by runner) and
# experiments/hw2_cpu.toml (HW2 with a Barcode AlexNet runner trains, CPU-sized).
# Needs only cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# --all-targets: the same dependency features as `cargo test`, so the two
# README commands share one build of the dependencies.
cargo build --locked --all-targets
bin="${CARGO_TARGET_DIR:-target}/debug/runner"
[ -f data/synth01/subject.json ] || "$bin" synth data/synth01
[ -d data/algonauts2023/subj01 ] || "$bin" synth --layout algonauts2023 data/algonauts2023/subj01
[ -f data/lab08/subj01/S1_voxel_roi_info.npy ] || "$bin" synth --layout lab08 data/lab08/subj01
[ -f data/vim1/EstimatedResponses.mat ] || "$bin" synth --layout vim1 data/vim1
[ -f data/stringer/W3D4_stringer_oribinned1.npz ] || "$bin" synth --layout npz_responses data/stringer
"$bin" exec experiments/algonauts2023.toml
"$bin" exec experiments/lab08.toml
"$bin" exec experiments/kay_v4.toml
"$bin" exec experiments/rsa_v1.toml
"$bin" exec experiments/synthetic.toml
"$bin" exec experiments/hw2_models.toml
"$bin" exec experiments/rsa_nsd.toml
"$bin" exec experiments/hw2_cpu.toml
