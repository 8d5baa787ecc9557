#!/bin/bash
# The PPO model trained with random faults (default-stale observation) on the gpu-fleet
# fault scenarios and gpu-fleet itself, 3 seeds, next to hpa (the same runs as in the plain
# evaluations: common random numbers, the observation does not change a baseline's run).
cd /work/main
M=results/faults/models/gpu-fleet-random-faults/best_model.zip
for s in crash-loop-fault node-loss-fault gpu-loss-fault gpu-fleet; do
  echo "== $s $(date -u +%T)"
  nice -n 10 .venv/bin/kisim eval --scenario results/faults/stale-scenarios/$s.yaml --policies hpa,ppo:$M --patterns periodic --runs 3 --jobs 1 --out results/faults/ppo-random-faults/$s
done
echo "== all done $(date -u +%T)"
