#!/bin/bash
# Before/after CPU cost of kisim bench twin's runs, ABBA order, each in its own process:
#   results/scale/short-runs/heap4/measure.sh BEFORE_TREE AFTER_TREE [ROUNDS] [RUNS] > runs.csv
# Odd rounds run before then after, even rounds after then before (so a drift in the
# machine's load weighs on both alike). Each tree is a source checkout (e.g. `git archive
# <commit> | tar -x -C DIR`), run with this worktree's .venv and PYTHONPATH=TREE through
# ../runs.py; everything at nice 19, one process at a time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../../../.." && pwd)
before=$1; after=$2; rounds=${3:-4}; runs=${4:-30}
echo "variant,round,seed,served,cpu_s,wall_s,loadavg1,p99_ms"
for r in $(seq 1 "$rounds"); do
  order="before after"; [ $((r % 2)) = 0 ] && order="after before"
  for v in $order; do
    tree=$before; [ "$v" = after ] && tree=$after
    (cd /tmp && PYTHONPATH="$tree" nice -n 19 "$root/.venv/bin/python" "$here/../runs.py" "$v" "$r" "$runs")
  done
done
