#!/bin/bash
# Baselines (and the suite's PPO models) on the fault family, 3 evaluation seeds each.
cd /work/main
G=results/benchmark/models/gpu-fleet/best_model.zip
C=results/benchmark/models/cpu-fleet/best_model.zip
for s in crash-loop-fault node-loss-fault gpu-loss-fault; do
  echo "== $s $(date -u +%T)"
  nice -n 10 .venv/bin/kisim eval --scenario configs/scenarios/faults/$s.yaml --policies static,hpa,threshold,kpa,ppo:$G --patterns periodic --runs 3 --jobs 1 --out results/faults/$s
done
echo "== metrics-outage-fault $(date -u +%T)"
nice -n 10 .venv/bin/kisim eval --scenario configs/scenarios/faults/metrics-outage-fault.yaml --policies static,hpa,threshold,kpa,ppo:$C --patterns schedule --runs 3 --jobs 1 --out results/faults/metrics-outage-fault

echo "== references (fault-free) $(date -u +%T)"
nice -n 10 .venv/bin/kisim eval --scenario configs/scenarios/suite/gpu-fleet.yaml --policies static,hpa,threshold,kpa,ppo:$G --patterns periodic --runs 3 --jobs 1 --out results/faults/reference-gpu-fleet
nice -n 10 .venv/bin/kisim eval --scenario configs/scenarios/suite/cpu-fleet.yaml --policies static,hpa,threshold,kpa,ppo:$C --patterns schedule --runs 3 --jobs 1 --out results/faults/reference-cpu-fleet
echo "== all done $(date -u +%T)"
