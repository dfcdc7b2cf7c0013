#!/usr/bin/env bash
# Fuzzes the TOML → plan path and the readers with libFuzzer (cargo-fuzz).
#
#   bash scripts/fuzz.sh                 # every target, 60 s each
#   bash scripts/fuzz.sh 600 toml_plan   # one target, 10 minutes
#   RUNS=1000000 bash scripts/fuzz.sh 0 toml_plan   # a fixed number of executions
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz from crates.io when it is missing. The first build instruments
# every dependency and takes ~20 min on 2 cores; it lives in fuzz/target.
# Crashes are written to fuzz/artifacts/<target>/ and make this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(toml_plan npy voxels_csv subject_json checkpoint)
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi
# Seeds: the repo's fixtures of each kind (copied, so the corpus dirs libFuzzer
# grows are not the fixtures themselves).
mkdir -p fuzz/corpus/{toml_plan,npy,voxels_csv,subject_json,checkpoint}
cp -n fuzz/seeds/toml_plan/*.toml fuzz/corpus/toml_plan/ 2>/dev/null || true
find tests/fixtures -name '*.npy' -size -64k -exec cp -n {} fuzz/corpus/npy/ \; 2>/dev/null || true
find tests/fixtures \( -name '*.pt' -o -name '*.safetensors' \) -size -512k -exec cp -n {} fuzz/corpus/checkpoint/ \; 2>/dev/null || true
cp -n fuzz/seeds/voxels_csv/* fuzz/corpus/voxels_csv/ 2>/dev/null || true
cp -n fuzz/seeds/subject_json/* fuzz/corpus/subject_json/ 2>/dev/null || true
for t in "${targets[@]}"; do
  args=(-max_len=16384 -print_final_stats=1)
  if [ -n "${RUNS:-}" ]; then args+=(-runs="$RUNS"); else args+=(-max_total_time="$secs"); fi
  echo "== fuzz $t"
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- "${args[@]}" 2>&1 |
    grep -E 'stat::number_of_executed_units|stat::peak_rss|Done|ERROR|panicked|SUMMARY|==' || true
  if compgen -G "fuzz/artifacts/$t/crash-*" >/dev/null; then
    echo "crash found in $t: fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
