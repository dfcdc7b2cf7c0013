#!/usr/bin/env bash
# The whole test suite: Rust unit + integration tests (no Python needed), then
# the pickle converter's tests in a venv with numpy and pandas from PyPI.
# The Slurm tests (tests/slurm.rs) run against the single-host test cluster,
# started here if it is not up (installing Debian's packages if missing) and
# stopped again afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export SLURM_CONF="${RUNNER_SLURM_DIR:-/tmp/runner-slurm}/etc/slurm.conf"
if ! sinfo -h >/dev/null 2>&1; then
  bash scripts/slurm-cluster.sh start
  trap 'bash scripts/slurm-cluster.sh stop' EXIT
fi
# Fail, never skip, when the cluster does not answer.
export RUNNER_REQUIRE_SLURM=1
cargo test --locked
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check numpy==2.4.6 pandas==3.1.1
.venv/bin/python -m unittest discover -s scripts -p 'test_*.py'
