#!/usr/bin/env bash
# The whole test suite: Rust unit + integration tests (no Python needed), then
# the pickle converter's tests in a venv with numpy and pandas from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check numpy==2.4.6 pandas==3.1.1
.venv/bin/python -m unittest discover -s scripts -p 'test_*.py'
