#!/usr/bin/env bash
# Interleaved before/after benchmark of the loss and of a training step.
#
#   scripts/bench-before-after.sh OLD_DIR NEW_DIR [ROUNDS]
#
# Each folder holds `loss` (the binary of `cargo bench -p framer --no-run`), `step_time` and
# `step_overhead` (`cargo build --release -p framer-backbones --example step_time --example
# step_overhead`), built at the two commits. Every round runs old and new back to back for each
# program, alternating which goes first, so that drifts of a shared machine hit both alike.
set -euo pipefail
old=$1 new=$2 rounds=${3:-8}
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order="old new"; else order="new old"; fi
  for program in loss step_time step_overhead; do
    for v in $order; do
      dir=$old; [[ $v == new ]] && dir=$new
      echo "=== round $round $v $program $(cut -d' ' -f1-3 /proc/loadavg)"
      case $program in
        loss) "$dir/loss" --bench --iters 20 2>&1 | tail -1 ;;
        step_time) "$dir/step_time" 2>&1 | grep -E "wall|forward" ;;
        step_overhead) "$dir/step_overhead" --steps 6 2>&1 | tail -1 ;;
      esac
    done
  done
done
