#!/usr/bin/env bash
# Benchmarks, reported in docs/benchmarks.md (not enforced by any test):
#   1. the main job's `cdk synth` of all three stages (CLI + app process, cold cdk.out)
#   2. the full test suite (pytest only, after setup), which synthesizes every stage once
# Usage: bash scripts/bench.sh [runs]   (default 3; prints each run and the median)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
runs="${1:-3}"

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

synth=() tests=()
for i in $(seq "$runs"); do
  rm -rf cdk.out
  t=$(date +%s%N); cdk synth --quiet --no-notices >/dev/null 2>&1; synth+=("$(ms_since "$t")")
  t=$(date +%s%N); python -m pytest -q -p no:cacheprovider >/dev/null 2>&1; tests+=("$(ms_since "$t")")
  echo "run $i: cdk synth ${synth[-1]} ms, test suite ${tests[-1]} ms"
done
echo "median of $runs on $(nproc) cores: cdk synth (3 stages) $(printf '%s\n' "${synth[@]}" | median) ms," \
     "test suite $(printf '%s\n' "${tests[@]}" | median) ms"
