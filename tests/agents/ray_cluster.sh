#!/usr/bin/env bash
# Run by tests/agents/test_ray_cluster.py inside new network + PID namespaces (unshare):
# a Ray head and a worker node (ray start), kisim sweep --ray against them while ss samples
# every TCP connection, then ray stop and what is left. Inputs: BIN (the venv's bin), T (a
# short working folder), PORT, SWEEP (the sweep's arguments).
set -u
ip link set lo up
K="$BIN/kisim"; R="$BIN/ray"; A="127.0.0.1:$PORT"
"$R" start --head --node-ip-address=127.0.0.1 --port "$PORT" --num-cpus 1 \
  --include-dashboard=false --disable-usage-stats --temp-dir="$T/r" > "$T/head.log" 2>&1 \
  || { echo "head failed"; tail -5 "$T/head.log"; exit 3; }
"$R" start --address="$A" --node-ip-address=127.0.0.1 --num-cpus 1 \
  --disable-usage-stats > "$T/worker.log" 2>&1 \
  || { echo "worker failed"; tail -5 "$T/worker.log"; exit 3; }
( while :; do ss -tanpH >> "$T/ss.txt"; sleep 0.3; done ) &
SAMPLER=$!
# shellcheck disable=SC2086 # SWEEP is a word list
"$K" sweep $SWEEP --out "$T/ray" --ray "$A" > "$T/sweep-ray.log" 2>&1
echo "sweep-ray $?" >> "$T/rc.txt"
kill "$SAMPLER"
"$R" stop > "$T/stop.log" 2>&1
echo "stop $?" >> "$T/rc.txt"
sleep 1
ps -eo args --no-headers | grep -E "raylet|gcs_server|ray::|site-packages/ray/" \
  | grep -v grep > "$T/left-procs.txt"
ss -tlnH > "$T/left-ports.txt"
exit 0
