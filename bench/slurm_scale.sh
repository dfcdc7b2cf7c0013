#!/usr/bin/env bash
# A generated experiment of > 2,000 nodes (8 synthetic subjects × 5 feature
# layers × 25 ROIs, RidgeCV), run through the single-host Slurm test cluster
# twice: with runner's default grouping (each fit its own job, its score
# taken along) and with fits grouped too (`[kinds.fit] alone = false`).
# Prints, per run: nodes, jobs, scheduler calls per node, the time from a
# node becoming ready to its job starting, and the wall time; then checks
# that both runs give the local executor's results byte for byte.
#
#   bash bench/slurm_scale.sh            # about 10 minutes on 2 cores
#
# "ready → submitted" is runner's own delay (its poll); "submitted →
# started" is Slurm's (queue wait while the 4 CPUs are busy, and start-up).
#
# Needs root for the cluster (bash scripts/slurm-cluster.sh start).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runner-target}"
cargo build --quiet
R="$CARGO_TARGET_DIR/debug/runner"
export SLURM_CONF="${RUNNER_SLURM_DIR:-/tmp/runner-slurm}/etc/slurm.conf"
sinfo -h >/dev/null 2>&1 || bash scripts/slurm-cluster.sh start
W="$(mktemp -d /tmp/runner-scale.XXXXXX)"
trap 'rm -rf "$W"' EXIT
cd "$W"

SUBJECTS=8
for i in $(seq 1 $SUBJECTS); do
  "$R" synth "data/s$i" --seed "$i" --n-train 40 --n-val 10 --n-test 20 --image-size 16 \
    --voxels-lh 120 --voxels-rh 100 >/dev/null
done
{
  echo '[experiment]'
  echo 'name = "scale"'
  echo 'cache = "cache"'
  echo 'results = "results"'
  for i in $(seq 1 $SUBJECTS); do
    printf '\n[subjects.s%s]\npath = "data/s%s"\n' "$i" "$i"
  done
  printf '\n[features.toy]\nkind = "npy"\ndir = "data/{subject}/features/toy"\nlayers = ["pixels", "edges", "global"]\n'
  printf '\n[features.random]\nkind = "npy"\ndir = "data/{subject}/features/random"\nlayers = ["rf1", "rf2"]\n'
  for label in V1 V2 V3 V4 ventral; do
    column=prf-visualrois
    [ "$label" = ventral ] && column=streams
    for nc in 0 5 10 15 20; do
      printf '\n[rois.%s_nc%s]\ncolumn = "%s"\nlabels = ["%s"]\nmatch = "substring"\nmin_ncsnr = 0.%02d\n' \
        "$label" "$nc" "$column" "$label" "$nc"
    done
  done
  printf '\n[analyses.ridge]\nkind = "ridge_cv"\nalpha_grid = [0.1, 10.0, 1000.0]\n'
} > scale.toml

nodes=$("$R" plan scale.toml | tail -1 | awk '{print $1}')
echo "experiment: $nodes nodes ($SUBJECTS subjects × 5 layers × 25 ROIs)"
t0=$(date +%s.%N)
"$R" --cache local-cache exec scale.toml >/dev/null 2>&1
t1=$(date +%s.%N)
cp -r results local-results
echo "local executor: $(echo "$t1 - $t0" | bc) s"

run() { # name, profile text
  rm -rf cache results
  printf 'poll_seconds = 1.0\nmax_in_flight = 500\n%s' "$2" > "profile-$1.toml"
  "$R" exec scale.toml --executor slurm --slurm-profile "profile-$1.toml" --json > "summary-$1.json" 2> "stderr-$1.txt"
  if diff -r local-results results >/dev/null; then
    echo "$1: results identical to the local executor's" >> checks.txt
  else
    echo "$1: RESULTS DIFFER from the local executor's" >> checks.txt
  fi
  python3 - "$1" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_log"])' "summary-$1.json")" <<'PY'
import json, sys
name, log = sys.argv[1], sys.argv[2]
ev = [json.loads(l) for l in open(log)]
end = [e for e in ev if e["event"] == "end"][-1]
jobs = [e for e in ev if e["event"] == "job"]
nodes = sum(1 for e in ev if e["event"] == "node")
timed = [j for j in jobs if j.get("started_unix") and j.get("ready_unix")]
def spread(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return f"{q(0.5):.2f} / {q(0.95):.2f} / {xs[-1]:.2f}"
calls = end["slurm_calls"]
total = sum(calls.values())
print(f"| {name} | {nodes} | {end['jobs_submitted']} | {calls.get('sbatch', 0)} | {calls.get('squeue', 0)} "
      f"| {total / nodes:.3f} | {spread([j['submitted_unix'] - j['ready_unix'] for j in timed])} "
      f"| {spread([j['started_unix'] - j['submitted_unix'] for j in timed])} | {end['wall_seconds']:.0f} |")
PY
}
echo
echo "| run | nodes | jobs | sbatch | squeue | scheduler calls / node | ready → submitted, s (p50 / p95 / max) | submitted → started, s (p50 / p95 / max) | wall, s |"
echo "|---|---|---|---|---|---|---|---|---|"
run default ""
run grouped $'[kinds.fit]\nalone = false\ncpus = 1\n'
echo
cat checks.txt
! grep -q DIFFER checks.txt
