#!/usr/bin/env bash
# Fresh machine → the example experiment: build runner, make the synthetic
# subject (once), run experiments/synthetic.toml. Needs only cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked
bin="${CARGO_TARGET_DIR:-target}/debug/runner"
[ -f data/synth01/subject.json ] || "$bin" synth data/synth01
"$bin" exec experiments/synthetic.toml
